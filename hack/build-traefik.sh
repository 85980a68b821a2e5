#!/usr/bin/env bash
# Builds Traefik v3 (cmd/traefik), the anchor of the ingress and gateway benches, from its Go module into a
# versioned cache directory outside the repo, then checks its version. Idempotent: a built binary is reused.
# Prints the cache's bin directory as its last line. With --cached, builds nothing: exits 1 when the binary is
# not built (the quick benches, which must not wait minutes for a cold build, ask this way).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../bench/versions.env
. "$here/../bench/versions.env"

cache_root=${KNET_CACHE:-$HOME/.cache/knet}
bin="$cache_root/traefik/traefik-$TRAEFIK_VERSION/bin"
module=github.com/traefik/traefik/v3

verify() {
  local v
  v=$("$bin/traefik" version 2>&1) || { echo "traefik version failed: $v" >&2; return 1; }
  [[ $v == *"Version:"*"${TRAEFIK_VERSION#v}"* ]] || { echo "traefik reports '$v'" >&2; return 1; }
}

if [[ -x "$bin/traefik" ]] && verify; then
  echo "traefik cached in $bin" >&2
  echo "$bin"
  exit 0
fi
[[ ${1:-} == --cached ]] && { echo "traefik $TRAEFIK_VERSION is not built in $bin (hack/build-traefik.sh, make traefik)" >&2; exit 1; }

command -v go >/dev/null || { echo "error: go toolchain not found (needed to build traefik)" >&2; exit 1; }
export GOTOOLCHAIN=local GOFLAGS=-buildvcs=false CGO_ENABLED=0
start=$(date +%s)
# Built as the main module, from a writable copy of the module's source rather than from a wrapper module:
# Traefik's go.mod replaces gorilla/mux and go-http-auth with Containous forks and excludes a tencentcloud
# version, and a go.mod's replace and exclude directives hold only in the main module.
src="$cache_root/build/traefik-$TRAEFIK_VERSION"
if [[ "$(cat "$src/.ready" 2>/dev/null)" != "$module $TRAEFIK_VERSION" ]]; then
  dir=$(go mod download -json "$module@$TRAEFIK_VERSION" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
  [[ -n $dir && -d $dir ]] || { echo "error: go mod download $module@$TRAEFIK_VERSION gave no source" >&2; exit 1; }
  rm -rf "$src"
  mkdir -p "$(dirname "$src")"
  cp -r "$dir" "$src"
  chmod -R u+w "$src"
  (cd "$src" && go mod download)
  echo "$module $TRAEFIK_VERSION" > "$src/.ready"
fi
echo "building traefik $TRAEFIK_VERSION..." >&2
mkdir -p "$bin"
(cd "$src" && go build -trimpath \
   -ldflags "-s -w -X $module/pkg/version.Version=${TRAEFIK_VERSION#v} -X $module/pkg/version.Codename=knet-bench" \
   -o "$bin/traefik" ./cmd/traefik)

verify
echo "traefik built in $(( $(date +%s) - start ))s into $bin" >&2
echo "$bin"
