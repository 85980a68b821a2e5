#!/usr/bin/env bash
# Builds the container images that Kubernetes' e2e suites run, offline, under the exact names
# `e2e.test --list-images` prints, and writes them to one docker-archive for loading into kind.
# The images sig-network runs: agnhost, glibc-dns-testing, nginx, busybox, regression-issue-74839 and
# distroless-iptables. Upstream builds them on alpine, busybox, nginx's or Debian's images; here each is
# Debian bookworm (hack/build-image.sh's base, made with mmdebstrap when absent) with the same tools from
# Debian's packages, and the Go programs of k8s.io/kubernetes' test/images built by hack/build-e2e.sh or
# here in its wrapper module. conformance/images.md says what each holds and how it differs.
# Idempotent: the archive is reused while a hash of its inputs (this script, the pinned versions, the
# binaries and files copied in, the names) is the one in its stamp file. Prints the archive's path last.
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
files="$root_dir/hack/test-images"
# The tag the demo's manifests (manifests/examples/demo.yaml) run agnhost under.
demo_agnhost=registry.k8s.io/e2e-test-images/agnhost:2.53
# The other images, exactly as this e2e.test names them (checked against --list-images below).
glibc_dns=registry.k8s.io/e2e-test-images/glibc-dns-testing:2.1.1
nginx=registry.k8s.io/e2e-test-images/nginx:1.27.0-2
busybox=registry.k8s.io/e2e-test-images/busybox:1.37.0-2
regression=registry.k8s.io/e2e-test-images/regression-issue-74839:1.5
iptables=registry.k8s.io/build-image/distroless-iptables:v0.9.7
# What upstream's agnhost image installs from alpine, as Debian packages (bind-tools -> bind9-dnsutils,
# util-linux-misc -> util-linux), and what alpine's busybox gives the tests that Debian's minbase lacks.
agnhost_packages=(bind9-dnsutils curl ca-certificates netcat-openbsd iproute2 iperf bash util-linux socat
                  wget iputils-ping procps netbase)
# Commands the e2e tests exec in agnhost pods; each must be on the image's PATH.
agnhost_commands=(sh bash curl dig nslookup nc ip ss iperf socat ipcs wget ping ps getent timeout hostname id seq)

e2e_bin=$("$root_dir/hack/build-e2e.sh")
upstream_bin=$("$root_dir/hack/build-upstream.sh")
kube_src=$(cd "$cache_root/build" && GOTOOLCHAIN=local go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" |
           sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
agnhost_src="$kube_src/test/images/agnhost"
agnhost_version=$(cat "$agnhost_src/VERSION")
regression_src="$kube_src/test/images/regression-issue-74839"

# The name e2e.test runs agnhost under (its image manifest: registry, "agnhost", test/images/agnhost/VERSION).
listed=$("$e2e_bin/e2e.test" --list-images 2>/dev/null)
agnhost=$(grep -xE "[^ ]+/agnhost:${agnhost_version//./\\.}" <<<"$listed" || true)
[[ $(wc -w <<<"$agnhost") == 1 ]] || { say "error: e2e.test --list-images names no single agnhost:$agnhost_version (got '$agnhost')"; exit 1; }
for n in "$glibc_dns" "$nginx" "$busybox" "$regression" "$iptables"; do
  grep -qxF "$n" <<<"$listed" || { say "error: e2e.test --list-images does not name $n (a new e2e.test: update this script)"; exit 1; }
done
names=("$agnhost")
if [[ $demo_agnhost != "$agnhost" ]]; then names+=("$demo_agnhost"); fi
names+=("$glibc_dns" "$nginx" "$busybox" "$regression" "$iptables")

inputs=$( { cat "$root_dir/hack/build-test-images.sh" "$root_dir/operators/devcluster/versions.env" "$files"/* \
                "$agnhost_src"/porter/localhost.* "$regression_src"/*.go
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
ctrs=()
cleanup() { for c in "${ctrs[@]}"; do [[ -z $c ]] || buildah rm "$c" >/dev/null 2>&1 || true; done; rm -rf "$work"; }
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

# new_ctr FROM: a working container, removed on exit unless committed.
new_ctr() { local c; c=$(buildah from --quiet "$1"); ctrs+=("$c"); echo "$c"; }
# apt_install CTR PACKAGE...: Debian's packages, without leaving apt's lists behind. Only the lists apt
# downloaded here go: the base's own lock and partial/ stay, so the layer deletes nothing of the base's.
apt_install() {
  local c=$1; shift
  buildah run "$c" -- sh -euc '
    export DEBIAN_FRONTEND=noninteractive DEBCONF_NOWARNINGS=yes
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "$@" >/dev/null
    apt-get clean
    rm -rf /var/lib/apt/lists/*_*
  ' _ "$@"
}
# commit CTR NAME: the base's layer and one layer on top. The node image carries every layer unpacked,
# and a deletion in an upper layer would leave an overlay whiteout (a 0:0 device) in the node image's own
# layer, which hides the file there: so a layer that deletes anything of its parent's is refused. The
# images that share the base share its layer in the nodes' containerd.
commit() {
  local c=$1 name=$2 old new deleted
  old=$(podman image inspect --format '{{.Id}}' "$name" 2>/dev/null || true)
  buildah commit --quiet --rm "$c" "$name" >/dev/null
  ctrs=("${ctrs[@]/$c}")
  deleted=$(podman image diff "$name" | grep '^D ' || true)
  [[ -z $deleted ]] || { say "error: $name's top layer deletes files of its base: $deleted"; exit 1; }
  new=$(podman image inspect --format '{{.Id}}' "$name")
  # The image this one replaces, if nothing names it any more.
  if [[ -n $old && $old != "$new" && -z "$(podman image inspect --format '{{join .RepoTags " "}}' "$old" 2>/dev/null)" ]]; then
    buildah rmi "$old" >/dev/null 2>&1 || true
  fi
}
# has_commands CTR COMMAND...: each must be on the image's PATH.
has_commands() {
  local c=$1; shift
  buildah run "$c" -- sh -c 'for c in "$@"; do command -v "$c" >/dev/null || { echo "missing: $c" >&2; exit 1; }; done' _ "$@"
}
label() { echo "io.knet.built-from=k8s.io/kubernetes@$KUBE_VERSION test/images/$1, Debian bookworm"; }
path_env=PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

# --- agnhost
say "== $agnhost: $base + ${agnhost_packages[*]}"
ctr=$(new_ctr "$base")
apt_install "$ctr" "${agnhost_packages[@]}"
buildah run "$ctr" -- sh -euc '
  ln -s /usr/bin/iperf /usr/local/bin/iperf
  mkdir /uploads
  # a user and group named in the image, for the SupplementalGroups tests: uid 1000 (primary group 1000)
  # in group 50000
  useradd --uid 1000 --create-home user-defined-in-image
  groupadd --gid 50000 group-defined-in-image
  usermod --append --groups group-defined-in-image user-defined-in-image
'
# /agnhost (and /agnhost-2, for the entrypoint tests), porter's certificate in the working directory (/),
# CoreDNS at /coredns for the DNS tests that run it from this image (upstream ships 1.6.2; this is the
# CoreDNS hack/build-upstream.sh builds).
buildah copy --quiet --chmod 0755 "$ctr" "$e2e_bin/agnhost" /agnhost >/dev/null
buildah run "$ctr" -- ln -s agnhost /agnhost-2
buildah copy --quiet --chmod 0644 "$ctr" "$agnhost_src/porter/localhost.crt" "$agnhost_src/porter/localhost.key" / >/dev/null
buildah copy --quiet --chmod 0755 "$ctr" "$upstream_bin/coredns" /coredns >/dev/null
buildah config --entrypoint '["/agnhost"]' --cmd pause --workingdir / --env "$path_env" \
  --port 80 --port 8080 --port 8081 --port 9376 --port 5000 --label "$(label "agnhost $agnhost_version")" "$ctr"
got=$(buildah run "$ctr" -- /agnhost --version)
[[ $got == *"$agnhost_version"* ]] || { say "error: /agnhost --version says '$got'"; exit 1; }
has_commands "$ctr" "${agnhost_commands[@]}"
buildah run "$ctr" -- /coredns -version >/dev/null
got=$(buildah run --user 1000 "$ctr" -- id -G)
[[ $got == "1000 50000" ]] || { say "error: id -G of uid 1000 says '$got'"; exit 1; }
commit "$ctr" "$agnhost"
if [[ $demo_agnhost != "$agnhost" ]]; then buildah tag "$agnhost" "$demo_agnhost"; fi

# --- glibc-dns-testing: upstream's is debian:bookworm-slim with dnsutils and CoreDNS 1.5.0 at /coredns;
# dns.go runs `dig`, `getent hosts` and the shell's seq/test/sleep in it as the "glibc" prober.
say "== $glibc_dns: $base + dnsutils, CoreDNS"
ctr=$(new_ctr "$base")
apt_install "$ctr" dnsutils bind9-host
buildah copy --quiet --chmod 0755 "$ctr" "$upstream_bin/coredns" /coredns >/dev/null
buildah config --env "$path_env" --cmd /bin/bash --label "$(label glibc-dns-testing)" "$ctr"
has_commands "$ctr" sh dig nslookup host getent seq sleep test
buildah run "$ctr" -- /coredns -version >/dev/null
commit "$ctr" "$glibc_dns"

# --- nginx: upstream's is nginx:1.27-alpine as it is: nginx in the foreground serving
# /usr/share/nginx/html on port 80, logs to the container's output, stopped gracefully by SIGQUIT.
say "== $nginx: $base + nginx"
ctr=$(new_ctr "$base")
apt_install "$ctr" nginx
buildah run "$ctr" -- sh -euc '
  rm /etc/nginx/sites-enabled/default
  cat > /etc/nginx/conf.d/default.conf <<CONF
server {
    listen 80;
    listen [::]:80;
    server_name localhost;
    location / {
        root /usr/share/nginx/html;
        index index.html index.htm;
    }
}
CONF
  ln -sf /dev/stdout /var/log/nginx/access.log
  ln -sf /dev/stderr /var/log/nginx/error.log
  test -s /usr/share/nginx/html/index.html
  nginx -t 2>/dev/null
'
buildah config --env "$path_env" --cmd '["nginx", "-g", "daemon off;"]' --stop-signal SIGQUIT --port 80 \
  --label "$(label nginx)" "$ctr"
commit "$ctr" "$nginx"

# --- busybox: upstream's is Docker's busybox image, one static busybox and its applets in /bin. Here,
# Debian's busybox-static on an empty base, with the same few users and directories.
say "== $busybox: Debian's busybox-static"
helper=$(new_ctr "$base")
apt_install "$helper" busybox-static
ctr=$(new_ctr scratch)
buildah copy --quiet --from "$helper" --chmod 0755 "$ctr" /bin/busybox /bin/busybox >/dev/null
buildah run "$ctr" -- /bin/busybox sh -euc '
  /bin/busybox --install /bin
  mkdir -p /etc /root /home /var/spool/mail /var/www /usr/sbin /tmp
  chmod 1777 /tmp
  chmod 0700 /root
  printf "%s\n" "root:x:0:0:root:/root:/bin/sh" "daemon:x:1:1:daemon:/usr/sbin:/bin/false" \
    "bin:x:2:2:bin:/bin:/bin/false" "sys:x:3:3:sys:/dev:/bin/false" "sync:x:4:100:sync:/bin:/bin/sync" \
    "mail:x:8:8:mail:/var/spool/mail:/bin/false" "www-data:x:33:33:www-data:/var/www:/bin/false" \
    "operator:x:37:37:Operator:/var:/bin/false" "nobody:x:65534:65534:nobody:/home:/bin/false" > /etc/passwd
  printf "%s\n" "root:x:0:" "daemon:x:1:" "bin:x:2:" "sys:x:3:" "adm:x:4:" "tty:x:5:" "disk:x:6:" \
    "wheel:x:10:root" "mail:x:8:" "www-data:x:33:" "operator:x:37:" "users:x:100:" "nogroup:x:65534:" > /etc/group
'
buildah rm "$helper" >/dev/null; ctrs=("${ctrs[@]/$helper}")
buildah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin --cmd sh \
  --label "io.knet.built-from=Debian bookworm busybox-static" "$ctr"
has_commands "$ctr" sh nc wget sleep hostname cat grep seq timeout nslookup
commit "$ctr" "$busybox"

# --- regression-issue-74839: upstream's is Debian bookworm (debian-base) with the program as entrypoint;
# conntrack.go runs it as the server that sends out-of-window TCP packets (port 9000, raw sockets).
say "== $regression: $base + test/images/regression-issue-74839"
(cd "$cache_root/build/e2e-$KUBE_VERSION" && GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-buildvcs=false \
  go build -trimpath -ldflags "-s -w" -o "$work/regression-issue-74839" k8s.io/kubernetes/test/images/regression-issue-74839)
ctr=$(new_ctr "$base")
buildah copy --quiet --chmod 0755 "$ctr" "$work/regression-issue-74839" /regression-issue-74839 >/dev/null
buildah config --env "$path_env" --entrypoint '["/regression-issue-74839"]' --label "$(label regression-issue-74839)" "$ctr"
commit "$ctr" "$regression"

# --- distroless-iptables: upstream's (kubernetes/release, images/build/distroless-iptables) is the
# iptables (legacy and nft, behind kubernetes-sigs' iptables-wrapper), nftables, conntrack and ipset of
# Debian bookworm. kube_proxy.go runs it privileged on the host network to read conntrack's table with
# `sh`, `cat`, `grep` and `conntrack -L`; hack/build-kind-node.sh puts kube-proxy on it, as upstream does.
say "== $iptables: $base + iptables, nftables, conntrack, ipset"
ctr=$(new_ctr "$base")
apt_install "$ctr" iptables nftables conntrack ipset
buildah copy --quiet --chmod 0755 "$ctr" "$files/iptables-wrapper" /usr/sbin/iptables-wrapper >/dev/null
buildah run "$ctr" -- sh -euc '
  for c in iptables iptables-save iptables-restore ip6tables ip6tables-save ip6tables-restore; do
    ln -sf iptables-wrapper "/usr/sbin/$c"
  done
'
buildah config --env "$path_env" --label "io.knet.built-from=Debian bookworm iptables nftables conntrack ipset, iptables-wrapper" "$ctr"
has_commands "$ctr" sh cat grep sleep iptables ip6tables iptables-save iptables-restore iptables-nft iptables-legacy nft conntrack ipset
commit "$ctr" "$iptables"
# The wrapper in a throwaway container: it must settle on a backend and run the command.
probe=$(new_ctr "$iptables")
got=$(buildah run "$probe" -- iptables --version)
[[ $got == *"(nf_tables)"* ]] || { say "error: iptables --version through the wrapper says '$got'"; exit 1; }
buildah rm "$probe" >/dev/null; ctrs=("${ctrs[@]/$probe}")

say "== saving ${names[*]}"
podman save --quiet -m --format docker-archive -o "$work/test-images.tar" "${names[@]}"
mv "$work/test-images.tar" "$archive"
echo "$inputs" > "$stamp"
say "test images built in $((SECONDS - start))s: ${names[*]} ($(du -h "$archive" | cut -f1)) into $archive"
echo "$archive"
