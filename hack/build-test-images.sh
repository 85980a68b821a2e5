#!/usr/bin/env bash
# Builds the container images that Kubernetes' e2e suites run, offline, under the exact names
# `e2e.test --list-images` prints, and writes them to one docker-archive for loading into kind.
# For now: agnhost (the image nearly every sig-network test runs). Upstream builds it FROM alpine with
# bind-tools, curl, netcat-openbsd, iproute2, iperf, bash, util-linux-misc, socat and CoreDNS 1.6.2
# (test/images/agnhost/Dockerfile); here it is Debian bookworm (hack/build-image.sh's base, made with
# mmdebstrap when absent) with the same tools from Debian's packages, plus the busybox applets the tests
# call (wget, ping, ps), and the agnhost binary of hack/build-e2e.sh. conformance/images.md says what
# differs and which images are not built yet.
# Idempotent: the archive is reused while a hash of its inputs (this script, the pinned versions, the
# agnhost and coredns binaries) is the one in its stamp file. Prints the archive's path as its last line.
set -euo pipefail
root_dir=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=../operators/devcluster/versions.env
. "$root_dir/operators/devcluster/versions.env"
say() { echo "$*" >&2; }

cache_root=${KNET_CACHE:-$HOME/.cache/knet}
out_dir="$cache_root/e2e/k8s-$KUBE_VERSION"
archive="$out_dir/test-images.tar"
stamp="$archive.inputs"
base=localhost/knet-base:bookworm
# The tag the demo's manifests (manifests/examples/demo.yaml) run agnhost under.
demo_agnhost=registry.k8s.io/e2e-test-images/agnhost:2.53
# What upstream's agnhost image installs from alpine, as Debian packages (bind-tools -> bind9-dnsutils,
# util-linux-misc -> util-linux), and what alpine's busybox gives the tests that Debian's minbase lacks.
packages=(bind9-dnsutils curl ca-certificates netcat-openbsd iproute2 iperf bash util-linux socat
          wget iputils-ping procps netbase)
# Commands the e2e tests exec in agnhost pods; each must be on the image's PATH.
commands=(sh bash curl dig nslookup nc ip ss iperf socat ipcs wget ping ps getent timeout hostname id seq)

e2e_bin=$("$root_dir/hack/build-e2e.sh")
upstream_bin=$("$root_dir/hack/build-upstream.sh")
kube_src=$(cd "$cache_root/build" && GOTOOLCHAIN=local go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" |
           sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
agnhost_src="$kube_src/test/images/agnhost"
agnhost_version=$(cat "$agnhost_src/VERSION")

# The name e2e.test runs agnhost under (its image manifest: registry, "agnhost", test/images/agnhost/VERSION).
agnhost=$("$e2e_bin/e2e.test" --list-images 2>/dev/null | grep -xE "[^ ]+/agnhost:${agnhost_version//./\\.}" || true)
[[ $(wc -w <<<"$agnhost") == 1 ]] || { say "error: e2e.test --list-images names no single agnhost:$agnhost_version (got '$agnhost')"; exit 1; }
names=("$agnhost")
if [[ $demo_agnhost != "$agnhost" ]]; then names+=("$demo_agnhost"); fi

inputs=$( { cat "$root_dir/hack/build-test-images.sh" "$root_dir/operators/devcluster/versions.env" "$agnhost_src"/porter/localhost.*
            sha256sum "$e2e_bin/agnhost" "$upstream_bin/coredns" | cut -d' ' -f1; echo "${names[*]}"; } | sha256sum | cut -c1-16)
if [[ -s $archive && "$(cat "$stamp" 2>/dev/null)" == "$inputs" ]]; then
  say "test images (${names[*]}) cached in $archive"
  echo "$archive"
  exit 0
fi

missing=()
for tool in buildah podman mmdebstrap; do command -v "$tool" >/dev/null || missing+=("$tool"); done
if [[ ${#missing[@]} -gt 0 ]]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
export BUILDAH_ISOLATION=chroot
start=$SECONDS
mkdir -p "$out_dir"
work=$(mktemp -d /var/tmp/knet-test-images.XXXXXX)
ctr=""
cleanup() { [[ -n $ctr ]] && buildah rm "$ctr" >/dev/null 2>&1; rm -rf "$work"; }
trap cleanup EXIT

# --- the base: Debian bookworm minbase, as hack/build-image.sh makes it
if ! buildah inspect --type image "$base" >/dev/null 2>&1; then
  say "== base: mmdebstrap --variant=minbase bookworm (from this machine's Debian sources)"
  mmdebstrap --quiet --variant=minbase bookworm "$work/base.tar"
  c=$(buildah from scratch)
  buildah add --quiet "$c" "$work/base.tar" / >/dev/null
  buildah commit --quiet --rm "$c" "$base" >/dev/null
  rm -f "$work/base.tar"
fi

# --- agnhost
say "== $agnhost: $base + ${packages[*]}"
ctr=$(buildah from --quiet "$base")
buildah run "$ctr" -- sh -euc '
  export DEBIAN_FRONTEND=noninteractive DEBCONF_NOWARNINGS=yes
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "$@" >/dev/null
  apt-get clean
  rm -rf /var/lib/apt/lists/*
  ln -s /usr/bin/iperf /usr/local/bin/iperf
  mkdir /uploads
  # a user and group named in the image, for the SupplementalGroups tests: uid 1000 (primary group 1000)
  # in group 50000
  useradd --uid 1000 --create-home user-defined-in-image
  groupadd --gid 50000 group-defined-in-image
  usermod --append --groups group-defined-in-image user-defined-in-image
' _ "${packages[@]}"
# /agnhost (and /agnhost-2, for the entrypoint tests), porter's certificate in the working directory (/),
# CoreDNS at /coredns for the DNS tests that run it from this image (upstream ships 1.6.2; this is the
# CoreDNS hack/build-upstream.sh builds).
buildah copy --quiet --chmod 0755 "$ctr" "$e2e_bin/agnhost" /agnhost >/dev/null
buildah run "$ctr" -- ln -s agnhost /agnhost-2
buildah copy --quiet --chmod 0644 "$ctr" "$agnhost_src/porter/localhost.crt" "$agnhost_src/porter/localhost.key" / >/dev/null
buildah copy --quiet --chmod 0755 "$ctr" "$upstream_bin/coredns" /coredns >/dev/null
buildah config --entrypoint '["/agnhost"]' --cmd pause --workingdir / \
  --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  --port 80 --port 8080 --port 8081 --port 9376 --port 5000 \
  --label "io.knet.built-from=k8s.io/kubernetes@$KUBE_VERSION test/images/agnhost $agnhost_version, Debian bookworm" "$ctr"

say "== checking the image's commands"
got=$(buildah run "$ctr" -- /agnhost --version)
[[ $got == *"$agnhost_version"* ]] || { say "error: /agnhost --version says '$got'"; exit 1; }
buildah run "$ctr" -- sh -c 'for c in "$@"; do command -v "$c" >/dev/null || { echo "missing: $c" >&2; exit 1; }; done' _ "${commands[@]}"
buildah run "$ctr" -- /coredns -version >/dev/null
got=$(buildah run --user 1000 "$ctr" -- id -G)
[[ $got == "1000 50000" ]] || { say "error: id -G of uid 1000 says '$got'"; exit 1; }

old=$(podman image inspect --format '{{.Id}}' "$agnhost" 2>/dev/null || true)
# One layer: the node image carries it unpacked, and a deletion in an upper layer would leave an overlay
# whiteout (a 0:0 device) in the node image's own layer, which hides the file.
buildah commit --quiet --squash --rm "$ctr" "$agnhost" >/dev/null
ctr=""
for n in "${names[@]:1}"; do buildah tag "$agnhost" "$n"; done
new=$(podman image inspect --format '{{.Id}}' "$agnhost")
# The image this one replaces, if nothing names it any more.
if [[ -n $old && $old != "$new" && -z "$(podman image inspect --format '{{join .RepoTags " "}}' "$old" 2>/dev/null)" ]]; then
  buildah rmi "$old" >/dev/null 2>&1 || true
fi

say "== saving ${names[*]}"
podman save --quiet -m --format docker-archive -o "$work/test-images.tar" "${names[@]}"
mv "$work/test-images.tar" "$archive"
echo "$inputs" > "$stamp"
say "test images built in $((SECONDS - start))s: ${names[*]} ($(du -h "$archive" | cut -f1)) into $archive"
echo "$archive"
