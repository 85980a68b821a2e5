#!/usr/bin/env bash
# Copies the Gateway API standard-channel CRDs, unchanged, from the Go module sigs.k8s.io/gateway-api at a
# pinned version (the module proxy's zip, checked against go.sum's hash by `go mod download`) into
# charts/knet/files/gateway-api/, where templates/gateway-api/crds.yaml installs them unless
# gatewayAPI.installCRDs is false. Never edit the copies: change VERSION and run this again.
#   hack/pin-gateway-api-crds.sh            copy VERSION's config/crd/standard/*.yaml
#   VERSION=v1.6.4 hack/pin-gateway-api-crds.sh
set -euo pipefail
VERSION=${VERSION:-v1.6.3}
root=$(cd "$(dirname "$0")/.." && pwd)
out=$root/charts/knet/files/gateway-api
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
cd "$scratch"
go mod init knet.io/pin-gateway-api >/dev/null 2>&1
dir=$(GOFLAGS=-mod=mod go mod download -json "sigs.k8s.io/gateway-api@$VERSION" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
[[ -d $dir/config/crd/standard ]] || { echo "no config/crd/standard in sigs.k8s.io/gateway-api@$VERSION" >&2; exit 1; }
rm -f "$out"/*.yaml
mkdir -p "$out"
install -m 0644 "$dir"/config/crd/standard/*.yaml "$out"/
echo "$VERSION" > "$out/VERSION"
echo "copied $(ls "$out"/*.yaml | wc -l) files of sigs.k8s.io/gateway-api@$VERSION config/crd/standard into $out"
