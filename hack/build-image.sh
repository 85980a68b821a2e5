#!/usr/bin/env bash
# Builds knet's image from the Containerfile without Docker, then runs `knet --version` in it.
#   hack/build-image.sh [TAG]        (default localhost/knet:<version in pyproject.toml>)
# There is no registry to pull `debian:bookworm-slim` from here, so the base is made from Debian's packages
# (mmdebstrap, minbase) and imported into buildah, which builds the Containerfile with `--from` replacing its
# FROM line; RUN steps use chroot isolation (no container runtime needed). Takes several minutes (the Debian
# packages and the Python wheels are downloaded each time), so it is `make image`, not part of
# `make test`. With Docker or podman: `podman build -t localhost/knet:0.1.0 -f Containerfile .`
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
version=$(sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
tag=${1:-localhost/knet:$version}
base=localhost/knet-base:bookworm
# Debian's buildah and mmdebstrap, installed here rather than by hack/install-deps.sh: only this target needs them.
if ! command -v buildah >/dev/null || ! command -v mmdebstrap >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends buildah mmdebstrap >/dev/null
fi
export BUILDAH_ISOLATION=chroot
if ! buildah inspect --type image "$base" >/dev/null 2>&1; then
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  echo "== base: mmdebstrap --variant=minbase bookworm (from this machine's Debian sources)"
  mmdebstrap --quiet --variant=minbase bookworm "$work/base.tar"
  ctr=$(buildah from scratch)
  buildah add --quiet "$ctr" "$work/base.tar" / >/dev/null
  buildah commit --quiet "$ctr" "$base" >/dev/null
  buildah rm "$ctr" >/dev/null
  rm -rf "$work"
  trap - EXIT
fi
# The build's RUN steps reach Debian's mirror but not necessarily the package index that this machine's pip
# is set up for: the wheels (knet's dependencies and its build backend) are fetched here and mounted.
wheels=$(mktemp -d)
trap 'rm -rf "$wheels"' EXIT
python3 -m pip wheel --quiet --wheel-dir "$wheels" . "setuptools>=77"
previous=$(buildah inspect --type image --format '{{.FromImageID}}' "$tag" 2>/dev/null || true)
echo "== buildah build -f Containerfile --from $base -t $tag"
start=$SECONDS
buildah build --quiet --from "$base" -t "$tag" -f Containerfile -v "$wheels:/wheels:ro" \
  --build-arg PIP_OPTS="--no-index --find-links /wheels" . >/dev/null
rm -rf "$wheels"
trap - EXIT
echo "built $tag in $((SECONDS - start))s: $(buildah images --format '{{.Size}}' "$tag")"
# The image the tag named before, now untagged, goes (unless a container still uses it).
if [[ -n $previous && $previous != "$(buildah inspect --type image --format '{{.FromImageID}}' "$tag")" ]]; then
  buildah rmi "$previous" >/dev/null 2>&1 || true
fi
ctr=$(buildah from "$tag")
trap 'buildah rm "$ctr" >/dev/null' EXIT
got=$(buildah run "$ctr" -- knet --version)
echo "knet --version in the image: $got"
[[ $got == *"$version"* ]] || { echo "expected version $version" >&2; exit 1; }
