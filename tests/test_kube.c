/*
 * The kubectl and helm extensions on a real Kubernetes API server
 * (tests/kcluster: etcd + kube-apiserver from `make tools`, started once
 * for the test binary), driven through orchd itself: real pipelines,
 * default isolation, the local engine.  What the cluster holds is checked
 * with kubectl (and helm) directly, not through orchd.
 */
#include <check.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>

#include "kcluster.h"
#include "orchd_protocol.h"
#include "testutil.h"

#define S(x) ((char *)(uintptr_t)(x))
#define END  ((const char *)NULL)

static char *tmp; /* the test's pipeline directory */

/* The pipelines name the kubeconfig relative to their directory: a copy of
 * the cluster's there (the sandbox shows an extension the pipeline's
 * directory; the cluster's, under /tmp, it would not). */
#define KCFG "kubeconfig"

static void setup(void)
{
	char *text, *p;
	FILE *f;

	tmp = test_tmpdir();
	ck_assert_ptr_nonnull(tmp);
	setenv("ORCHD_PASSPHRASE", "kube test passphrase", 1);
	text = test_read_file(kcluster_kubeconfig(), NULL);
	ck_assert_ptr_nonnull(text);
	ck_assert_int_ge(asprintf(&p, "%s/" KCFG, tmp), 0);
	f = fopen(p, "w");
	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	ck_assert_int_eq(fclose(f), 0);
	free(p);
	free(text);
	/* the example chart beside the pipelines, for the same reason (the
	 * source tree itself may be under /tmp) */
	{
		char *src = test_src_path("examples/kubernetes/chart"), *cmd;

		ck_assert_int_ge(asprintf(&cmd, "cp -R '%s' '%s/chart'", src, tmp), 0);
		ck_assert_msg(system(cmd) == 0, "%s", cmd);
		free(cmd);
		free(src);
	}
}

static void teardown(void)
{
	test_rmtree(tmp);
	free(tmp);
	unsetenv("ORCHD_PASSPHRASE");
}

static char *path_in(const char *rel)
{
	char *p;

	ck_assert_int_ge(asprintf(&p, "%s/%s", tmp, rel), 0);
	return p;
}

static void write_in(const char *rel, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void write_in(const char *rel, const char *fmt, ...)
{
	char *p = path_in(rel), *slash = strrchr(p, '/'), *text;
	FILE *f;
	va_list ap;
	int n;

	*slash = 0;
	mkdir(p, 0700);
	*slash = '/';
	va_start(ap, fmt);
	n = vasprintf(&text, fmt, ap);
	va_end(ap);
	ck_assert_int_ge(n, 0);
	f = fopen(p, "w");
	ck_assert_msg(f, "cannot write %s", p);
	fputs(text, f);
	ck_assert_int_eq(fclose(f), 0);
	free(text);
	free(p);
}

/* A namespace of this test run's own (namespaces are never deleted: there
 * is no namespace controller in the test cluster). */
static const char *ns_of(const char *name)
{
	static char buf[64];

	snprintf(buf, sizeof(buf), "%s-%ld", name, (long)getpid());
	return buf;
}

/* orchd CMD tmp/pipeline.yaml --state-dir tmp/state --report tmp/report.json
 * [ARGS...]; exit code, console output (both streams) in *out. */
static int orchd(char **out, const char *cmd, ...)
{
	char *argv[16], *file = path_in("pipeline.yaml"), *state = path_in("state");
	char *report = path_in("report.json"), *bin = test_build_path("bin/orchd"), *err = NULL;
	const char *a;
	size_t n = 0;
	va_list ap;
	int rc;

	argv[n++] = bin;
	argv[n++] = S(cmd);
	argv[n++] = file;
	argv[n++] = S("--state-dir");
	argv[n++] = state;
	argv[n++] = S("--report");
	argv[n++] = report;
	va_start(ap, cmd);
	while ((a = va_arg(ap, const char *)) && n < 15)
		argv[n++] = S(a);
	va_end(ap);
	argv[n] = NULL;
	rc = test_run(argv, out, &err);
	if (out) {
		char *both;

		ck_assert_int_ge(asprintf(&both, "%s%s", *out ? *out : "", err ? err : ""), 0);
		free(*out);
		*out = both;
	}
	free(err);
	free(bin);
	free(file);
	free(state);
	free(report);
	return rc;
}

/* The report's entry for instance id (caller puts the returned report). */
static json_object *report_inst(const char *id, json_object **report)
{
	char *p = path_in("report.json");
	json_object *arr;

	*report = json_object_from_file(p);
	free(p);
	ck_assert_msg(*report, "no report");
	ck_assert(json_object_object_get_ex(*report, "instances", &arr));
	for (size_t i = 0; i < json_object_array_length(arr); i++) {
		json_object *o = json_object_array_get_idx(arr, i);

		if (!strcmp(op_get_str(o, "id"), id))
			return o;
	}
	ck_abort_msg("instance %s not in the report", id);
	return NULL;
}

static int changed_of(const char *id)
{
	json_object *r, *o = report_inst(id, &r);
	int changed = op_has(o, "changed") && op_get(o, "changed")
			      ? json_object_get_boolean(op_get(o, "changed"))
			      : -1;

	json_object_put(r);
	return changed;
}

/* An output's value in the report (malloc'ed; "" when absent). */
static char *output_of(const char *id, const char *key)
{
	json_object *r, *o = report_inst(id, &r);
	json_object *v = op_get(op_get(op_get(o, "outputs"), key), "value");
	char *s = strdup(v ? json_object_get_string(v) : "");

	json_object_put(r);
	return s;
}

static void assert_contains(const char *hay, const char *needle)
{
	ck_assert_msg(hay && strstr(hay, needle), "'%s' not in:\n%s", needle, hay ? hay : "(null)");
}

/* --- kubectl ------------------------------------------------------------------------ */

static void kubectl_pipeline(const char *ns, const char *greeting, bool with_b)
{
	write_in("manifests/a.yaml",
		 "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\ndata:\n  k: one\n");
	if (with_b)
		write_in(
			"manifests/b.yaml",
			"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: b\ndata:\n  k: two\n");
	write_in("pipeline.yaml",
		 "kube:\n"
		 "  core:\n"
		 "    stack: t\n"
		 "  kubectl:\n"
		 "    - name: app\n"
		 "      kubeconfig: %s\n"
		 "      namespace: %s\n"
		 "      create_namespace: true\n"
		 "      manifests:\n"
		 "        - manifests\n"
		 "        - apiVersion: v1\n"
		 "          kind: ConfigMap\n"
		 "          metadata: {name: inline}\n"
		 "          data: {greeting: %s}\n"
		 "      outputs_from:\n"
		 "        greeting: {kind: configmap, name: inline, jsonpath: .data.greeting}\n",
		 KCFG, ns, greeting);
}

START_TEST(kubectl_lifecycle)
{
	const char *ns = ns_of("life");
	char *out, *s, *b;
	int code;

	kubectl_pipeline(ns, "hello", true);
	ck_assert_msg(orchd(&out, "run", END) == 0, "%s", out);
	free(out);
	ck_assert_int_eq(changed_of("kubectl.app"), 1);
	s = output_of("kubectl.app", "greeting");
	ck_assert_str_eq(s, "hello");
	free(s);
	s = kcluster_sh(&code, "kubectl get configmap -n %s a b inline -o name", ns);
	ck_assert_int_eq(code, 0);
	ck_assert_str_eq(s, "configmap/a\nconfigmap/b\nconfigmap/inline\n");
	free(s);

	/* again: nothing changes */
	ck_assert_msg(orchd(&out, "run", END) == 0, "%s", out);
	free(out);
	ck_assert_int_eq(changed_of("kubectl.app"), 0);
	ck_assert_msg(orchd(&out, "plan", "--detailed-exitcode", END) == 0, "%s", out);
	assert_contains(out, "no changes to 3 objects");
	free(out);

	/* a changed value: plan names the object, apply changes it */
	kubectl_pipeline(ns, "bonjour", true);
	ck_assert_int_eq(orchd(&out, "plan", "--detailed-exitcode", END), 2);
	assert_contains(out, "1 of 3 objects change");
	assert_contains(out, "ConfigMap");
	assert_contains(out, "inline");
	assert_contains(out, "+  greeting: bonjour");
	free(out);
	ck_assert_msg(orchd(&out, "run", END) == 0, "%s", out);
	free(out);
	ck_assert_int_eq(changed_of("kubectl.app"), 1);
	s = output_of("kubectl.app", "greeting");
	ck_assert_str_eq(s, "bonjour");
	free(s);
	s = kcluster_sh(&code, "kubectl get configmap -n %s inline -o jsonpath={.data.greeting}",
			ns);
	ck_assert_str_eq(s, "bonjour");
	free(s);

	/* a manifest removed: plan says it will be pruned, apply deletes it */
	b = path_in("manifests/b.yaml");
	ck_assert_int_eq(unlink(b), 0);
	free(b);
	ck_assert_int_eq(orchd(&out, "plan", "--detailed-exitcode", END), 2);
	assert_contains(out, "1 to prune (ConfigMap ");
	free(out);
	ck_assert_msg(orchd(&out, "run", END) == 0, "%s", out);
	assert_contains(out, "pruned 1");
	free(out);
	s = kcluster_sh(&code, "kubectl get configmap -n %s b 2>&1", ns);
	ck_assert_int_ne(code, 0);
	assert_contains(s, "NotFound");
	free(s);
	s = kcluster_sh(&code, "kubectl get configmap -n %s a inline -o name", ns);
	ck_assert_int_eq(code, 0);
	free(s);

	/* destroy: exactly what was applied is gone */
	ck_assert_msg(orchd(&out, "destroy", END) == 0, "%s", out);
	free(out);
	s = kcluster_sh(&code, "kubectl get configmap -n %s -o name", ns);
	ck_assert_int_eq(code, 0);
	ck_assert_msg(!strstr(s, "configmap/a") && !strstr(s, "configmap/inline"), "left: %s", s);
	free(s);
	ck_assert_msg(orchd(&out, "destroy", END) == 0, "%s", out);
	free(out);
}
END_TEST

START_TEST(kubectl_bad_manifest)
{
	const char *ns = ns_of("bad");
	char *out;
	json_object *r, *o;

	/* data must be a map of strings: the API server refuses it */
	write_in(
		"bad.yaml",
		"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: broken\ndata:\n  n: [1, 2]\n");
	write_in("pipeline.yaml",
		 "kube:\n  core: {stack: t}\n  kubectl:\n"
		 "    - name: bad\n      kubeconfig: %s\n      namespace: %s\n"
		 "      create_namespace: true\n      manifests: [bad.yaml]\n",
		 KCFG, ns);
	ck_assert_int_eq(orchd(&out, "run", END), 1);
	assert_contains(out, "bad.yaml");
	assert_contains(out, "kubectl apply failed");
	free(out);
	o = report_inst("kubectl.bad", &r);
	ck_assert_str_eq(op_get_str(o, "status"), "failed");
	json_object_put(r);
}
END_TEST

/*
 * The API server unreachable: the cluster's kubeconfig pointed at a port
 * nobody listens on (dead.kubeconfig), the instance ITEM of section TYPE
 * (id ID) run with two attempts: a clear failure, retried (retryable).
 */
static void unreachable(const char *type, const char *item, const char *id)
{
	char *out, *cfg, *text = test_read_file(kcluster_kubeconfig(), NULL);
	json_object *r, *o;

	ck_assert_ptr_nonnull(text);
	cfg = strstr(text, "server: https://127.0.0.1:");
	ck_assert_ptr_nonnull(cfg);
	{
		char *colon = strchr(cfg + strlen("server: https://"), ':'),
		     *eol = strchr(colon, '\n');

		*colon = 0;
		write_in("dead.kubeconfig", "%s:%d%s", text, test_free_port(), eol);
	}
	free(text);
	write_in("pipeline.yaml",
		 "kube:\n  core:\n    stack: t\n    execution_defaults: {max_attempts: 2, "
		 "retry_backoff: {initial: 10ms}}\n  %s:\n    - %s\n",
		 type, item);
	ck_assert_int_eq(orchd(&out, "run", END), 1);
	assert_contains(out, "connection refused");
	free(out);
	o = report_inst(id, &r);
	ck_assert_str_eq(op_get_str(o, "status"), "failed");
	ck_assert_int_eq(json_object_get_int(op_get(o, "attempts")), 2);
	json_object_put(r);
}

START_TEST(kubectl_unreachable)
{
	unreachable("kubectl",
		    "{name: dead, kubeconfig: dead.kubeconfig, request_timeout: 5s, manifests: "
		    "[{apiVersion: v1, kind: ConfigMap, metadata: {name: x}}]}",
		    "kubectl.dead");
}
END_TEST

/* A kustomize directory, and a CRD with a resource of its kind in two
 * instances (the resource's depends on the definition's): applied in
 * order, destroyed in reverse. */
START_TEST(kubectl_kustomize_and_crd)
{
	const char *ns = ns_of("kust");
	char *out, *s;
	int code;

	write_in("k/kustomization.yaml", "resources: [cm.yaml]\nnamePrefix: dev-\n"
					 "commonLabels: {team: infra}\n");
	write_in("k/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n"
			      "data:\n  k: v\n");
	write_in("crd.yaml",
		 "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\n"
		 "metadata:\n  name: widgets%ld.orchd.test\n"
		 "spec:\n  group: orchd.test\n  scope: Namespaced\n"
		 "  names: {plural: widgets%ld, singular: widget%ld, kind: Widget%ld}\n"
		 "  versions:\n  - name: v1\n    served: true\n    storage: true\n"
		 "    schema:\n      openAPIV3Schema:\n        type: object\n"
		 "        properties:\n          spec:\n            type: object\n"
		 "            properties: {size: {type: integer}}\n",
		 (long)getpid(), (long)getpid(), (long)getpid(), (long)getpid());
	write_in("pipeline.yaml",
		 "kube:\n  core: {stack: t}\n  kubectl:\n"
		 "    - {name: kust, kubeconfig: " KCFG ", namespace: %s, create_namespace: true, "
		 "manifests: [k]}\n"
		 "    - {name: crd, kubeconfig: " KCFG ", manifests: [crd.yaml]}\n"
		 "    - name: widget\n      kubeconfig: " KCFG "\n      namespace: %s\n"
		 "      depends_on: [kubectl.crd]\n"
		 "      manifests:\n        - {apiVersion: orchd.test/v1, kind: Widget%ld, "
		 "metadata: {name: w}, spec: {size: 3}}\n"
		 "      outputs_from:\n        size: {kind: widget%ld, name: w, jsonpath: "
		 ".spec.size}\n",
		 ns, ns, (long)getpid(), (long)getpid());
	ck_assert_msg(orchd(&out, "run", END) == 0, "%s", out);
	free(out);
	s = kcluster_sh(
		&code,
		"kubectl get configmap dev-settings -n %s -o jsonpath={.metadata.labels.team}", ns);
	ck_assert_str_eq(s, "infra");
	free(s);
	s = output_of("kubectl.widget", "size");
	ck_assert_str_eq(s, "3");
	free(s);
	ck_assert_msg(orchd(&out, "destroy", END) == 0, "%s", out);
	free(out);
	s = kcluster_sh(&code, "kubectl get crd -o name; kubectl get configmap -n %s -o name", ns);
	ck_assert_msg(!strstr(s, "orchd.test") && !strstr(s, "dev-settings"), "left: %s", s);
	free(s);
}
END_TEST

/* --- helm --------------------------------------------------------------------------- */

static void helm_pipeline(const char *ns, const char *greeting, const char *chart)
{
	const char *example = "chart";

	write_in("pipeline.yaml",
		 "kube:\n"
		 "  core:\n"
		 "    stack: t\n"
		 "  helm:\n"
		 "    - name: web\n"
		 "      chart: %s\n"
		 "      kubeconfig: %s\n"
		 "      namespace: %s\n"
		 "      create_namespace: true\n"
		 "      values: {greeting: %s, url: https://web.test}\n"
		 "      secret_values: {dbPassword: helm-test-password-1234}\n"
		 "      set: {extra: {colour: blue}}\n"
		 "      outputs_from:\n"
		 "        url: {notes: 'URL: ([^[:space:]]+)'}\n"
		 "        colour: {kind: configmap, name: web-config, jsonpath: .data.colour}\n",
		 chart ? chart : example, KCFG, ns, greeting);
}

static void assert_no_secret(const char *where, const char *text)
{
	ck_assert_msg(!text || !strstr(text, "helm-test-password-1234"),
		      "plaintext secret in %s:\n%s", where, text);
}

START_TEST(helm_lifecycle)
{
	const char *ns = ns_of("helm");
	char *out, *s, *cmd, *state;
	int code;

	helm_pipeline(ns, "hello", NULL);
	ck_assert_msg(orchd(&out, "run", END) == 0, "%s", out);
	assert_no_secret("the console", out);
	free(out);
	ck_assert_int_eq(changed_of("helm.web"), 1);
	s = output_of("helm.web", "revision");
	ck_assert_str_eq(s, "1");
	free(s);
	s = output_of("helm.web", "url");
	ck_assert_str_eq(s, "https://web.test");
	free(s);
	s = output_of("helm.web", "colour");
	ck_assert_str_eq(s, "blue");
	free(s);
	s = kcluster_sh(&code, "helm list -n %s -q", ns);
	ck_assert_str_eq(s, "web\n");
	free(s);
	s = kcluster_sh(&code,
			"kubectl get secret web-db -n %s -o jsonpath={.data.password} | base64 -d",
			ns);
	ck_assert_str_eq(s, "helm-test-password-1234");
	free(s);

	/* again: no upgrade, the revision stays */
	ck_assert_msg(orchd(&out, "run", END) == 0, "%s", out);
	free(out);
	ck_assert_int_eq(changed_of("helm.web"), 0);
	s = output_of("helm.web", "revision");
	ck_assert_str_eq(s, "1");
	free(s);
	ck_assert_msg(orchd(&out, "plan", "--detailed-exitcode", END) == 0, "%s", out);
	assert_contains(out, "plan: no changes (release web, revision 1)");
	free(out);

	/* a changed value: plan names the object and the line, apply upgrades */
	helm_pipeline(ns, "bonjour", NULL);
	ck_assert_int_eq(orchd(&out, "plan", "--detailed-exitcode", END), 2);
	assert_contains(out, "0 added, 1 changed, 0 removed: ConfigMap web-config (changed)");
	assert_contains(out, "+   greeting: \"bonjour\"");
	assert_no_secret("plan's console", out);
	free(out);
	ck_assert_msg(orchd(&out, "run", END) == 0, "%s", out);
	free(out);
	ck_assert_int_eq(changed_of("helm.web"), 1);
	s = output_of("helm.web", "revision");
	ck_assert_str_eq(s, "2");
	free(s);
	s = kcluster_sh(&code,
			"kubectl get configmap web-config -n %s -o jsonpath={.data.greeting}", ns);
	ck_assert_str_eq(s, "bonjour");
	free(s);

	/* nothing of the secret in orchd's state directory */
	state = path_in("state");
	ck_assert_int_ge(
		asprintf(&cmd, "grep -r -l -a helm-test-password-1234 '%s' >/dev/null", state), 0);
	ck_assert_msg(system(cmd) != 0, "plaintext secret in a file under %s", state);
	free(cmd);
	free(state);

	/* destroy: the release and its objects are gone */
	ck_assert_msg(orchd(&out, "destroy", END) == 0, "%s", out);
	free(out);
	s = kcluster_sh(&code, "helm list -n %s -q -a", ns);
	ck_assert_str_eq(s, "");
	free(s);
	s = kcluster_sh(&code,
			"kubectl get configmap,secret,serviceaccount -n %s -l "
			"app.kubernetes.io/instance=web -o name",
			ns);
	ck_assert_str_eq(s, "");
	free(s);
}
END_TEST

/* A chart whose template does not parse, and one the API server refuses,
 * beside a good release: with --keep-going the good one is installed. */
START_TEST(helm_bad_chart_keep_going)
{
	const char *ns = ns_of("helmbad");
	char *out, *s;
	const char *example = "chart";
	json_object *r, *o;
	int code;

	write_in("broken/Chart.yaml", "apiVersion: v2\nname: broken\nversion: 0.1.0\n");
	write_in("broken/templates/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n"
					     "  name: {{ .Release.Name \ndata: {}\n");
	write_in("refused/Chart.yaml", "apiVersion: v2\nname: refused\nversion: 0.1.0\n");
	write_in("refused/templates/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n"
					      "  name: Not_A_Valid_Name\ndata: {}\n");
	write_in("pipeline.yaml",
		 "kube:\n  core: {stack: t}\n  helm:\n"
		 "    - {name: broken, chart: broken, kubeconfig: %s, namespace: %s, "
		 "create_namespace: true}\n"
		 "    - {name: refused, chart: refused, kubeconfig: %s, namespace: %s, "
		 "create_namespace: true}\n"
		 "    - {name: good, chart: %s, kubeconfig: %s, namespace: %s, create_namespace: "
		 "true}\n",
		 KCFG, ns, KCFG, ns, example, KCFG, ns);
	ck_assert_int_eq(orchd(&out, "run", "--keep-going", END), 1);
	assert_contains(out, "templates/cm.yaml");
	assert_contains(out, "Not_A_Valid_Name");
	free(out);
	o = report_inst("helm.broken", &r);
	ck_assert_str_eq(op_get_str(o, "status"), "failed");
	json_object_put(r);
	o = report_inst("helm.refused", &r);
	ck_assert_str_eq(op_get_str(o, "status"), "failed");
	json_object_put(r);
	o = report_inst("helm.good", &r);
	ck_assert_str_eq(op_get_str(o, "status"), "success");
	json_object_put(r);
	/* (the refused release stays, failed: Helm's record of the attempt) */
	s = kcluster_sh(&code, "helm list -n %s -q --deployed", ns);
	ck_assert_str_eq(s, "good\n");
	free(s);
}
END_TEST

/* plan hands the rendered objects to the API server (a dry run): a value
 * it refuses fails plan, where helm's own server dry run, which never
 * submits them, passed it; a valid change is planned and said accepted. */
static void plan_chart(const char *ns, const char *tier)
{
	write_in("pipeline.yaml",
		 "kube:\n  core: {stack: t}\n  helm:\n"
		 "    - {name: c, chart: c, kubeconfig: %s, namespace: %s, create_namespace: true, "
		 "values: {tier: '%s'}}\n",
		 KCFG, ns, tier);
}

START_TEST(helm_plan_server_check)
{
	const char *ns = ns_of("helmplan");
	char *out, *s;
	int code;

	write_in("c/Chart.yaml", "apiVersion: v2\nname: c\nversion: 0.1.0\n");
	write_in("c/templates/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n"
					"  name: c-config\n"
					"  labels: {tier: {{ .Values.tier | quote }}}\n"
					"data: {k: v}\n");
	plan_chart(ns, "web");
	/* the namespace does not exist yet (create_namespace): not checked, said so */
	ck_assert_int_eq(orchd(&out, "plan", "--detailed-exitcode", END), 2);
	assert_contains(out, "not checked by the API server (their namespace does not exist yet)");
	free(out);
	ck_assert_int_eq(orchd(&out, "run", END), 0);
	free(out);
	plan_chart(ns, "not valid!");
	ck_assert_int_eq(orchd(&out, "plan", "--detailed-exitcode", END), 1);
	assert_contains(out, "kubectl apply --dry-run=server of the rendered objects failed");
	assert_contains(out, "not valid!");
	free(out);
	plan_chart(ns, "api");
	ck_assert_int_eq(orchd(&out, "plan", "--detailed-exitcode", END), 2);
	assert_contains(out, "the API server accepts the rendered objects");
	free(out);
	/* the dry runs left the object as the run made it */
	s = kcluster_sh(&code,
			"kubectl get configmap -n %s c-config -o jsonpath={.metadata.labels.tier}",
			ns);
	ck_assert_str_eq(s, "web");
	free(s);
}
END_TEST

START_TEST(helm_unreachable)
{
	const char *example = "chart";
	char *item;

	ck_assert_int_ge(asprintf(&item,
				  "{name: dead, chart: %s, kubeconfig: dead.kubeconfig, "
				  "timeout: 10s}",
				  example),
			 0);
	unreachable("helm", item, "helm.dead");
	free(item);
}
END_TEST

/* --- the example --------------------------------------------------------------------- */

#define EXAMPLE_SECRET "demo-db-password-not-secret"

static int example_cmd(const char *cmd, const char *file, const char *state, char **out)
{
	char *bin = test_build_path("bin/orchd"), *err = NULL;
	char *argv[] = {bin, S(cmd), S(file), S("--state-dir"), S(state), NULL};
	int rc = test_run(argv, out, &err);
	char *both;

	ck_assert_int_ge(asprintf(&both, "%s%s", *out ? *out : "", err ? err : ""), 0);
	free(*out);
	free(err);
	*out = both;
	free(bin);
	return rc;
}

START_TEST(kubernetes_example)
{
	char *file = test_src_path("examples/kubernetes/pipeline.yaml"), *variant, *out, *s;
	char *local = path_in("local"), *pul = path_in("pulumi"), *cmd;
	int code;

	setenv("KUBECONFIG", kcluster_kubeconfig(), 1);
	unlink("/tmp/orchd-examples/kube-demo-tofu.txt");
	ck_assert_msg(example_cmd("run", file, local, &out) == 0, "%s", out);
	assert_contains(out, "web is at revision 1, https://web.orchd-demo.example");
	/* a list output on the console: JSON, its slashes not escaped */
	assert_contains(out, "kubectl.config.objects = [\"ConfigMap orchd-demo/infra\"]");
	ck_assert_msg(!strstr(out, EXAMPLE_SECRET), "plaintext secret:\n%s", out);
	free(out);
	s = kcluster_sh(&code,
			"kubectl get configmap infra -n orchd-demo -o jsonpath={.data.greeting}");
	ck_assert_str_eq(s, "hello, kube-demo");
	free(s);
	s = kcluster_sh(
		&code,
		"kubectl get configmap web-config -n orchd-demo -o jsonpath={.data.greeting}");
	ck_assert_str_eq(s, "hello, kube-demo");
	free(s);
	/* a second run changes nothing */
	ck_assert_msg(example_cmd("run", file, local, &out) == 0, "%s", out);
	assert_contains(out, "web is at revision 1,");
	assert_contains(out, "release web unchanged (revision 1)");
	assert_contains(out, "apply: 1 object, no changes");
	ck_assert_msg(!strstr(out, EXAMPLE_SECRET), "plaintext secret:\n%s", out);
	free(out);
	ck_assert_int_ge(
		asprintf(&cmd, "grep -r -l -a '%s' '%s' >/dev/null", EXAMPLE_SECRET, local), 0);
	ck_assert_msg(system(cmd) != 0, "plaintext secret in a file under %s", local);
	free(cmd);
	ck_assert_msg(example_cmd("destroy", file, local, &out) == 0, "%s", out);
	free(out);
	s = kcluster_sh(
		&code,
		"helm list -n orchd-demo -q -a; kubectl get configmap -n orchd-demo -o name");
	ck_assert_str_eq(s, ""); /* (no controller makes kube-root-ca.crt) */
	free(s);

	/* the same on the Pulumi engine */
	variant = test_engine_variant(file, "{type: pulumi}");
	ck_assert_msg(example_cmd("run", variant, pul, &out) == 0, "%s", out);
	assert_contains(out, "web is at revision 1, https://web.orchd-demo.example");
	ck_assert_msg(!strstr(out, EXAMPLE_SECRET), "plaintext secret:\n%s", out);
	free(out);
	ck_assert_msg(example_cmd("destroy", variant, pul, &out) == 0, "%s", out);
	free(out);
	s = kcluster_sh(&code, "helm list -n orchd-demo -q -a");
	ck_assert_str_eq(s, "");
	free(s);
	unlink(variant);
	free(variant);
	free(file);
	free(local);
	free(pul);
	unsetenv("KUBECONFIG");
}
END_TEST

/* A chart fetched by the core (sources: a git checkout into the workdir),
 * and a values file beside it in the same checkout. */
START_TEST(helm_chart_from_git)
{
	const char *ns = ns_of("hgit");
	char *out, *s, *cmd, *example = test_src_path("examples/kubernetes/chart");
	char *repo = path_in("repo"), *cache = path_in("cache");
	int code;

	setenv("XDG_CACHE_HOME", cache, 1);
	ck_assert_int_ge(
		asprintf(&cmd,
			 "set -e; git init -q -b main '%s'; mkdir -p '%s/charts';"
			 "cp -R '%s' '%s/charts/demo'; printf 'greeting: from-git\\n' > "
			 "'%s/values-git.yaml'; cd '%s'; git add -A;"
			 "git -c user.name=t -c user.email=t@example.invalid commit -qm chart",
			 repo, repo, example, repo, repo, repo),
		0);
	ck_assert_msg(system(cmd) == 0, "%s", cmd);
	free(cmd);
	write_in("pipeline.yaml",
		 "kube:\n  core: {stack: t}\n  helm:\n"
		 "    - name: fromgit\n"
		 "      sources: [{git: 'file://%s', ref: main, path: src}]\n"
		 "      chart: src/charts/demo\n"
		 "      values_files: [src/values-git.yaml]\n"
		 "      kubeconfig: " KCFG "\n      namespace: %s\n      create_namespace: true\n",
		 repo, ns);
	ck_assert_msg(orchd(&out, "run", END) == 0, "%s", out);
	free(out);
	s = kcluster_sh(&code,
			"kubectl get configmap fromgit-config -n %s -o jsonpath={.data.greeting}",
			ns);
	ck_assert_str_eq(s, "from-git");
	free(s);
	ck_assert_msg(orchd(&out, "destroy", END) == 0, "%s", out);
	free(out);
	unsetenv("XDG_CACHE_HOME");
	free(repo);
	free(cache);
	free(example);
}
END_TEST

/* --- conformance: orchd ext test on the cluster ----------------------------------- */

START_TEST(conformance)
{
	static const char *const types[] = {"kubectl", "helm"};
	char *chart = path_in("chart");

	write_in("kubectl.json",
		 "{\"kubeconfig\":\"%s\",\"namespace\":\"%s\",\"create_namespace\":true,"
		 "\"manifests\":[{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\","
		 "\"metadata\":{\"name\":\"conformance\"},\"data\":{\"k\":\"v\"}}]}",
		 kcluster_kubeconfig(), ns_of("conf"));
	write_in("helm.json",
		 "{\"release\":\"conformance\",\"chart\":\"%s\",\"kubeconfig\":\"%s\","
		 "\"namespace\":\"%s\",\"create_namespace\":true}",
		 chart, kcluster_kubeconfig(), ns_of("conf"));
	free(chart);
	for (size_t i = 0; i < 2; i++) {
		char *exe, *cfg = NULL, *path, *out = NULL, *err = NULL, *name;
		int code;

		ck_assert_int_ge(asprintf(&exe, "libexec/orchd/extensions/orchd-ext-%s", types[i]),
				 0);
		ck_assert_int_ge(asprintf(&name, "%s.json", types[i]), 0);
		path = test_build_path(exe);
		cfg = path_in(name);
		{
			char *bin = test_build_path("bin/orchd");
			char *argv[] = {bin, S("ext"), S("test"), path, S("--config"), cfg, NULL};

			code = test_run(argv, &out, &err);
			free(bin);
		}
		ck_assert_msg(code == 0, "%s: exit %d\n%s%s", types[i], code, out, err);
		assert_contains(out, " 0 failed, ");
		free(out);
		free(err);
		free(exe);
		free(name);
		free(path);
		free(cfg);
	}
}
END_TEST

Suite *kube_suite(void)
{
	Suite *s = suite_create("kube");
	TCase *kc = tcase_create("kubectl");
	TCase *hm = tcase_create("helm");
	TCase *ex = tcase_create("example");

	tcase_set_tags(kc, "tools");
	tcase_add_unchecked_fixture(kc, kcluster_setup, kcluster_teardown);
	tcase_add_checked_fixture(kc, setup, teardown);
	tcase_set_timeout(kc, 300);
	tcase_add_test(kc, kubectl_lifecycle);
	tcase_add_test(kc, kubectl_bad_manifest);
	tcase_add_test(kc, kubectl_unreachable);
	tcase_add_test(kc, kubectl_kustomize_and_crd);
	suite_add_tcase(s, kc);
	tcase_set_tags(hm, "tools");
	tcase_add_unchecked_fixture(hm, kcluster_setup, kcluster_teardown);
	tcase_add_checked_fixture(hm, setup, teardown);
	tcase_set_timeout(hm, 300);
	tcase_add_test(hm, helm_lifecycle);
	tcase_add_test(hm, helm_bad_chart_keep_going);
	tcase_add_test(hm, helm_plan_server_check);
	tcase_add_test(hm, helm_unreachable);
	tcase_add_test(hm, helm_chart_from_git);
	tcase_add_test(hm, conformance);
	suite_add_tcase(s, hm);
	tcase_set_tags(ex, "tools");
	tcase_add_unchecked_fixture(ex, kcluster_setup, kcluster_teardown);
	tcase_add_checked_fixture(ex, setup, teardown);
	tcase_set_timeout(ex, 600);
	tcase_add_test(ex, kubernetes_example);
	suite_add_tcase(s, ex);
	return s;
}
