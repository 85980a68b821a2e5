# shellcheck shell=bash
# What hack/build-upstream.sh and hack/build-e2e.sh share (sourced, with KUBE_VERSION set): the wrapper Go
# module that requires k8s.io/kubernetes with every staging module (required as v0.0.0 by kubernetes' own
# go.mod) replaced by its published v0.X.Y, and the -ldflags that stamp the version into the binaries.

# kube_wrapper DIR NAME READY PACKAGE...: prepares the wrapper module in DIR, importing the packages, once per
# READY (DIR/.ready holds what it was prepared for).
kube_wrapper() {
  local dir=$1 name=$2 ready=$3; shift 3
  mkdir -p "$dir"
  [[ "$(cat "$dir/.ready" 2>/dev/null)" == "$ready" ]] && return 0
  local info modfile staging="v0.${KUBE_VERSION#v1.}"   # 37.1 -> staging modules are v0.37.1
  info=$(cd "$dir" && go mod download -json "k8s.io/kubernetes@$KUBE_VERSION") \
    || { echo "error: cannot fetch k8s.io/kubernetes@$KUBE_VERSION: $info" >&2; return 1; }
  modfile=$(sed -n 's/.*"GoMod": "\(.*\)".*/\1/p' <<<"$info")
  {
    echo "module knet.local/$name"
    echo
    echo "go 1.26.0"
    echo
    echo "require k8s.io/kubernetes $KUBE_VERSION"
    echo
    echo "replace ("
    grep -oE '^\s*k8s\.io/[a-z0-9-]+ v0\.0\.0$' "$modfile" | awk -v v="$staging" '{print "\t" $1 " => " $1 " " v}'
    echo ")"
  } > "$dir/go.mod"
  { printf '//go:build tools\n\npackage tools\n\nimport (\n'
    for p in "$@"; do printf '\t_ "%s"\n' "$p"; done
    printf ')\n'; } > "$dir/tools.go"
  (cd "$dir" && { go mod tidy -e >/dev/null 2>&1 || true; } && go mod tidy) || return 1
  echo "$ready" > "$dir/.ready"
}

# kube_ldflags: the -X flags that make `--version` report KUBE_VERSION.
kube_ldflags() {
  local minor=${KUBE_VERSION#v1.} pkg out=""
  minor=${minor%%.*}
  for pkg in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
    out+=" -X '$pkg.gitVersion=$KUBE_VERSION' -X '$pkg.gitMajor=1' -X '$pkg.gitMinor=$minor'"
    out+=" -X '$pkg.gitTreeState=clean' -X '$pkg.buildDate=1970-01-01T00:00:00Z'"
  done
  printf '%s' "$out"
}
