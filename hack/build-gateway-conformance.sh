#!/usr/bin/env bash
# Builds, offline and pinned, the Gateway API conformance suite of sigs.k8s.io/gateway-api (its
# `conformance` module) and the images its base manifests run:
#   gateway-conformance.test  `go test -c` of a wrapper module whose one test calls
#                             conformance.RunConformance, as the module's own conformance_test.go does
#                             (the module's go.mod replaces gateway-api with `../`, which a module-cache
#                             copy cannot build); the suite's flags (--gateway-class, --supported-features,
#                             --conformance-profiles, --report-output, ...) are its own.
#   echo-basic                the suite's echo backend (conformance/echo-basic), static, in an image on
#                             hack/build-test-images.sh's Debian base under every echo-basic name that
#                             conformance/base/manifests.yaml asks for (read from the manifests here).
#   coredns                   the UDP backend the same manifests run: the CoreDNS hack/build-upstream.sh
#                             builds, under the name the manifests ask for.
# Idempotent: binaries are reused while built from the pinned module; the image archive while a hash of
# its inputs matches its stamp. Prints two lines: the binaries' directory, then the image archive.
set -euo pipefail
root_dir=$(cd "$(dirname "$0")/.." && pwd)
say() { echo "$*" >&2; }

GATEWAY_API_VERSION=v1.6.3
module=sigs.k8s.io/gateway-api/conformance
cache_root=${KNET_CACHE:-$HOME/.cache/knet}
bin="$cache_root/gateway/gateway-api-$GATEWAY_API_VERSION/bin"
archive="$cache_root/gateway/gateway-api-$GATEWAY_API_VERSION/images.tar"
stamp="$archive.inputs"
base=localhost/knet-base:bookworm

command -v go >/dev/null || { say "error: go toolchain not found"; exit 1; }
export GOTOOLCHAIN=local GOFLAGS=-buildvcs=false CGO_ENABLED=0
wrapper="$cache_root/build/gateway-api-conformance-$GATEWAY_API_VERSION"
mkdir -p "$wrapper" "$bin"

# built_from BINARY: true when the binary's build info names the pinned conformance module. A test binary
# records no dependencies, so the wrapper's resolved version is written beside it (BINARY.from) when built.
built_from() {
  if [[ $1 == *.test ]]; then [[ -x $1 && "$(cat "$1.from" 2>/dev/null)" == "$module $GATEWAY_API_VERSION" ]]; return; fi
  go version -m "$1" 2>/dev/null | awk '$1 == "mod" || $1 == "dep" {print $2, $3}' | grep -qxF "$module $GATEWAY_API_VERSION"
}

if ! built_from "$bin/gateway-conformance.test" || ! built_from "$bin/echo-basic"; then
  if [[ "$(cat "$wrapper/.ready" 2>/dev/null)" != "$GATEWAY_API_VERSION" ]]; then
    say "== preparing the wrapper module for $module@$GATEWAY_API_VERSION"
    (cd "$wrapper"
     printf 'module knet.local/gateway-conformance\n\ngo 1.26.0\n\nrequire (\n\t%s %s\n\tsigs.k8s.io/gateway-api %s\n)\n' \
       "$module" "$GATEWAY_API_VERSION" "$GATEWAY_API_VERSION" > go.mod
     cat > conformance_test.go <<'GO'
package conformance_test

import (
	"testing"

	"sigs.k8s.io/gateway-api/conformance"
)

// TestConformance runs the Gateway API conformance suite with the options its flags give.
func TestConformance(t *testing.T) {
	conformance.RunConformance(t)
}
GO
     printf '//go:build tools\n\npackage tools\n\nimport _ "sigs.k8s.io/gateway-api/conformance/echo-basic"\n' > tools.go
     go mod tidy
     echo "$GATEWAY_API_VERSION" > .ready)
  fi
  start=$SECONDS
  say "== building gateway-conformance.test and echo-basic ($module@$GATEWAY_API_VERSION)"
  (cd "$wrapper"
   go test -c -trimpath -ldflags "-s -w" -o "$bin/gateway-conformance.test" .
   go list -m "$module" > "$bin/gateway-conformance.test.from"
   go build -trimpath -ldflags "-s -w" -o "$bin/echo-basic" "$module/echo-basic")
  for b in gateway-conformance.test echo-basic; do
    built_from "$bin/$b" || { say "error: $bin/$b is not built from $module $GATEWAY_API_VERSION"; exit 1; }
  done
  say "built in $((SECONDS - start))s into $bin"
fi
help=$("$bin/gateway-conformance.test" -help 2>&1 || true)
[[ $help == *-gateway-class* && $help == *-supported-features* ]] || { say "error: gateway-conformance.test -help: '${help:0:300}'"; exit 1; }

# --- the images, named as the module's base manifests name them.
src=$(cd "$wrapper" && go list -m -f '{{.Dir}}' "$module")
manifests="$src/base/manifests.yaml"
images=$(sed -n 's/^[[:space:]]*image:[[:space:]]*\([^[:space:]]*\).*/\1/p' "$manifests" | sort -u)
mapfile -t echo_names < <(grep -E '/echo-basic:' <<<"$images")
mapfile -t coredns_names < <(grep -E '/coredns:' <<<"$images")
others=$(grep -vE '/(echo-basic|coredns):' <<<"$images" || true)
[[ ${#echo_names[@]} -ge 1 && ${#coredns_names[@]} -eq 1 ]] || { say "error: $manifests names echo-basic '${echo_names[*]}', coredns '${coredns_names[*]}'"; exit 1; }
[[ -z $others ]] || { say "error: $manifests names images this script does not build: $others"; exit 1; }
names=("${echo_names[@]}" "${coredns_names[@]}")

upstream_bin=$("$root_dir/hack/build-upstream.sh")
inputs=$( { cat "$root_dir/hack/build-gateway-conformance.sh"; sha256sum "$bin/echo-basic" "$upstream_bin/coredns" | cut -d' ' -f1
            echo "${names[*]}"; } | sha256sum | cut -c1-16)
if [[ -s $archive && "$(cat "$stamp" 2>/dev/null)" == "$inputs" ]]; then
  say "gateway conformance images (${names[*]}) cached in $archive"
  echo "$bin"
  echo "$archive"
  exit 0
fi

# The Debian base comes from hack/build-test-images.sh (instant when cached).
if ! buildah inspect --type image "$base" >/dev/null 2>&1; then "$root_dir/hack/build-test-images.sh" >/dev/null; fi
export BUILDAH_ISOLATION=chroot
work=$(mktemp -d /var/tmp/knet-gateway-images.XXXXXX)
ctr=""
cleanup() { [[ -z $ctr ]] || buildah rm "$ctr" >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT
path_env=PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

# image NAME BINARY ENTRYPOINT LABEL: BINARY at ENTRYPOINT on the base, committed as NAME; a layer that
# deletes nothing of the base's (the node image carries the layers unpacked).
image() {
  local name=$1 binary=$2 entry=$3 label=$4 deleted
  ctr=$(buildah from --quiet "$base")
  buildah copy --quiet --chmod 0755 "$ctr" "$binary" "$entry" >/dev/null
  buildah config --env "$path_env" --entrypoint "[\"$entry\"]" --label "io.knet.built-from=$label" "$ctr"
  buildah commit --quiet --rm "$ctr" "$name" >/dev/null
  ctr=""
  deleted=$(podman image diff "$name" | grep '^D ' || true)
  [[ -z $deleted ]] || { say "error: $name's top layer deletes files of its base: $deleted"; exit 1; }
}

start=$SECONDS
say "== ${echo_names[0]}: $base + echo-basic"
image "${echo_names[0]}" "$bin/echo-basic" /echo-basic "$module@$GATEWAY_API_VERSION echo-basic, Debian bookworm"
for n in "${echo_names[@]:1}"; do buildah tag "${echo_names[0]}" "$n"; done
say "== ${coredns_names[0]}: $base + coredns"
image "${coredns_names[0]}" "$upstream_bin/coredns" /coredns "knet's CoreDNS build, Debian bookworm"

say "== saving ${names[*]}"
podman save --quiet -m --format docker-archive -o "$work/images.tar" "${names[@]}"
mv "$work/images.tar" "$archive"
echo "$inputs" > "$stamp"
say "gateway conformance images built in $((SECONDS - start))s into $archive"
echo "$bin"
echo "$archive"
