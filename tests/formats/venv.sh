# tests/formats/venv.sh - sourced by the validators: a venv holding one
# package from PyPI, pinned by the sha256 of its wheel, made once.
#
# pinned_venv DIR PACKAGE VERSION WHEEL_SHA256: make DIR a venv with
# PACKAGE==VERSION (no dependencies) unless it already is one; exits 2
# (through the caller's die) when it cannot.  Needs $PYTHON and die().

pinned_venv_ok()
{
	[ -x "$1/bin/python" ] &&
		"$1/bin/python" -c 'import sys; from importlib.metadata import version; sys.exit(version(sys.argv[1]) != sys.argv[2])' \
			"$2" "$3" 2>/dev/null
}

pinned_venv()
{
	_dir=$1 _pkg=$2 _ver=$3 _sha=$4
	pinned_venv_ok "$_dir" "$_pkg" "$_ver" && return 0
	mkdir -p "$(dirname "$_dir")"
	_tmp=$_dir.tmp.$$
	rm -rf "$_tmp"
	echo "creating a venv with $_pkg $_ver in $_dir" >&2
	"$PYTHON" -m venv "$_tmp" ||
		{ rm -rf "$_tmp"; die "'$PYTHON -m venv' failed (Debian: apt-get install python3-venv)"; }
	printf '%s==%s --hash=sha256:%s\n' "$_pkg" "$_ver" "$_sha" > "$_tmp/requirements.txt"
	"$_tmp/bin/python" -m pip install -q --disable-pip-version-check --no-deps \
		--only-binary :all: --require-hashes -r "$_tmp/requirements.txt" >&2 ||
		{ rm -rf "$_tmp"; die "pip could not install $_pkg==$_ver"; }
	rm -rf "$_dir"
	mv "$_tmp" "$_dir"
	pinned_venv_ok "$_dir" "$_pkg" "$_ver" || die "the venv in $_dir is not usable"
}
