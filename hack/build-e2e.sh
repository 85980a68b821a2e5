#!/usr/bin/env bash
# Builds Kubernetes' end-to-end test binaries from the pinned k8s.io/kubernetes module into a versioned
# cache directory outside the repo: e2e.test (`go test -c k8s.io/kubernetes/test/e2e`), the ginkgo CLI
# at the version kubernetes' go.mod requires, and agnhost (the test image's one binary, static; put into
# its image by hack/build-test-images.sh). Then checks each one's version.
# Idempotent: a complete cache is reused. Prints the cache's bin directory as its last line.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../operators/devcluster/versions.env
. "$here/../operators/devcluster/versions.env"
# shellcheck source=lib-kube.sh
. "$here/lib-kube.sh"

cache_root=${KNET_CACHE:-$HOME/.cache/knet}
bin="$cache_root/e2e/k8s-$KUBE_VERSION/bin"
names=(e2e.test ginkgo agnhost)

# The whole output of a command (stdout and stderr), or failure.
output() { local out; out=$("$@" 2>&1) || return 1; printf '%s' "$out"; }

# The version a go.mod requires of a module.
required_version() { awk -v m="$2" '$1 == m && $2 ~ /^v/ {print $2; exit}' "$1"; }

verify() {
  local v
  v=$(output "$bin/e2e.test" --version)         && [[ $v == *"$KUBE_VERSION"* ]] || { echo "e2e.test --version reports '$v'" >&2; return 1; }
  v=$(output "$bin/e2e.test" --help)            && [[ $v == *"-list-images"* ]]  || { echo "e2e.test --help: '${v:0:300}'" >&2; return 1; }
  v=$(output "$bin/ginkgo" version)             && [[ $v == *"Ginkgo Version ${GINKGO_VERSION#v}"* ]] || { echo "ginkgo version reports '$v' (want $GINKGO_VERSION)" >&2; return 1; }
  v=$(output "$bin/agnhost" --version)          && [[ $v == *"$AGNHOST_VERSION"* ]] || { echo "agnhost --version reports '$v' (want $AGNHOST_VERSION)" >&2; return 1; }
  v=$(output "$bin/agnhost" --help)             && [[ $v == *netexec* ]]         || { echo "agnhost --help: '${v:0:300}'" >&2; return 1; }
  # Static: built without cgo (the image's libc is not the one it was built against).
  v=$(output go version -m "$bin/agnhost")      && [[ $v == *CGO_ENABLED=0* ]]   || { echo "agnhost was not built with CGO_ENABLED=0" >&2; return 1; }
}

command -v go >/dev/null || { echo "error: go toolchain not found (needed to build the e2e binaries)" >&2; exit 1; }
export GOTOOLCHAIN=local GOFLAGS=-buildvcs=false CGO_ENABLED=0
work="$cache_root/build"
mkdir -p "$work"
# kubernetes' go.mod and source tree, from the module cache.
info=$(cd "$work" && go mod download -json "k8s.io/kubernetes@$KUBE_VERSION") || { echo "error: cannot fetch k8s.io/kubernetes@$KUBE_VERSION: $info" >&2; exit 1; }
kube_modfile=$(sed -n 's/.*"GoMod": "\(.*\)".*/\1/p' <<<"$info")
kube_src=$(sed -n 's/.*"Dir": "\(.*\)".*/\1/p' <<<"$info")
GINKGO_VERSION=$(required_version "$kube_modfile" github.com/onsi/ginkgo/v2)
[[ -n $GINKGO_VERSION ]] || { echo "error: kubernetes $KUBE_VERSION's go.mod requires no github.com/onsi/ginkgo/v2" >&2; exit 1; }
AGNHOST_VERSION=$(cat "$kube_src/test/images/agnhost/VERSION")

complete=1
for n in "${names[@]}"; do [[ -x "$bin/$n" ]] || complete=0; done
if [[ $complete == 1 ]] && verify; then
  echo "e2e binaries cached in $bin" >&2
  echo "$bin"
  exit 0
fi

start=$(date +%s)
mkdir -p "$bin"
# A wrapper module is prepared once per content: its `.ready` holds what it was prepared for.
stale() { [[ "$(cat "$1/.ready" 2>/dev/null)" != "$2" ]]; }

# --- e2e.test and agnhost: the wrapper module of hack/lib-kube.sh. `go mod tidy` does not follow the
# imports of a dependency's _test.go files, so tools.go imports what test/e2e's test files import too.
ew="$work/e2e-$KUBE_VERSION"
test_imports=$(sed -n '/^import (/,/^)/p' "$kube_src"/test/e2e/*_test.go | grep -v '^[[:space:]]*//' |
               grep -oE '"[a-z0-9-]+\.[a-z.]+/[^"]+"' | tr -d '"' | sort -u)
tools="k8s.io/kubernetes/test/e2e k8s.io/kubernetes/test/images/agnhost $(tr "\n" " " <<<"$test_imports")"
# shellcheck disable=SC2086 # one package path per word
kube_wrapper "$ew" upstream-e2e "$KUBE_VERSION $tools" $tools
kld=$(kube_ldflags)
echo "building e2e.test $KUBE_VERSION..." >&2
(cd "$ew" && go test -c -trimpath -ldflags "-s -w $kld" -o "$bin/e2e.test" k8s.io/kubernetes/test/e2e)
echo "building agnhost $AGNHOST_VERSION..." >&2
(cd "$ew" && go build -trimpath -ldflags "-s -w -X main.Version=$AGNHOST_VERSION" -o "$bin/agnhost" k8s.io/kubernetes/test/images/agnhost)

# --- ginkgo: its own wrapper, so that the CLI is exactly the version kubernetes requires (in the e2e
# wrapper minimal version selection could pick a newer one).
gw="$work/ginkgo-$GINKGO_VERSION"
mkdir -p "$gw"
if stale "$gw" "$GINKGO_VERSION"; then
  (cd "$gw"
   printf 'module knet.local/upstream-ginkgo\n\ngo 1.26.0\n\nrequire github.com/onsi/ginkgo/v2 %s\n' "$GINKGO_VERSION" > go.mod
   printf '//go:build tools\n\npackage tools\n\nimport _ "github.com/onsi/ginkgo/v2/ginkgo"\n' > tools.go
   go mod tidy -e >/dev/null 2>&1 || true
   go mod tidy
   echo "$GINKGO_VERSION" > .ready)
fi
echo "building ginkgo $GINKGO_VERSION..." >&2
(cd "$gw" && go build -trimpath -ldflags "-s -w" -o "$bin/ginkgo" github.com/onsi/ginkgo/v2/ginkgo)

verify
echo "e2e binaries built in $(( $(date +%s) - start ))s into $bin" >&2
echo "$bin"
