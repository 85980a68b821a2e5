#!/usr/bin/env bash
# Builds what a kind node runs besides Kubernetes (kind itself, containerd 2, runc, crictl and the CNI
# plugins kind's node image carries) from their Go modules into a versioned cache directory outside the
# repo, then checks each one's version. Idempotent: a complete cache is reused. kubelet and kubeadm come
# from hack/build-upstream.sh (the same wrapper module as the control plane).
# Prints the cache's bin directory as its last line.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../operators/kind/versions.env
. "$here/../operators/kind/versions.env"

cache_root=${KNET_CACHE:-$HOME/.cache/knet}
bin="$cache_root/kind/kind-$KIND_VERSION-containerd-$CONTAINERD_VERSION-runc-$RUNC_VERSION-crictl-$CRI_TOOLS_VERSION-cni-$CNI_PLUGINS_VERSION/bin"
names=(kind containerd ctr containerd-shim-runc-v2 runc crictl cni/ptp cni/host-local cni/portmap cni/loopback)

first_line() { local out; out=$("$@" 2>&1) || return 1; printf '%s' "${out%%$'\n'*}"; }

verify() {
  local v
  v=$(first_line "$bin/kind" version);                 [[ $v == *"$KIND_VERSION"* ]] || { echo "kind reports '$v'" >&2; return 1; }
  v=$(first_line "$bin/containerd" --version);         [[ $v == *"$CONTAINERD_VERSION"* ]] || { echo "containerd reports '$v'" >&2; return 1; }
  v=$(first_line "$bin/runc" --version);               [[ $v == *"${RUNC_VERSION#v}"* ]] || { echo "runc reports '$v'" >&2; return 1; }
  v=$(first_line "$bin/crictl" --version);             [[ $v == *"$CRI_TOOLS_VERSION"* ]] || { echo "crictl reports '$v'" >&2; return 1; }
  # A CNI plugin with no command on stdin prints its name and version.
  v=$(CNI_COMMAND=VERSION "$bin/cni/ptp" </dev/null 2>&1 || true)
  [[ $v == *cniVersion* ]] || { echo "ptp reports '$v'" >&2; return 1; }
}

complete=1
for n in "${names[@]}"; do [[ -x "$bin/$n" ]] || complete=0; done
if [[ $complete == 1 ]] && verify; then
  echo "kind node binaries cached in $bin" >&2
  echo "$bin"
  exit 0
fi

command -v go >/dev/null || { echo "error: go toolchain not found (needed to build kind's node binaries)" >&2; exit 1; }
# runc links libseccomp (cgo): Debian's headers.
if ! dpkg-query -W -f='${Status}' libseccomp-dev 2>/dev/null | grep -q "install ok installed"; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends libseccomp-dev >/dev/null
fi
export GOTOOLCHAIN=local GOFLAGS=-buildvcs=false
start=$(date +%s)
work="$cache_root/build"
mkdir -p "$work" "$bin/cni"

# One wrapper module per upstream module: requires it at the pinned version, imports the commands.
#   wrapper DIR MODULE VERSION PACKAGE...
wrapper() {
  local dir=$1 mod=$2 version=$3; shift 3
  mkdir -p "$dir"
  [[ "$(cat "$dir/.ready" 2>/dev/null)" == "$mod $version $*" ]] && return 0
  (cd "$dir"
   printf 'module knet.local/upstream-%s\n\ngo 1.26.0\n\nrequire %s %s\n' "$(basename "$dir")" "$mod" "$version" > go.mod
   { printf '//go:build tools\n\npackage tools\n\nimport (\n'
     for p in "$@"; do printf '\t_ "%s"\n' "$p"; done
     printf ')\n'; } > tools.go
   go mod tidy -e >/dev/null 2>&1 || true
   go mod tidy
   echo "$mod $version $*" > .ready)
}

echo "building kind $KIND_VERSION..." >&2
wrapper "$work/kind-$KIND_VERSION" sigs.k8s.io/kind "$KIND_VERSION" sigs.k8s.io/kind
(cd "$work/kind-$KIND_VERSION" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$bin/kind" sigs.k8s.io/kind)

echo "building containerd $CONTAINERD_VERSION..." >&2
cmod=github.com/containerd/containerd/v2
wrapper "$work/containerd-$CONTAINERD_VERSION" "$cmod" "$CONTAINERD_VERSION" \
  "$cmod/cmd/containerd" "$cmod/cmd/ctr" "$cmod/cmd/containerd-shim-runc-v2"
cld="-s -w -X $cmod/version.Version=$CONTAINERD_VERSION -X $cmod/version.Revision=$CONTAINERD_VERSION -X $cmod/version.Package=$cmod"
(cd "$work/containerd-$CONTAINERD_VERSION" &&
 CGO_ENABLED=0 go build -trimpath -tags "no_btrfs no_devmapper no_zfs no_aufs" -ldflags "$cld" -o "$bin/" \
   "$cmod/cmd/containerd" "$cmod/cmd/ctr" "$cmod/cmd/containerd-shim-runc-v2")

echo "building runc $RUNC_VERSION..." >&2
wrapper "$work/runc-$RUNC_VERSION" github.com/opencontainers/runc "$RUNC_VERSION" github.com/opencontainers/runc
(cd "$work/runc-$RUNC_VERSION" &&
 CGO_ENABLED=1 go build -trimpath -tags seccomp -ldflags "-s -w -X main.version=${RUNC_VERSION#v}" -o "$bin/runc" github.com/opencontainers/runc)

echo "building crictl $CRI_TOOLS_VERSION..." >&2
wrapper "$work/cri-tools-$CRI_TOOLS_VERSION" sigs.k8s.io/cri-tools "$CRI_TOOLS_VERSION" sigs.k8s.io/cri-tools/cmd/crictl
(cd "$work/cri-tools-$CRI_TOOLS_VERSION" &&
 CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X sigs.k8s.io/cri-tools/pkg/version.Version=$CRI_TOOLS_VERSION" -o "$bin/crictl" sigs.k8s.io/cri-tools/cmd/crictl)

echo "building CNI plugins $CNI_PLUGINS_VERSION..." >&2
pmod=github.com/containernetworking/plugins
wrapper "$work/cni-plugins-$CNI_PLUGINS_VERSION" "$pmod" "$CNI_PLUGINS_VERSION" \
  "$pmod/plugins/main/ptp" "$pmod/plugins/ipam/host-local" "$pmod/plugins/meta/portmap" "$pmod/plugins/main/loopback"
(cd "$work/cni-plugins-$CNI_PLUGINS_VERSION" &&
 CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X $pmod/pkg/utils/buildversion.BuildVersion=$CNI_PLUGINS_VERSION" -o "$bin/cni/" \
   "$pmod/plugins/main/ptp" "$pmod/plugins/ipam/host-local" "$pmod/plugins/meta/portmap" "$pmod/plugins/main/loopback")

verify
echo "kind node binaries built in $(( $(date +%s) - start ))s into $bin" >&2
echo "$bin"
