#!/usr/bin/env bash
# Builds knet's kind node image without Docker and without pulling anything, as kind's `build node-image`
# would (which needs the docker CLI and pulls its base): a Debian bookworm root made by mmdebstrap, kind's
# own node files (images/base/files of the sigs.k8s.io/kind module), containerd 2 / runc / crictl / CNI
# plugins (hack/build-kind.sh), kubelet / kubeadm / kubectl (hack/build-upstream.sh), and the images
# kubeadm runs, built from the same binaries (kube-proxy's on hack/build-test-images.sh's distroless-iptables)
# and pre-imported into the node's containerd with the e2e suites' images.
# Idempotent: the image's tag carries a hash of everything it is made from, and an existing tag is reused.
# Prints the image's name as its last line.
set -euo pipefail
root_dir=$(cd "$(dirname "$0")/.." && pwd)
. "$root_dir/operators/devcluster/versions.env"
. "$root_dir/operators/kind/versions.env"
node_files="$root_dir/operators/kind/node"
say() { echo "$*" >&2; }

inputs_hash=$(cat "$root_dir/operators/devcluster/versions.env" "$root_dir/operators/kind/versions.env" \
  "$0" "$root_dir/hack/build-test-images.sh" "$root_dir"/hack/test-images/* "$node_files"/* | sha256sum | cut -c1-12)
image="localhost/knet/kind-node:$KUBE_VERSION-$inputs_hash"
if podman image exists "$image" 2>/dev/null; then
  say "kind node image $image is built"
  echo "$image"
  exit 0
fi

missing=()
for tool in mmdebstrap buildah podman jq; do command -v "$tool" >/dev/null || missing+=("$tool"); done
if [[ ${#missing[@]} -gt 0 ]]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
export BUILDAH_ISOLATION=chroot
start=$SECONDS
upstream=$("$root_dir/hack/build-upstream.sh")
kindbin=$("$root_dir/hack/build-kind.sh")
kind_src=$(cd "$(mktemp -d)" && GOTOOLCHAIN=local go mod download -json "sigs.k8s.io/kind@$KIND_VERSION" | jq -r .Dir)
kube_src=$(cd "$(mktemp -d)" && GOTOOLCHAIN=local go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" | jq -r .Dir)

work=$(mktemp -d /var/tmp/knet-kind-node.XXXXXX)
cleanup() { rm -rf "$work"; }
trap cleanup EXIT
rootfs="$work/rootfs"

# The images the e2e suites and the demo run (agnhost, ...), built by hack/build-test-images.sh; kube-proxy's
# image is built on its distroless-iptables, as upstream's is.
test_images=$("$root_dir/hack/build-test-images.sh")
iptables_image=registry.k8s.io/build-image/distroless-iptables:v0.9.7

# --- the images kubeadm runs, named as it asks for them, each one static binary on an empty base, but
# kube-proxy's: it runs nft (nftables mode), iptables and conntrack, so it is its binary on
# distroless-iptables (Debian's iptables behind the iptables-wrapper, nftables, conntrack, ipset).
mapfile -t kubeadm_images < <("$upstream/kubeadm" config images list --kubernetes-version "$KUBE_VERSION" 2>/dev/null)
say "== images kubeadm asks for: ${kubeadm_images[*]}"
gcc -Os -static -DVERSION="${KUBE_VERSION}" -o "$work/pause" "$kube_src/build/pause/linux/pause.c"
one_binary_image() {  # NAME BINARY PATH-IN-IMAGE [ENTRYPOINT]
  local name=$1 binary=$2 dest=$3 entry=${4:-}
  local c
  c=$(buildah from scratch)
  buildah copy --quiet --chmod 0755 "$c" "$binary" "$dest" >/dev/null
  buildah config --env PATH=/usr/local/bin:/usr/bin:/bin ${entry:+--entrypoint "[\"$entry\"]"} \
    --label "io.knet.built-from=$(basename "$binary")" "$c"
  buildah commit --quiet --rm "$c" "$name" >/dev/null
}
kube_proxy_image() {  # NAME BINARY
  local c
  c=$(buildah from --quiet "$iptables_image")
  buildah copy --quiet --chmod 0755 "$c" "$2" /usr/local/bin/kube-proxy >/dev/null
  buildah config --label "io.knet.built-from=kube-proxy on $iptables_image" "$c"
  buildah commit --quiet --rm "$c" "$1" >/dev/null
}
for ref in "${kubeadm_images[@]}"; do
  case $ref in
    */kube-proxy:*) kube_proxy_image "$ref" "$upstream/kube-proxy" ;;
    */kube-apiserver:*|*/kube-controller-manager:*|*/kube-scheduler:*)
      b=${ref##*/}; b=${b%%:*}; one_binary_image "$ref" "$upstream/$b" "/usr/local/bin/$b" ;;
    */etcd:*)    one_binary_image "$ref" "$upstream/etcd" /usr/local/bin/etcd ;;
    */coredns:*) one_binary_image "$ref" "$upstream/coredns" /coredns /coredns ;;
    */pause:*)   one_binary_image "$ref" "$work/pause" /pause /pause; pause_image=$ref ;;
    *) say "error: no recipe for kubeadm's image $ref"; exit 1 ;;
  esac
done
podman save --quiet -m --format docker-archive -o "$work/images.tar" "${kubeadm_images[@]}"

# --- the node's root file system: Debian bookworm with what kind's base image installs
say "== mmdebstrap bookworm (systemd, containerd's and the kubelet's tools)"
mmdebstrap --quiet --variant=minbase \
  --include=systemd,dbus,conntrack,iptables,nftables,iproute2,ethtool,util-linux,mount,kmod,libseccomp2,pigz,bash,ca-certificates,curl,jq,procps \
  bookworm "$rootfs"
files="$kind_src/images/base/files"
install -m 0755 "$files"/usr/local/bin/* "$rootfs/usr/local/bin/"
mkdir -p "$rootfs/kind/bin" "$rootfs/kind/knet" "$rootfs/etc/containerd/certs.d/_default" \
  "$rootfs/etc/kubernetes/manifests" "$rootfs/opt/cni/bin" "$rootfs/etc/systemd/system/kubelet.service.d"
cp -r "$files/kind/." "$rootfs/kind/"; chmod 0755 "$rootfs"/kind/bin/*
install -m 0644 "$files/etc/crictl.yaml" "$rootfs/etc/"
install -m 0644 "$files"/etc/containerd/* "$rootfs/etc/containerd/"
install -m 0644 "$files"/etc/default/* "$rootfs/etc/default/"
install -m 0644 "$files"/etc/sysctl.d/* "$rootfs/etc/sysctl.d/"
install -m 0644 "$files"/etc/systemd/system/*.service "$files"/etc/systemd/system/*.slice "$rootfs/etc/systemd/system/"
install -m 0644 "$files"/etc/systemd/system/kubelet.service.d/* "$rootfs/etc/systemd/system/kubelet.service.d/"
install -m 0755 "$node_files/entrypoint" "$rootfs/usr/local/bin/knet-entrypoint"
install -m 0644 "$node_files/sysctls" "$rootfs/kind/knet/sysctls"
install -m 0644 "$node_files/hosts.toml" "$rootfs/etc/containerd/certs.d/_default/hosts.toml"
install -D -m 0644 "$node_files/default-storage.yaml" "$rootfs/kind/manifests/default-storage.yaml"
# kind's Dockerfile steps: only the units kind wants, no kernel log reading, /sbin/init for its entrypoint.
rm -f "$rootfs"/lib/systemd/system/sysinit.target.wants/systemd-tmpfiles-setup.service \
  "$rootfs"/lib/systemd/system/multi-user.target.wants/* "$rootfs"/etc/systemd/system/*.wants/* \
  "$rootfs"/lib/systemd/system/local-fs.target.wants/* "$rootfs"/lib/systemd/system/sockets.target.wants/*udev* \
  "$rootfs"/lib/systemd/system/sockets.target.wants/*initctl* "$rootfs"/lib/systemd/system/basic.target.wants/*
echo "ReadKMsg=no" >> "$rootfs/etc/systemd/journald.conf"
ln -sf /usr/lib/systemd/systemd "$rootfs/sbin/init"
systemctl --root="$rootfs" --quiet enable kubelet.service containerd.service undo-mount-hacks.service
# systemd-sysctl would apply Debian's sysctl.d to the machine's global settings (fs.protected_*, ...).
systemctl --root="$rootfs" --quiet mask systemd-binfmt.service systemd-sysctl.service
# containerd, runc, crictl, the CNI plugins kind's image carries, the Kubernetes node binaries
install -m 0755 "$kindbin/containerd" "$kindbin/ctr" "$kindbin/containerd-shim-runc-v2" "$kindbin/crictl" "$rootfs/usr/local/bin/"
install -m 0755 "$kindbin/runc" "$rootfs/usr/local/sbin/runc"
install -m 0755 "$kindbin"/cni/* "$rootfs/opt/cni/bin/"
install -m 0755 "$upstream/kubelet" "$upstream/kubeadm" "$upstream/kubectl" "$rootfs/usr/bin/"
echo "$KUBE_VERSION" > "$rootfs/kind/version"
"$kindbin/ctr" oci spec \
  | jq '.hooks.createContainer[.hooks.createContainer| length] |= . + {"path": "/kind/bin/mount-product-files.sh"}' \
  | jq 'del(.process.rlimits)' > "$rootfs/etc/containerd/cri-base.json"
# The sandbox image kubeadm asks for, and every pull through certs.d (hosts.toml refuses them).
sed -i "s|sandbox_image = .*|sandbox_image = \"$pause_image\"|" "$rootfs/etc/containerd/config.toml"
cat >> "$rootfs/etc/containerd/config.toml" <<'TOML'

[plugins."io.containerd.grpc.v1.cri".registry]
  config_path = "/etc/containerd/certs.d"
TOML

# --- pre-import kubeadm's images into the node's containerd (k8s.io namespace, unpacked for overlayfs), with
# containerd run from the new root in a private mount namespace: its mounts never reach the machine.
say "== importing kubeadm's ${#kubeadm_images[@]} images and the test images into the node's containerd"
cp "$work/images.tar" "$rootfs/tmp/images.tar"
cp "$test_images" "$rootfs/tmp/test-images.tar"
cat > "$rootfs/tmp/import.toml" <<'TOML'
version = 3
root = "/var/lib/containerd"
state = "/run/containerd"
disabled_plugins = ["io.containerd.cri.v1.images", "io.containerd.cri.v1.runtime", "io.containerd.grpc.v1.cri"]
[grpc]
  address = "/run/containerd/import.sock"
TOML
unshare --mount --fork bash -euo pipefail -c '
  r=$1
  mount --make-rprivate /
  mount -t proc proc "$r/proc"; mount --rbind /dev "$r/dev"; mount -t tmpfs tmpfs "$r/run"
  chroot "$r" /usr/local/bin/containerd --config /tmp/import.toml >"$r/tmp/containerd.log" 2>&1 &
  pid=$!
  for _ in $(seq 100); do [[ -S $r/run/containerd/import.sock ]] && break; sleep 0.1; done
  chroot "$r" /usr/local/bin/ctr --address /run/containerd/import.sock -n k8s.io images import \
    --all-platforms --digests --snapshotter overlayfs --local --discard-unpacked-layers \
    --label io.cri-containerd.image=managed /tmp/images.tar >/dev/null
  chroot "$r" /usr/local/bin/ctr --address /run/containerd/import.sock -n k8s.io images import \
    --all-platforms --digests --snapshotter overlayfs --local --discard-unpacked-layers \
    --label io.cri-containerd.image=managed /tmp/test-images.tar >/dev/null
  kill "$pid"; wait "$pid" || true
' _ "$rootfs"
rm -f "$rootfs/tmp/images.tar" "$rootfs/tmp/test-images.tar" "$rootfs/tmp/import.toml" "$rootfs/tmp/containerd.log"

say "== committing $image"
tar -C "$rootfs" --numeric-owner --xattrs --xattrs-include='*' -cf "$work/rootfs.tar" .
podman import --quiet \
  --change 'ENV container=docker' --change 'STOPSIGNAL SIGRTMIN+3' \
  --change 'ENTRYPOINT ["/usr/local/bin/knet-entrypoint", "/sbin/init"]' \
  --change "LABEL io.knet.kind-node=$KUBE_VERSION" \
  "$work/rootfs.tar" "$image" >/dev/null
say "kind node image $image built in $((SECONDS - start))s"
# Node images of earlier inputs go (one that a cluster still runs stays).
for old in $(podman images --format '{{.Repository}}:{{.Tag}}' localhost/knet/kind-node); do
  [[ $old == "$image" ]] || podman rmi "$old" >/dev/null 2>&1 || true
done
echo "$image"
