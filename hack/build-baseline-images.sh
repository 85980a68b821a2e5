#!/usr/bin/env bash
# Builds, offline, the images a baseline run adds to the kind cluster: the upstream components that stand
# where knet stands, to run the same e2e suites against. kube-proxy is not here: it is kubeadm's image,
# which hack/build-kind-node.sh builds and imports into the node image. Here:
#   registry.k8s.io/networking/kube-network-policies:$KNP_VERSION, NetworkPolicy with nftables and
#   nfqueue, the binary of the sigs.k8s.io/kube-network-policies Go module (static, in a wrapper module
#   of its own) on the Debian bookworm base of hack/build-test-images.sh with nftables. Upstream's image is
#   the same binary on distroless (it talks netlink itself); nft here is for looking at its rules.
# conformance/baseline/kube-network-policies.yaml runs it. Idempotent: the archive is reused while a hash
# of its inputs (this script, the binary, the names) is the one in its stamp file. Prints the archive's
# path as its last line.
set -euo pipefail
root_dir=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=../operators/devcluster/versions.env
. "$root_dir/operators/devcluster/versions.env"
say() { echo "$*" >&2; }

KNP_VERSION=v0.8.0
cache_root=${KNET_CACHE:-$HOME/.cache/knet}
out_dir="$cache_root/e2e/k8s-$KUBE_VERSION"
archive="$out_dir/baseline-images.tar"
stamp="$archive.inputs"
base=localhost/knet-base:bookworm
knp=registry.k8s.io/networking/kube-network-policies:$KNP_VERSION
names=("$knp")
manifest="$root_dir/conformance/baseline/kube-network-policies.yaml"
grep -qF "image: $knp" "$manifest" || { say "error: $manifest does not run $knp"; exit 1; }

# --- the binary: the module's cmd package, built in a wrapper module whose only requirement is the module
# itself, so that its go.mod's versions are the ones used.
command -v go >/dev/null || { say "error: go toolchain not found"; exit 1; }
export GOTOOLCHAIN=local GOFLAGS=-buildvcs=false CGO_ENABLED=0
wrapper="$cache_root/build/kube-network-policies-$KNP_VERSION"
bin="$wrapper/bin/netpol"
built_from() { go version -m "$bin" 2>/dev/null | awk '$1 == "mod" || $1 == "dep" {print $2, $3}' | grep -xF "sigs.k8s.io/kube-network-policies $KNP_VERSION"; }
if [[ ! -x $bin ]] || ! built_from >/dev/null; then
  say "== building kube-network-policies $KNP_VERSION"
  mkdir -p "$wrapper/bin"
  (cd "$wrapper"
   printf 'module knet.local/baseline-kube-network-policies\n\ngo 1.26.0\n' > go.mod
   go get "sigs.k8s.io/kube-network-policies/cmd@$KNP_VERSION"
   go build -trimpath -ldflags "-s -w" -o "$bin" sigs.k8s.io/kube-network-policies/cmd)
  built_from >/dev/null || { say "error: $bin is not built from kube-network-policies $KNP_VERSION"; exit 1; }
fi

inputs=$( { cat "$root_dir/hack/build-baseline-images.sh"; sha256sum "$bin" | cut -d' ' -f1; echo "${names[*]}"; } | sha256sum | cut -c1-16)
if [[ -s $archive && "$(cat "$stamp" 2>/dev/null)" == "$inputs" ]] && podman image exists "$knp"; then
  say "baseline images (${names[*]}) cached in $archive"
  echo "$archive"
  exit 0
fi

export BUILDAH_ISOLATION=chroot
start=$SECONDS
mkdir -p "$out_dir"
# The Debian base (and the test images) come from hack/build-test-images.sh; instant when cached.
"$root_dir/hack/build-test-images.sh" >/dev/null
work=$(mktemp -d /var/tmp/knet-baseline-images.XXXXXX)
ctr=""
cleanup() { [[ -z $ctr ]] || buildah rm "$ctr" >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT

say "== $knp: $base + nftables + kube-network-policies $KNP_VERSION"
ctr=$(buildah from --quiet "$base")
# Only the lists apt downloaded here go (not the base's lock and partial/): the node image carries the
# layers unpacked, and a deletion of the base's files would be an overlay whiteout there.
buildah run "$ctr" -- sh -euc '
  export DEBIAN_FRONTEND=noninteractive DEBCONF_NOWARNINGS=yes
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends nftables >/dev/null
  apt-get clean
  rm -rf /var/lib/apt/lists/*_*
'
buildah copy --quiet --chmod 0755 "$ctr" "$bin" /bin/netpol >/dev/null
buildah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin --cmd /bin/netpol \
  --label "io.knet.built-from=sigs.k8s.io/kube-network-policies@$KNP_VERSION, Debian bookworm nftables" "$ctr"
got=$(buildah run "$ctr" -- /bin/netpol --help 2>&1 || true)
[[ $got == *nfqueue-id* ]] || { say "error: /bin/netpol --help says '${got:0:300}'"; exit 1; }
buildah run "$ctr" -- nft --version >/dev/null
old=$(podman image inspect --format '{{.Id}}' "$knp" 2>/dev/null || true)
buildah commit --quiet --rm "$ctr" "$knp" >/dev/null
ctr=""
deleted=$(podman image diff "$knp" | grep '^D ' || true)
[[ -z $deleted ]] || { say "error: $knp's top layer deletes files of its base: $deleted"; exit 1; }
new=$(podman image inspect --format '{{.Id}}' "$knp")
if [[ -n $old && $old != "$new" && -z "$(podman image inspect --format '{{join .RepoTags " "}}' "$old" 2>/dev/null)" ]]; then
  buildah rmi "$old" >/dev/null 2>&1 || true
fi

say "== saving ${names[*]}"
podman save --quiet -m --format docker-archive -o "$work/baseline-images.tar" "${names[@]}"
mv "$work/baseline-images.tar" "$archive"
echo "$inputs" > "$stamp"
say "baseline images built in $((SECONDS - start))s: ${names[*]} ($(du -h "$archive" | cut -f1)) into $archive"
echo "$archive"
