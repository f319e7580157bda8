#!/usr/bin/env bash
# tests/cluster.sh - a Kubernetes control plane on loopback for orchd's tests
# (and for trying examples/kubernetes by hand): a real etcd and a real
# kube-apiserver from `make tools`, no kubelet, no scheduler, no controllers.
#
#   tests/cluster.sh up DIR [--watch PID]   start, wait for /readyz, write
#                                           DIR/kubeconfig; with --watch, a
#                                           watcher stops the cluster when PID
#                                           exits (a test binary that dies)
#   tests/cluster.sh down DIR               stop what `up` started (by pid)
#   tests/cluster.sh env DIR                print KUBECONFIG=DIR/kubeconfig
#
# DIR is created when missing and holds everything: certificates (a CA of
# its own; the API server's; an admin client certificate in the group
# system:masters), the service-account key pair, etcd's data, both logs
# (etcd.log, apiserver.log), the pids (pids) and the start-up time in
# seconds (startup: total, etcd, kube-apiserver).  Ports are free loopback
# ports picked at start.  Exit: 0, 1 when something failed (the log tails
# are printed), 2 on a usage error.
#
# What the API server alone serves works: ConfigMaps, Secrets,
# ServiceAccounts, RBAC, Services, CRDs and their resources, Deployments
# (which never become ready: nothing runs pods).
set -euo pipefail

die() { echo "cluster: $*" >&2; exit 1; }
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2; }

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

# Free TCP ports on 127.0.0.1 (bound then released; a race with another
# process taking one in between is possible and ends in a clear error).
free_ports() {
	python3 - "$1" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
}

certs() {
	local d=$1 ext
	ext=$d/ext.cnf
	# EC keys: fast to make; the API server takes ECDSA for TLS and for
	# service-account tokens (ES256).
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
		-keyout "$d/ca.key" -out "$d/ca.crt" -days 7 -subj /CN=orchd-test-ca 2>/dev/null
	printf '%s\n' '[srv]' \
		'subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,IP:10.96.0.1' \
		'extendedKeyUsage=serverAuth' '[cli]' 'extendedKeyUsage=clientAuth' > "$ext"
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
		-keyout "$d/server.key" -out "$d/server.csr" -subj /CN=kube-apiserver 2>/dev/null
	openssl x509 -req -in "$d/server.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial \
		-out "$d/server.crt" -days 7 -extfile "$ext" -extensions srv 2>/dev/null
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
		-keyout "$d/admin.key" -out "$d/admin.csr" -subj "/O=system:masters/CN=orchd-admin" 2>/dev/null
	openssl x509 -req -in "$d/admin.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial \
		-out "$d/admin.crt" -days 7 -extfile "$ext" -extensions cli 2>/dev/null
	openssl ecparam -name prime256v1 -genkey -noout -out "$d/sa.key" 2>/dev/null
	openssl ec -in "$d/sa.key" -pubout -out "$d/sa.pub" 2>/dev/null
	chmod 600 "$d"/*.key
}

kubeconfig() {
	local d=$1 port=$2 tmp
	tmp=$d/kubeconfig.tmp
	{
		echo "apiVersion: v1"
		echo "kind: Config"
		echo "clusters:"
		echo "- name: orchd-test"
		echo "  cluster:"
		echo "    server: https://127.0.0.1:$port"
		echo "    certificate-authority-data: $(base64 -w0 < "$d/ca.crt")"
		echo "users:"
		echo "- name: orchd-admin"
		echo "  user:"
		echo "    client-certificate-data: $(base64 -w0 < "$d/admin.crt")"
		echo "    client-key-data: $(base64 -w0 < "$d/admin.key")"
		echo "contexts:"
		echo "- name: orchd-test"
		echo "  context: {cluster: orchd-test, user: orchd-admin}"
		echo "current-context: orchd-test"
	} > "$tmp"
	chmod 600 "$tmp"
	mv "$tmp" "$d/kubeconfig"
}

stop_pids() {
	local d=$1 pid
	[ -f "$d/pids" ] || return 0
	for pid in $(cat "$d/pids"); do kill -TERM "$pid" 2>/dev/null || true; done
	for _ in $(seq 50); do
		local alive=0
		for pid in $(cat "$d/pids"); do kill -0 "$pid" 2>/dev/null && alive=1; done
		[ $alive = 0 ] && break
		sleep 0.1
	done
	for pid in $(cat "$d/pids"); do kill -KILL "$pid" 2>/dev/null || true; done
	rm -f "$d/pids"
}

fail_up() {
	local d=$1
	echo "cluster: $2" >&2
	for f in etcd.log apiserver.log; do
		[ -s "$d/$f" ] && { echo "--- $d/$f (tail)" >&2; tail -n 15 "$d/$f" >&2; }
	done
	stop_pids "$d"
	exit 1
}

up() {
	local d=$1 watch=${2:-} t0 t1 t2 eport pport aport epid apid i
	for t in etcd kube-apiserver openssl curl python3; do
		command -v "$t" >/dev/null || die "'$t' not found on PATH (make tools; . ~/.cache/orchd/tools/env.sh)"
	done
	mkdir -p "$d"
	d=$(cd "$d" && pwd)
	[ ! -s "$d/pids" ] || die "$d: a cluster is already up there (tests/cluster.sh down $d)"
	t0=$(now)
	certs "$d"
	read -r eport pport aport <<< "$(free_ports 3)"
	rm -rf "$d/etcd-data"
	setsid etcd --name orchd-test --data-dir "$d/etcd-data" \
		--listen-client-urls "http://127.0.0.1:$eport" --advertise-client-urls "http://127.0.0.1:$eport" \
		--listen-peer-urls "http://127.0.0.1:$pport" --initial-advertise-peer-urls "http://127.0.0.1:$pport" \
		--initial-cluster "orchd-test=http://127.0.0.1:$pport" --unsafe-no-fsync \
		--log-level warn > "$d/etcd.log" 2>&1 < /dev/null &
	epid=$!
	echo "$epid" > "$d/pids"
	for i in $(seq 300); do
		curl -sf "http://127.0.0.1:$eport/health" 2>/dev/null | grep -q '"health":"true"' && break
		kill -0 "$epid" 2>/dev/null || fail_up "$d" "etcd exited"
		[ "$i" = 300 ] && fail_up "$d" "etcd not healthy after 30 s"
		sleep 0.1
	done
	t1=$(now)
	setsid kube-apiserver --etcd-servers "http://127.0.0.1:$eport" \
		--bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$aport" \
		--tls-cert-file "$d/server.crt" --tls-private-key-file "$d/server.key" \
		--client-ca-file "$d/ca.crt" --authorization-mode RBAC \
		--service-account-key-file "$d/sa.pub" --service-account-signing-key-file "$d/sa.key" \
		--service-account-issuer https://kubernetes.default.svc \
		--service-cluster-ip-range 10.96.0.0/16 --endpoint-reconciler-type none \
		--cert-dir "$d/apiserver-certs" --profiling=false --v 1 \
		> "$d/apiserver.log" 2>&1 < /dev/null &
	apid=$!
	echo "$epid $apid" > "$d/pids"
	for i in $(seq 1200); do
		curl -sf --cacert "$d/ca.crt" --cert "$d/admin.crt" --key "$d/admin.key" \
			"https://127.0.0.1:$aport/readyz" 2>/dev/null | grep -qx ok && break
		kill -0 "$apid" 2>/dev/null || fail_up "$d" "kube-apiserver exited"
		[ "$i" = 1200 ] && fail_up "$d" "kube-apiserver not ready after 120 s"
		sleep 0.1
	done
	t2=$(now)
	kubeconfig "$d" "$aport"
	if [ -n "$watch" ]; then
		# Detached from us, so that `up` returns; stops the cluster
		# when the watched process is gone.
		# It keeps the pids itself: the directory may be gone by then.
		setsid bash -c 'while kill -0 "$1" 2>/dev/null && [ -s "$2/pids" ]; do sleep 1; done
			kill -TERM $3 2>/dev/null; sleep 2; kill -KILL $3 2>/dev/null' \
			watcher "$watch" "$d" "$epid $apid" > /dev/null 2>&1 < /dev/null &
	fi
	echo "$(elapsed "$t0" "$t2") $(elapsed "$t0" "$t1") $(elapsed "$t1" "$t2")" > "$d/startup"
	echo "cluster: ready in $(elapsed "$t0" "$t2") s (certificates and etcd $(elapsed "$t0" "$t1") s," \
		"kube-apiserver $(elapsed "$t1" "$t2") s): KUBECONFIG=$d/kubeconfig"
}

[ $# -ge 2 ] || usage
cmd=$1 dir=$2
shift 2
case "$cmd" in
up)
	watch=
	if [ $# -eq 2 ] && [ "$1" = --watch ]; then watch=$2; elif [ $# -ne 0 ]; then usage; fi
	up "$dir" "$watch"
	;;
down)
	[ $# -eq 0 ] || usage
	stop_pids "$dir"
	;;
env)
	[ $# -eq 0 ] || usage
	echo "KUBECONFIG=$(cd "$dir" && pwd)/kubeconfig"
	;;
*) usage ;;
esac
