#!/usr/bin/env bash
# tests/tools/install-tools.sh - build orchd's pinned test tools from source.
#
# Installs OpenTofu, sops, age, ansible-core, the Pulumi CLI (+ YAML
# language host), etcd (+ etcdctl), kube-apiserver, kubectl and helm into a
# cache OUTSIDE the repository:
#
#   ${ORCHD_TOOLS_DIR:-$HOME/.cache/orchd/tools}/NAME-VERSION/bin/
#
# Everything comes from package registries only (Go module proxy, PyPI); no
# prebuilt release binaries are downloaded.  A tool whose binaries are already
# there and answer --version with the pinned version is skipped, so the script
# is idempotent and cheap to re-run.  Finally ${ORCHD_TOOLS_DIR}/env.sh is
# written; `. ~/.cache/orchd/tools/env.sh` puts every tool on PATH.
#
# Usage:
#   install-tools.sh [NAME...]               install (default: all tools)
#   install-tools.sh --print-path [NAME...]  print the colon-joined bin dirs
#   install-tools.sh --verify [NAME...]      install, then run offline smoke tests
#   install-tools.sh --list                  print NAME VERSION for every tool
# NAME is one of: tofu sops age ansible pulumi etcd kube-apiserver kubectl helm
# (aliases: opentofu, ansible-core)
#
# Environment: ORCHD_TOOLS_DIR (cache root), GOPROXY/GOSUMDB/GOPATH/GOCACHE
# (normal Go settings, the user's defaults are used), PIP_INDEX_URL etc.
set -euo pipefail

# ---- pinned versions -------------------------------------------------------
TOFU_VERSION=1.12.6          # github.com/opentofu/opentofu (needs go >= 1.26.6)
SOPS_VERSION=3.13.3          # github.com/getsops/sops/v3
AGE_VERSION=1.3.2            # filippo.io/age
ANSIBLE_CORE_VERSION=2.19.14 # PyPI ansible-core (needs python >= 3.11)
PULUMI_VERSION=3.259.0       # github.com/pulumi/pulumi/{pkg,sdk}/v3
PULUMI_YAML_VERSION=1.38.1   # github.com/pulumi/pulumi-yaml (pulumi-language-yaml)
ETCD_VERSION=3.6.16          # go.etcd.io/etcd/{server,etcdctl}/v3 (needs go >= 1.26)
KUBE_VERSION=1.35.4          # k8s.io/kubernetes (staging modules: k8s.io/* v0.35.4)
KUBECTL_VERSION=1.35.4       # k8s.io/kubernetes/cmd/kubectl (k8s.io/kubectl v0.35.4)
HELM_VERSION=3.22.0          # helm.sh/helm/v3 (needs go >= 1.26)

# ansible-core's dependencies, pinned too so the venv is reproducible.
ANSIBLE_PIP_PINS=(
  "ansible-core==${ANSIBLE_CORE_VERSION}"
  "Jinja2==3.1.6"
  "MarkupSafe==3.0.4"
  "PyYAML==6.0.4"
  "cryptography==50.0.2"
  "cffi==2.1.1"
  "pycparser==3.12"
  "packaging==26.4"
  "resolvelib==1.2.1"
)

ALL_TOOLS=(tofu sops age ansible pulumi etcd kube-apiserver kubectl helm)

TOOLS_DIR="${ORCHD_TOOLS_DIR:-$HOME/.cache/orchd/tools}"
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# ---- helpers ---------------------------------------------------------------
die() { echo "install-tools: $*" >&2; exit 1; }

canon_name() {
  case "$1" in
    tofu|opentofu) echo tofu ;;
    sops) echo sops ;;
    age) echo age ;;
    ansible|ansible-core) echo ansible ;;
    pulumi) echo pulumi ;;
    etcd) echo etcd ;;
    kube-apiserver|kubectl|helm) echo "$1" ;;
    *) die "unknown tool '$1' (known: ${ALL_TOOLS[*]})" ;;
  esac
}

tool_version() {
  case "$1" in
    tofu) echo "$TOFU_VERSION" ;;
    sops) echo "$SOPS_VERSION" ;;
    age) echo "$AGE_VERSION" ;;
    ansible) echo "$ANSIBLE_CORE_VERSION" ;;
    pulumi) echo "$PULUMI_VERSION" ;;
    etcd) echo "$ETCD_VERSION" ;;
    kube-apiserver) echo "$KUBE_VERSION" ;;
    kubectl) echo "$KUBECTL_VERSION" ;;
    helm) echo "$HELM_VERSION" ;;
  esac
}

# Directory name under TOOLS_DIR.
tool_dirname() {
  case "$1" in
    ansible) echo "ansible-core-$ANSIBLE_CORE_VERSION" ;;
    *) echo "$1-$(tool_version "$1")" ;;
  esac
}

tool_bindir() { echo "$TOOLS_DIR/$(tool_dirname "$1")/bin"; }

# "binary version-command-args..." lines; every binary must exist and, where a
# command is given, print the pinned version.
tool_checks() {
  case "$1" in
    tofu) echo "tofu --version" ;;
    sops) echo "sops --version --disable-version-check" ;;
    age) echo "age --version"; echo "age-keygen --version" ;;
    ansible) echo "ansible-playbook --version"; echo "ansible --version" ;;
    pulumi) echo "pulumi version"; echo "pulumi-language-yaml" ;;
    etcd) echo "etcd --version"; echo "etcdctl version" ;;
    kube-apiserver) echo "kube-apiserver --version" ;;
    kubectl) echo "kubectl version --client" ;;
    helm) echo "helm version --short" ;;
  esac
}

# Does the cached install of tool $1 exist and work?
tool_ok() {
  local name=$1 bindir ver line bin out
  bindir=$(tool_bindir "$name")
  ver=$(tool_version "$name")
  [ -d "$bindir" ] || return 1
  while read -r line; do
    bin=${line%% *}
    [ -x "$bindir/$bin" ] || return 1
    if [ "$line" != "$bin" ]; then
      # shellcheck disable=SC2086  # word splitting of the args is intended
      out=$(cd / && PULUMI_SKIP_UPDATE_CHECK=true "$bindir/$bin" ${line#* } 2>&1) || return 1
      case "$out" in *"$ver"*) ;; *) return 1 ;; esac
    fi
  done < <(tool_checks "$name")
  return 0
}

go_env() {
  # GOPATH/GOCACHE: the user's defaults (outside the repo).  -trimpath keeps
  # local paths out of the binaries; toolchain switching would need a download.
  export GOFLAGS=-trimpath GOTOOLCHAIN=local CGO_ENABLED=0
}

# Print the go.mod file of module $1 at version $2 (downloaded via the proxy).
go_mod_file() {
  local json gomod
  json=$(go mod download -json "$1@$2") || { echo "$json" >&2; return 1; }
  gomod=$(printf '%s\n' "$json" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')
  if [ -z "$gomod" ] || [ ! -f "$gomod" ]; then
    echo "no go.mod for $1@$2: $json" >&2
    return 1
  fi
  echo "$gomod"
}

# From a go.mod file print go-mod-edit arguments that copy its non-local
# replace directives and its exclude directives into another module.  With a
# second argument VERSION, a local replace (`k8s.io/api => ./staging/...`)
# becomes `k8s.io/api => k8s.io/api VERSION`: the published module of the
# same release instead of the repository's own copy.
go_mod_copy_directives() {
  awk -v localver="${2:-}" '
    { sub(/\/\/.*/, "") }
    /^[[:space:]]*(replace|exclude)[[:space:]]*\([[:space:]]*$/ { blk = $1; next }
    blk != "" && /^[[:space:]]*\)[[:space:]]*$/ { blk = ""; next }
    {
      kind = blk; n = split($0, f, /[[:space:]]+/); i = 1
      while (i <= n && f[i] == "") i++
      if (kind == "") { if (f[i] != "replace" && f[i] != "exclude") next; kind = f[i]; i++ }
      m = 0; for (; i <= n; i++) if (f[i] != "") w[++m] = f[i]
      if (kind == "exclude" && m == 2) { print "-exclude=" w[1] "@" w[2]; next }
      if (kind != "replace") next
      old = w[1]; j = 2
      if (w[2] != "=>") { old = old "@" w[2]; j = 3 }
      if (w[j] != "=>") next
      new = w[j + 1]
      if (new ~ /^(\.\.?\/|\/)/) {                 # local path
        if (localver != "") print "-replace=" w[1] "=" w[1] "@" localver
        next
      }
      if (m < j + 2) next
      print "-replace=" old "=" new "@" w[j + 2]
    }' "$1"
}

# build_wrapped MODULE VERSION OUTDIR BINNAME PKG [GO-BUILD-ARGS...] [-- EXTRA-MODULE@VERSION...]
# Build a main package of a module whose go.mod has replace directives (which
# `go install m@v` refuses) through a throwaway wrapper module.  WRAP_LOCAL_VERSION
# (environment) maps the module's local replaces to that published version.
build_wrapped() {
  local mod=$1 ver=$2 outdir=$3 bin=$4 pkg=$5; shift 5
  local -a buildargs=() extra=()
  while [ $# -gt 0 ]; do
    if [ "$1" = "--" ]; then shift; extra=("$@"); break; fi
    buildargs+=("$1"); shift
  done
  local tmp gomod rc=0
  gomod=$(go_mod_file "$mod" "$ver")
  local -a directives=()
  mapfile -t directives < <(go_mod_copy_directives "$gomod" "${WRAP_LOCAL_VERSION:-}")
  echo "+ $mod@$ver: copying go.mod directives: ${directives[*]:-(none)}"
  tmp=$(mktemp -d "${TMPDIR:-/tmp}/orchd-tools-wrap.XXXXXX")
  (
    cd "$tmp"
    set -x
    go mod init orchd-tools-wrapper
    if [ ${#directives[@]} -gt 0 ]; then go mod edit "${directives[@]}"; fi
    go get -tool "$pkg@$ver" ${extra[@]+"${extra[@]}"}
    got=$(go list -m -f '{{.Version}}' "$mod")
    [ "$got" = "$ver" ] || { echo "wrapper selected $mod $got, wanted $ver" >&2; exit 1; }
    go build ${buildargs[@]+"${buildargs[@]}"} -o "$outdir/$bin" "$pkg"
  ) || rc=$?
  rm -rf "$tmp"
  return $rc
}

# ---- per-tool installers (each builds into $1, a fresh staging bin dir) -----
install_tofu() {
  local out=$1 v="v$TOFU_VERSION"
  go_env
  build_wrapped github.com/opentofu/opentofu "$v" "$out" tofu \
    github.com/opentofu/opentofu/cmd/tofu \
    -ldflags '-s -w -X github.com/opentofu/opentofu/version.dev=no'
}

install_sops() {
  local out=$1
  go_env
  (set -x; GOBIN=$out go install -ldflags '-s -w' "github.com/getsops/sops/v3/cmd/sops@v$SOPS_VERSION")
}

install_age() {
  local out=$1
  go_env
  (set -x; GOBIN=$out go install -ldflags "-s -w -X main.Version=v$AGE_VERSION" "filippo.io/age/cmd/...@v$AGE_VERSION")
}

install_pulumi() {
  local out=$1 v="v$PULUMI_VERSION"
  go_env
  build_wrapped github.com/pulumi/pulumi/pkg/v3 "$v" "$out" pulumi \
    github.com/pulumi/pulumi/pkg/v3/cmd/pulumi \
    -tags osusergo,grpcnotrace \
    -ldflags "-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$v" \
    -- "github.com/pulumi/pulumi/sdk/v3@$v"
  (set -x; GOBIN=$out go install -ldflags "-s -w -X github.com/pulumi/pulumi-yaml/pkg/version.Version=v$PULUMI_YAML_VERSION" \
    "github.com/pulumi/pulumi-yaml/cmd/pulumi-language-yaml@v$PULUMI_YAML_VERSION")
}

# etcd: the server module's root package is the etcd command; etcdctl is its
# own module.  Both have local replace directives in the etcd repository, so
# each is built through a wrapper module; the two share the module cache.
install_etcd() {
  local out=$1 v="v$ETCD_VERSION"
  go_env
  build_wrapped go.etcd.io/etcd/server/v3 "$v" "$out" etcd \
    go.etcd.io/etcd/server/v3 -ldflags '-s -w'
  build_wrapped go.etcd.io/etcd/etcdctl/v3 "$v" "$out" etcdctl \
    go.etcd.io/etcd/etcdctl/v3 -ldflags '-s -w'
}

# kube-apiserver: k8s.io/kubernetes replaces each of its staging modules
# (k8s.io/api, k8s.io/apiserver, ...) with ./staging/src/...; the wrapper maps
# each to the published k8s.io/X v0.N.M of the same release.  The version
# variables are what `make` would stamp: the API server reports them on
# /version, and kubectl and helm compare against them.
kube_ldflags() {
  local v=$1 pkg minor
  minor=${v#v*.}; minor=${minor%%.*}
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    printf -- '-X %s.gitVersion=%s -X %s.gitMajor=1 -X %s.gitMinor=%s -X %s.gitTreeState=clean ' \
      "$pkg" "$v" "$pkg" "$pkg" "$minor" "$pkg"
  done
}

install_kube-apiserver() {
  local out=$1 v="v$KUBE_VERSION"
  go_env
  WRAP_LOCAL_VERSION="v0.${KUBE_VERSION#*.}" build_wrapped k8s.io/kubernetes "$v" "$out" kube-apiserver \
    k8s.io/kubernetes/cmd/kube-apiserver -ldflags "-s -w $(kube_ldflags "$v")"
}

# kubectl: its main package lives in k8s.io/kubernetes (k8s.io/kubectl, the
# library it wraps, has none), so it is built like the API server, from the
# same module graph and build cache.
install_kubectl() {
  local out=$1 v="v$KUBECTL_VERSION"
  go_env
  WRAP_LOCAL_VERSION="v0.${KUBECTL_VERSION#*.}" build_wrapped k8s.io/kubernetes "$v" "$out" kubectl \
    k8s.io/kubernetes/cmd/kubectl -ldflags "-s -w $(kube_ldflags "$v")"
}

install_helm() {
  local out=$1
  go_env
  (set -x; GOBIN=$out go install \
    -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=v$HELM_VERSION -X helm.sh/helm/v3/internal/version.gitTreeState=clean" \
    "helm.sh/helm/v3/cmd/helm@v$HELM_VERSION")
}

# ansible is a venv (not relocatable), so it lives at its final place, $dir/venv;
# $1 (the staging bin dir) gets symlinks to its ansible* entry points.
install_ansible() {
  local out=$1 dir venv py
  dir=$(dirname "$out")
  venv=$dir/venv
  py=${PYTHON:-python3}
  rm -rf "$venv"
  (
    set -x
    "$py" -m venv "$venv"
    "$venv/bin/python" -m pip install --disable-pip-version-check --no-input --quiet "${ANSIBLE_PIP_PINS[@]}"
    "$venv/bin/python" -m pip freeze --disable-pip-version-check > "$dir/pip-freeze.txt"
  )
  local f
  for f in "$venv"/bin/ansible*; do
    ln -s "../venv/bin/$(basename "$f")" "$out/$(basename "$f")"
  done
}

# ---- driver ----------------------------------------------------------------
fmt_secs() { printf '%dm%02ds' $(($1 / 60)) $(($1 % 60)); }

install_one() {
  local name=$1 ver dir bindir stage log start secs
  ver=$(tool_version "$name")
  dir=$TOOLS_DIR/$(tool_dirname "$name")
  bindir=$dir/bin
  if tool_ok "$name"; then
    echo "tools: $name $ver: cached"
    return 0
  fi
  mkdir -p "$TOOLS_DIR/logs" "$dir"
  log=$TOOLS_DIR/logs/$(tool_dirname "$name").log
  stage=$dir/bin.new
  rm -rf "$stage"; mkdir -p "$stage"
  start=$(date +%s)
  echo "== $(date -u +%FT%TZ) building $name $ver into $bindir" > "$log"
  if ! ( set -euo pipefail; "install_$name" "$stage" ) >> "$log" 2>&1; then
    echo "tools: $name $ver: FAILED (log: $log)" >&2
    tail -n 30 "$log" | sed 's/^/    /' >&2
    return 1
  fi
  rm -rf "$bindir"
  mv "$stage" "$bindir"
  secs=$(( $(date +%s) - start ))
  echo "== built in ${secs}s ($(fmt_secs "$secs"))" >> "$log"
  printf '%s %s %s %ss\n' "$(date -u +%FT%TZ)" "$name" "$ver" "$secs" >> "$TOOLS_DIR/build-times.txt"
  if ! tool_ok "$name"; then
    echo "tools: $name $ver: FAILED: built but '--version' check fails (log: $log)" >&2
    return 1
  fi
  echo "tools: $name $ver: built"
}

# Colon-joined bin dirs of the given tools (in order).
path_of() {
  local out="" t
  for t in "$@"; do out="${out:+$out:}$(tool_bindir "$t")"; done
  echo "$out"
}

sh_quote() { printf "'%s'" "$(printf '%s' "$1" | sed "s/'/'\\\\''/g")"; }

write_env_sh() {
  local env=$TOOLS_DIR/env.sh tmp i dirs=""
  # Prepend in reverse so that the first tool of ALL_TOOLS ends up first on PATH.
  for ((i = ${#ALL_TOOLS[@]} - 1; i >= 0; i--)); do
    dirs="$dirs $(sh_quote "$(tool_bindir "${ALL_TOOLS[$i]}")")"
  done
  tmp=$(mktemp "$TOOLS_DIR/.env.sh.XXXXXX")
  cat > "$tmp" <<EOF
# Generated by orchd tests/tools/install-tools.sh - do not edit.
# Usage (sh/bash):  . $TOOLS_DIR/env.sh
# Puts the pinned test tools first on PATH: tofu $TOFU_VERSION, sops $SOPS_VERSION,
# age $AGE_VERSION, ansible-core $ANSIBLE_CORE_VERSION, pulumi $PULUMI_VERSION (+ pulumi-language-yaml $PULUMI_YAML_VERSION).
# etcd $ETCD_VERSION (+ etcdctl), kube-apiserver $KUBE_VERSION, kubectl $KUBECTL_VERSION, helm $HELM_VERSION.
for _orchd_tools_d in$dirs; do
  case ":\$PATH:" in
    *":\$_orchd_tools_d:"*) ;;
    *) PATH="\$_orchd_tools_d\${PATH:+:\$PATH}" ;;
  esac
done
unset _orchd_tools_d
export PATH
# The machines running the tests are offline: no update checks.
: "\${PULUMI_SKIP_UPDATE_CHECK:=true}"
: "\${SOPS_DISABLE_VERSION_CHECK:=true}"
export PULUMI_SKIP_UPDATE_CHECK SOPS_DISABLE_VERSION_CHECK
EOF
  chmod 644 "$tmp"
  mv -f "$tmp" "$env"
}

# ---- offline smoke tests (--verify) ----------------------------------------
# Run "$@" without network if this machine lets us make a network namespace
# (only loopback, brought up); otherwise run it as is.
offline() {
  if [ "${ORCHD_TOOLS_VERIFY_NETNS:-1}" = 1 ] && command -v unshare >/dev/null 2>&1 &&
     unshare -n true >/dev/null 2>&1; then
    unshare -n bash -c 'ip link set lo up 2>/dev/null || true; exec "$@"' offline "$@"
  else
    "$@"
  fi
}

verify_tofu() {
  cat > main.tf <<'EOF'
resource "terraform_data" "x" {
  input = "hi"
}
output "x" {
  value = terraform_data.x.output
}
EOF
  tofu version
  tofu init -input=false -no-color
  tofu apply -auto-approve -input=false -no-color
  tofu output -json | tee out.json
  grep -q '"value": *"hi"' out.json
}

verify_age() {
  age-keygen -o key.txt 2>/dev/null
  echo "orchd age smoke" > plain.txt
  age -r "$(age-keygen -y key.txt)" -o plain.txt.age plain.txt
  age -d -i key.txt plain.txt.age | grep -qx "orchd age smoke"
}

verify_sops() {
  age-keygen -o key.txt 2>/dev/null
  printf 'db:\n  password: s3cret\n  user: orchd\n' > secret.yaml
  sops --disable-version-check encrypt --age "$(age-keygen -y key.txt)" secret.yaml > secret.enc.yaml
  if grep -q s3cret secret.enc.yaml; then echo "plaintext left in encrypted file" >&2; return 1; fi
  grep -q 'ENC\[' secret.enc.yaml
  SOPS_AGE_KEY_FILE=$PWD/key.txt sops --disable-version-check decrypt secret.enc.yaml | grep -q 'password: s3cret'
}

verify_ansible() {
  cat > play.yml <<'EOF'
- hosts: localhost
  gather_facts: false
  tasks:
    - name: write a file
      ansible.builtin.copy:
        dest: "{{ playbook_dir }}/ansible-out.txt"
        content: "orchd ansible smoke\n"
    - ansible.builtin.command: cat "{{ playbook_dir }}/ansible-out.txt"
      register: r
      changed_when: false
    - ansible.builtin.assert:
        that: r.stdout == "orchd ansible smoke"
EOF
  # Interpreter discovery may pick a broken pyenv shim (python3.13 here):
  # run the local modules with the venv's own python.
  ANSIBLE_LOCAL_TEMP=$PWD/.ansible-tmp ANSIBLE_HOME=$PWD/.ansible \
    ansible-playbook -i localhost, -c local \
    -e 'ansible_python_interpreter={{ ansible_playbook_python }}' play.yml
}

verify_pulumi() {
  export PULUMI_SKIP_UPDATE_CHECK=true PULUMI_HOME=$PWD/home PULUMI_CONFIG_PASSPHRASE=x
  mkdir -p backend proj
  pulumi version
  pulumi login "file://$PWD/backend"
  cat > proj/Pulumi.yaml <<'EOF'
name: orchd-smoke
runtime: yaml
description: offline smoke test, no resources
variables:
  greeting: hello
outputs:
  greeting: ${greeting}
  token:
    fn::secret: sekrit
EOF
  (
    cd proj
    pulumi stack init dev --non-interactive
    pulumi up --yes --non-interactive --skip-preview
    pulumi stack output --json --show-secrets | tee ../out.json
  )
  grep -q '"greeting": *"hello"' out.json
  grep -q '"token": *"sekrit"' out.json
}

# A single-member etcd on loopback ports of its own: etcdctl put/get, then
# the v3 JSON gateway that orchd's etcd engine talks to (keys are base64).
verify_etcd() {
  local cport=$((20000 + RANDOM % 20000)) pport
  pport=$((cport + 1))
  etcd --version
  etcd --data-dir "$PWD/data" --listen-client-urls "http://127.0.0.1:$cport" \
    --advertise-client-urls "http://127.0.0.1:$cport" \
    --listen-peer-urls "http://127.0.0.1:$pport" \
    --initial-advertise-peer-urls "http://127.0.0.1:$pport" \
    --initial-cluster "default=http://127.0.0.1:$pport" > etcd.log 2>&1 &
  local pid=$! i
  trap "kill $pid 2>/dev/null; wait $pid 2>/dev/null || true" EXIT
  for i in $(seq 100); do
    etcdctl --endpoints "127.0.0.1:$cport" endpoint health >/dev/null 2>&1 && break
    sleep 0.1
  done
  etcdctl --endpoints "127.0.0.1:$cport" put orchd/smoke hello
  etcdctl --endpoints "127.0.0.1:$cport" get --print-value-only orchd/smoke | grep -qx hello
  # key "orchd/smoke" in base64, value "hello" is aGVsbG8=
  curl -sS -X POST "http://127.0.0.1:$cport/v3/kv/range" -d '{"key":"b3JjaGQvc21va2U="}' | tee range.json
  grep -q '"value":"aGVsbG8="' range.json
}

# A control plane on loopback (tests/cluster.sh: etcd + kube-apiserver, client
# certificates), then kubectl server-side apply, diff and delete against it.
verify_kube-apiserver() {
  kube-apiserver --version
  "$ORCHD_CLUSTER_SH" up "$PWD/c"
  trap '"$ORCHD_CLUSTER_SH" down "$PWD/c"' EXIT
  export KUBECONFIG=$PWD/c/kubeconfig
  kubectl get --raw /readyz | grep -qx ok
  kubectl create configmap smoke --from-literal=k=v --dry-run=client -o yaml > cm.yaml
  kubectl apply --server-side -f cm.yaml
  kubectl diff --server-side -f cm.yaml
  sed 's/k: v/k: w/' cm.yaml > cm2.yaml
  if kubectl diff --server-side -f cm2.yaml; then echo "diff found no change" >&2; return 1; fi
  kubectl delete -f cm.yaml
}

verify_kubectl() {
  kubectl version --client
  kubectl create configmap smoke --from-literal=k=v --dry-run=client -o json | grep -q '"k": "v"'
}

# helm offline: a new chart renders and lints.
verify_helm() {
  export HELM_CACHE_HOME=$PWD/h HELM_CONFIG_HOME=$PWD/h HELM_DATA_HOME=$PWD/h
  helm version --short
  helm create demo
  helm lint demo
  helm template smoke ./demo | grep -q '^kind: Deployment'
}

verify_one() {
  local name=$1 tmp log rc=0
  tmp=$(mktemp -d "${TMPDIR:-/tmp}/orchd-tools-verify.XXXXXX")
  log=$TOOLS_DIR/logs/verify-$name.log
  mkdir -p "$TOOLS_DIR/logs"
  (
    cd "$tmp"
    PATH="$(path_of "${ALL_TOOLS[@]}"):$PATH"
    ORCHD_CLUSTER_SH=$SCRIPT_DIR/../cluster.sh
    export PATH ORCHD_CLUSTER_SH
    export -f "verify_$name"
    offline bash -euo pipefail -c "set -x; verify_$name"
  ) > "$log" 2>&1 || rc=$?
  rm -rf "$tmp"
  if [ $rc -eq 0 ]; then
    echo "tools: verify $name: ok"
  else
    echo "tools: verify $name: FAILED (log: $log)" >&2
    tail -n 30 "$log" | sed 's/^/    /' >&2
    return 1
  fi
}

# ---- main ------------------------------------------------------------------
main() {
  local mode=install verify=0 a
  local -a names=()
  for a in "$@"; do
    case "$a" in
      --print-path) mode=print-path ;;
      --list) mode=list ;;
      --verify) verify=1 ;;
      -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; return 0 ;;
      -*) die "unknown option '$a'" ;;
      *) names+=("$(canon_name "$a")") ;;
    esac
  done
  [ ${#names[@]} -gt 0 ] || names=("${ALL_TOOLS[@]}")

  case "$mode" in
    print-path) path_of "${names[@]}"; return 0 ;;
    list) for a in "${names[@]}"; do echo "$a $(tool_version "$a") $(tool_bindir "$a")"; done; return 0 ;;
  esac

  case "$TOOLS_DIR" in /*) ;; *) die "ORCHD_TOOLS_DIR must be an absolute path: $TOOLS_DIR" ;; esac
  mkdir -p "$TOOLS_DIR"
  # One installer at a time per cache (parallel make, two terminals...).
  if command -v flock >/dev/null 2>&1; then
    exec 9> "$TOOLS_DIR/.lock"
    flock 9
  fi

  local failed=0 t
  for t in "${names[@]}"; do
    # age is needed to verify sops
    install_one "$t" || failed=1
  done
  write_env_sh
  if [ $failed -ne 0 ]; then return 1; fi

  if [ $verify -eq 1 ]; then
    for t in "${names[@]}"; do
      if [ "$t" = sops ] && ! tool_ok age; then install_one age || failed=1; fi
      # the control plane's smoke test needs etcd and kubectl
      if [ "$t" = kube-apiserver ]; then
        tool_ok etcd || install_one etcd || failed=1
        tool_ok kubectl || install_one kubectl || failed=1
      fi
      verify_one "$t" || failed=1
    done
  fi
  return $failed
}

main "$@"
