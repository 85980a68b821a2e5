#!/usr/bin/env bash
# Installs the Debian packages knet's tests and demo need, only those missing (idempotent:
# a machine that has them all returns at once, without touching apt).
set -euo pipefail
pkgs=(nftables iptables iproute2 util-linux procps psmisc conntrack nginx libnginx-mod-http-lua dnsutils dnsperf socat curl iputils-ping wrk
      # the kind stage: podman with runc and netavark/aardvark-dns (node names resolve as on Docker), buildah and
      # mmdebstrap for the images, jq, and libseccomp's headers for runc (operators/kind/README.md)
      podman runc netavark aardvark-dns conmon buildah mmdebstrap jq libseccomp-dev gcc libc6-dev)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0
if [[ $(id -u) -ne 0 ]]; then
  echo "error: missing Debian packages ${missing[*]}; install them as root" >&2
  exit 1
fi
echo "installing Debian packages: ${missing[*]}" >&2
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
