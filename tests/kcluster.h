/*
 * tests/kcluster: one Kubernetes control plane (etcd + kube-apiserver, no
 * kubelet) per test binary, for the helm and kubectl tests.
 *
 * kcluster_setup() is an unchecked fixture (it runs in the runner process,
 * before the test case forks its tests): the first call starts the cluster
 * with tests/cluster.sh (its start-up time goes to stderr), later calls
 * find it started.  It is stopped when the runner exits (atexit), and by
 * the script's watcher if the runner dies without exiting.  With
 * ORCHD_TEST_KUBECONFIG set, that cluster is used and nothing is started.
 *
 * kcluster_kubeconfig() is the kubeconfig's path (static storage).
 * kcluster_sh() runs a shell command with KUBECONFIG set and kubectl and
 * helm on PATH; its stdout (malloc'ed) and exit code.  Errors: a failed
 * start is a failed check in every test of the case.
 */
#ifndef ORCHD_TESTS_KCLUSTER_H
#define ORCHD_TESTS_KCLUSTER_H

void kcluster_setup(void);
void kcluster_teardown(void);
const char *kcluster_kubeconfig(void);
char *kcluster_sh(int *code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
