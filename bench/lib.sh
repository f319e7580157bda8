# lib.sh -- helpers shared by the benchmarks (sourced, POSIX sh).  Times are wall clock in
# milliseconds from date +%s%N; peak RSS from GNU time's %M (KiB).

# bench_setup BUILD: sets SRC, BUILD (absolute), ORCHD, TMP (removed on exit).
bench_setup()
{
	SRC=$(cd "$(dirname "$0")/.." && pwd)
	BUILD=$(cd "${1:-build}" && pwd)
	ORCHD=$BUILD/bin/orchd
	[ -x "$ORCHD" ] || { echo "$(basename "$0"): $ORCHD not built (make)" >&2; exit 2; }
	TMP=$(mktemp -d "${TMPDIR:-/tmp}/orchd-bench-XXXXXX")
	SHM=
	trap 'rm -rf "$TMP"; [ -z "$SHM" ] || rm -rf "$SHM"' EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	# orchd must not pick up a developer's extensions by accident
	unset ORCHD_EXTENSIONS_PATH ORCHD_EXTENSIONS_PATH_ONLY || true
}

now_ms() { echo $(($(date +%s%N) / 1000000)); }

# median A B C ...: the median of integers (lower median for an even count)
median() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

# ratio A B: A / B with two decimals (B of 0 counts as 1)
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b <= 0) b = 1; printf "%.2f", a / b }'; }

# gen_makefile N FILE: N phony targets, each running /bin/true
gen_makefile()
{
	awk -v n="$1" 'BEGIN {
		printf "all:"; for (i = 0; i < n; i++) printf " t%d", i; printf "\n"
		for (i = 0; i < n; i++) printf "t%d:\n\t@/bin/true\n", i
		printf ".PHONY: all"; for (i = 0; i < n; i++) printf " t%d", i; printf "\n"
	}' > "$2"
}

# time_cmd OUTVAR CMD...: run CMD, store its wall time in ms in OUTVAR;
# CMD's exit status is returned
time_cmd()
{
	_var=$1; shift
	_t0=$(now_ms)
	"$@"; _rc=$?
	_t1=$(now_ms)
	eval "$_var=\$((_t1 - _t0))"
	return $_rc
}

# shm_dir: a fresh directory on tmpfs (/dev/shm) in SHM, or empty if none
shm_dir()
{
	if [ -d /dev/shm ] && [ -w /dev/shm ] &&
	   [ "$(stat -f -c %T /dev/shm 2>/dev/null)" = tmpfs ]; then
		SHM=$(mktemp -d /dev/shm/orchd-bench-XXXXXX)
	else
		SHM=
	fi
}

# build_spawn_driver BUILD OUT: bench/spawn_driver.c linked with the core
# objects of BUILD (every module but main, and common/) and the protocol
# library; the test helper misbehave is built too.  Run from SRC.
build_spawn_driver()
{
	make -s -j2 BUILD="$1" all "$1/tests/helpers/misbehave" >/dev/null
	cc -std=c17 -O2 -pthread -D_GNU_SOURCE -DORCHD_VERSION='"0.1.0"' -Icommon -Iprotocol \
		-Iorchestrator $(pkg-config --cflags json-c) -o "$2" bench/spawn_driver.c \
		$(ls "$1"/obj/orchestrator/*/*.o "$1"/obj/common/*.o) "$1/lib/liborchd-protocol.a" \
		$(pkg-config --libs yaml-0.1 json-c libgit2 libcurl libcrypto libseccomp) -lm
}

# bench_etcd NAME: a one-member etcd on a free loopback port, its data under
# TMP; sets url and etcd_pid, waits until it answers (NAME for messages).
# The caller's EXIT trap stops it: kill $etcd_pid.
bench_etcd()
{
	command -v etcd >/dev/null || { echo "$1: no etcd on PATH (make tools)" >&2; exit 2; }
	set -- "$1" $(python3 -c 'import socket
a, b = socket.socket(), socket.socket()
a.bind(("127.0.0.1", 0)); b.bind(("127.0.0.1", 0))
print(a.getsockname()[1], b.getsockname()[1])')
	port=$2 peer=$3
	url=http://127.0.0.1:$port
	etcd --data-dir "$TMP/etcd" --listen-client-urls "$url" --advertise-client-urls "$url" \
		--listen-peer-urls "http://127.0.0.1:$peer" \
		--initial-advertise-peer-urls "http://127.0.0.1:$peer" \
		--initial-cluster "default=http://127.0.0.1:$peer" --log-level error \
		>"$TMP/etcd.log" 2>&1 &
	etcd_pid=$!
	i=0
	until etcdctl --endpoints "$url" --command-timeout=1s endpoint health >/dev/null 2>&1; do
		i=$((i + 1))
		if [ $i -ge 100 ] || ! kill -0 "$etcd_pid" 2>/dev/null; then
			echo "$1: etcd did not start" >&2
			tail -n 5 "$TMP/etcd.log" >&2
			exit 1
		fi
		sleep 0.1
	done
}

# etcd_requests: etcd's count of handled requests so far (the JSON gateway
# goes through grpc_server_handled_total)
etcd_requests()
{
	curl -s "$url/metrics" | awk '/^grpc_server_handled_total/ { n += $2 } END { printf "%d", n }'
}
