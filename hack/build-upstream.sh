#!/usr/bin/env bash
# Builds the pinned upstream binaries (etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler, kubectl, kube-proxy, kubelet, kubeadm, helm, coredns) from their Go modules into a versioned cache directory
# outside the repo, then verifies each one's --version. Idempotent: a complete cache is reused.
# Prints the cache's bin directory as its last line.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../operators/devcluster/versions.env
. "$here/../operators/devcluster/versions.env"
# shellcheck source=lib-kube.sh
. "$here/lib-kube.sh"

cache_root=${KNET_CACHE:-$HOME/.cache/knet}
bin="$cache_root/upstream/k8s-$KUBE_VERSION-etcd-$ETCD_VERSION-helm-$HELM_VERSION-coredns-$COREDNS_VERSION/bin"
names=(etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kube-proxy kubelet kubeadm helm coredns)

# The first line a command prints, read whole: `cmd | head -1` under pipefail fails at random when
# the command is still writing after head has gone (SIGPIPE, exit 141), as a cold run showed.
first_line() { local out; out=$("$@" 2>/dev/null) || return 1; printf '%s' "${out%%$'\n'*}"; }

verify() {
  local v
  v=$(first_line "$bin/etcd" --version);                  [[ $v == *"${ETCD_VERSION#v}"* ]] || { echo "etcd reports '$v'" >&2; return 1; }
  for b in kube-apiserver kube-controller-manager kube-scheduler kube-proxy kubelet; do
    v=$(first_line "$bin/$b" --version);                  [[ $v == *"$KUBE_VERSION"* ]] || { echo "$b reports '$v'" >&2; return 1; }
  done
  v=$(first_line "$bin/kubeadm" version -o short);       [[ $v == *"$KUBE_VERSION"* ]] || { echo "kubeadm reports '$v'" >&2; return 1; }
  v=$(first_line "$bin/kubectl" version --client);        [[ $v == *"$KUBE_VERSION"* ]] || { echo "kubectl reports '$v'" >&2; return 1; }
  v=$(first_line "$bin/helm" version --short);            [[ $v == "$HELM_VERSION"* ]] || { echo "helm reports '$v'" >&2; return 1; }
  v=$(first_line "$bin/coredns" -version);                [[ $v == *"${COREDNS_VERSION#v}"* ]] || { echo "coredns reports '$v'" >&2; return 1; }
}

complete=1
for n in "${names[@]}"; do [[ -x "$bin/$n" ]] || complete=0; done
if [[ $complete == 1 ]] && verify; then
  echo "upstream binaries cached in $bin" >&2
  echo "$bin"
  exit 0
fi

command -v go >/dev/null || { echo "error: go toolchain not found (needed to build upstream binaries)" >&2; exit 1; }
export GOTOOLCHAIN=local GOFLAGS=-buildvcs=false CGO_ENABLED=0
start=$(date +%s)
work="$cache_root/build"
mkdir -p "$work" "$bin"

# A wrapper module is prepared once per content: its `.ready` holds what it was prepared for.
stale() { [[ "$(cat "$1/.ready" 2>/dev/null)" != "$2" ]]; }

# --- Kubernetes: the wrapper module of hack/lib-kube.sh, importing the commands.
kw="$work/kubernetes-$KUBE_VERSION"
kube_cmds="kube-apiserver kube-controller-manager kube-scheduler kubectl kube-proxy kubelet kubeadm"
# shellcheck disable=SC2046 # one package path per command
kube_wrapper "$kw" upstream-kubernetes "$kube_cmds" $(printf 'k8s.io/kubernetes/cmd/%s ' $kube_cmds)
kld=$(kube_ldflags)
echo "building kubernetes $KUBE_VERSION ($kube_cmds)..." >&2
# shellcheck disable=SC2046 # one package path per command
(cd "$kw" && go build -trimpath -ldflags "-s -w $kld" -o "$bin/" $(printf 'k8s.io/kubernetes/cmd/%s ' $kube_cmds))

# --- etcd: its server module replaces its sibling modules with relative paths, which a
# dependency's go.mod cannot do, so the wrapper pins them to the same release instead.
ew="$work/etcd-$ETCD_VERSION"
mkdir -p "$ew"
if stale "$ew" "$ETCD_VERSION"; then
  (cd "$ew"
   cat > go.mod <<MOD
module knet.local/upstream-etcd

go 1.26.0

require go.etcd.io/etcd/server/v3 $ETCD_VERSION

replace (
	go.etcd.io/etcd/api/v3 => go.etcd.io/etcd/api/v3 $ETCD_VERSION
	go.etcd.io/etcd/client/pkg/v3 => go.etcd.io/etcd/client/pkg/v3 $ETCD_VERSION
	go.etcd.io/etcd/client/v3 => go.etcd.io/etcd/client/v3 $ETCD_VERSION
	go.etcd.io/etcd/pkg/v3 => go.etcd.io/etcd/pkg/v3 $ETCD_VERSION
)
MOD
   cat > tools.go <<'GO'
//go:build tools

package tools

import _ "go.etcd.io/etcd/server/v3"
GO
   go mod tidy -e >/dev/null 2>&1 || true
   go mod tidy
   echo "$ETCD_VERSION" > .ready)
fi
echo "building etcd $ETCD_VERSION..." >&2
(cd "$ew" && go build -trimpath -ldflags "-s -w" -o "$bin/etcd" go.etcd.io/etcd/server/v3)

# --- helm
hw="$work/helm-$HELM_VERSION"
mkdir -p "$hw"
helm_major=${HELM_VERSION%%.*}
if stale "$hw" "$HELM_VERSION"; then
  (cd "$hw"
   printf 'module knet.local/upstream-helm\n\ngo 1.26.0\n\nrequire helm.sh/helm/%s %s\n' "$helm_major" "$HELM_VERSION" > go.mod
   printf '//go:build tools\n\npackage tools\n\nimport _ "helm.sh/helm/%s/cmd/helm"\n' "$helm_major" > tools.go
   go mod tidy -e >/dev/null 2>&1 || true
   go mod tidy
   echo "$HELM_VERSION" > .ready)
fi
echo "building helm $HELM_VERSION..." >&2
(cd "$hw" && go build -trimpath \
   -ldflags "-s -w -X helm.sh/helm/$helm_major/internal/version.version=$HELM_VERSION -X helm.sh/helm/$helm_major/internal/version.gitTreeState=clean" \
   -o "$bin/helm" "helm.sh/helm/$helm_major/cmd/helm")

# --- CoreDNS (the anchor knet's DNS is measured and differential-tested against)
cw="$work/coredns-$COREDNS_VERSION"
mkdir -p "$cw"
if stale "$cw" "$COREDNS_VERSION"; then
  (cd "$cw"
   printf 'module knet.local/upstream-coredns\n\ngo 1.26.0\n\nrequire github.com/coredns/coredns %s\n' "$COREDNS_VERSION" > go.mod
   printf '//go:build tools\n\npackage tools\n\nimport _ "github.com/coredns/coredns"\n' > tools.go
   go mod tidy -e >/dev/null 2>&1 || true
   go mod tidy
   echo "$COREDNS_VERSION" > .ready)
fi
echo "building coredns $COREDNS_VERSION..." >&2
(cd "$cw" && go build -trimpath -ldflags "-s -w" -o "$bin/coredns" github.com/coredns/coredns)

verify
echo "upstream binaries built in $(( $(date +%s) - start ))s into $bin" >&2
echo "$bin"
