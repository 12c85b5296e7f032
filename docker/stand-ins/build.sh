#!/usr/bin/env bash
# Local stand-ins for the official base images, for machines that run a container engine but reach no image
# registry (an air-gapped build host, this project's CI). Each stand-in is made only when the official image
# is neither present locally nor pullable, and is then kept (cached by its tag): run this as often as you like.
#
#   node:22-bookworm-slim  Debian bookworm (minbase, from Debian's mirror) + the official Node 22 binary from the
#                          npm registry package node-linux-<arch> + npm 10; user `node` (uid 1000), as the
#                          official image.
#   eclipse-mosquitto:2    Debian bookworm + Debian's mosquitto and mosquitto-clients; user `mosquitto`
#                          (uid 1883), /mosquitto/{config,data,log}, the official image's entrypoint (chown
#                          /mosquitto when started as root), command, and exposed port 1883.
#
# --arch makes them for another architecture than the machine's (amd64 or arm64), run under emulation (Debian's
# qemu-user-static and binfmt-support). A tag holds one platform, so those keep the official images' per-arch
# names, arm64v8/node:22-bookworm-slim and arm64v8/eclipse-mosquitto:2 (amd64/... for amd64), and the machine's
# own architecture keeps the plain names: neither replaces the other. Build for them with
#   docker build --platform linux/arm64 --build-arg NODE_IMAGE=arm64v8/node:22-bookworm-slim ...
# Naming node or mosquitto makes that stand-in only.
#
# Needs: root, debootstrap, npm, a running engine (`docker info`). Debian's packages and the npm registry are the
# only downloads. Usage: docker/stand-ins/build.sh [--force] [--arch amd64|arm64] [node|mosquitto]...
#   (--force rebuilds stand-ins that exist)
set -euo pipefail

PULL_TIMEOUT_S=20
FORCE=0
HOST_ARCH="$(dpkg --print-architecture)"
ARCH="$HOST_ARCH"
WANT=()
while [ $# -gt 0 ]; do
  case "$1" in
    --force) FORCE=1 ;;
    --arch) ARCH="${2:-}"; shift ;;
    --arch=*) ARCH="${1#--arch=}" ;;
    node | mosquitto) WANT+=("$1") ;;
    *) echo "stand-ins: unknown argument '$1' (usage: build.sh [--force] [--arch amd64|arm64] [node|mosquitto]...)" >&2; exit 2 ;;
  esac
  shift
done
[ ${#WANT[@]} -gt 0 ] || WANT=(node mosquitto)

# Debian's architecture name, Node's (the npm package node-linux-<name>), the OCI platform and the official
# images' per-architecture namespace.
case "$ARCH" in
  amd64) NODE_ARCH=x64 PLATFORM_ARCH=amd64 PLATFORM_VARIANT="" NAMESPACE=amd64 ;;
  arm64) NODE_ARCH=arm64 PLATFORM_ARCH=arm64 PLATFORM_VARIANT=v8 NAMESPACE=arm64v8 ;;
  *) echo "stand-ins: --arch must be amd64 or arm64, not '$ARCH'" >&2; exit 2 ;;
esac
if [ "$ARCH" = "$HOST_ARCH" ]; then
  NODE_IMAGE="node:22-bookworm-slim"
  MOSQUITTO_IMAGE="eclipse-mosquitto:2"
else
  NODE_IMAGE="$NAMESPACE/node:22-bookworm-slim"
  MOSQUITTO_IMAGE="$NAMESPACE/eclipse-mosquitto:2"
fi
# The rootfs both stand-ins start from; kept as an image so a second stand-in costs no second debootstrap.
MINBASE_IMAGE="edge-signin-stand-in/bookworm-minbase:$ARCH"

log() { echo "stand-ins: $*" >&2; }

# Present locally, or pullable now: then the official image is used and no stand-in is made.
official_available() {
  local image="$1"
  if [ "$FORCE" = 1 ]; then
    docker image inspect --format '{{index .Config.Labels "org.edge-signin.stand-in"}}' "$image" 2>/dev/null |
      grep -qx true && return 1
  fi
  docker image inspect "$image" >/dev/null 2>&1 && return 0
  log "$image is not present; trying to pull it (at most ${PULL_TIMEOUT_S} s)"
  local platform=()
  [ "$ARCH" = "$HOST_ARCH" ] || platform=(--platform "linux/$PLATFORM_ARCH")
  timeout "$PULL_TIMEOUT_S" docker pull -q "${platform[@]}" "$image" >/dev/null 2>&1
}

WORK="$(mktemp -d /tmp/edge-signin-stand-ins.XXXXXX)"
cleanup() {
  # A chroot's bind mounts must go before the directory can.
  for mount in proc dev; do umount "$WORK/rootfs/$mount" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

# A fresh rootfs in $WORK/rootfs: unpacked from the minbase image, or made by debootstrap (and kept as that image).
make_rootfs() {
  rm -rf "$WORK/rootfs"
  mkdir -p "$WORK/rootfs"
  if ! docker image inspect "$MINBASE_IMAGE" >/dev/null 2>&1; then
    command -v debootstrap >/dev/null || { log "debootstrap is missing: apt-get install debootstrap"; exit 1; }
    log "debootstrap bookworm (minbase, $ARCH) from Debian's mirror"
    # For another architecture its second stage runs the new root's binaries, under emulation.
    debootstrap --arch="$ARCH" --variant=minbase --include=ca-certificates bookworm "$WORK/rootfs" \
      >"$WORK/debootstrap.log" 2>&1 || { tail -20 "$WORK/debootstrap.log" >&2; exit 1; }
    chroot "$WORK/rootfs" apt-get clean
    rm -rf "$WORK/rootfs/var/lib/apt/lists/"*
    import_rootfs "$MINBASE_IMAGE"
    return
  fi
  local id
  local platform=()
  [ "$ARCH" = "$HOST_ARCH" ] || platform=(--platform "linux/$PLATFORM_ARCH")
  id="$(docker create "${platform[@]}" "$MINBASE_IMAGE" /bin/true)"
  docker export "$id" | tar -C "$WORK/rootfs" -x
  docker rm "$id" >/dev/null
}

# $WORK/rootfs as image $1, with the `docker import --change` instructions that follow, for $ARCH. This engine's
# import records the machine's architecture whatever its --platform says (Docker 20.10), and a build for
# linux/arm64 refuses a base that claims amd64; so for another architecture the image's configuration is
# rewritten to name the right one (docker save, edit, docker load: the layer is unchanged).
import_rootfs() {
  local image="$1"
  shift
  local changes=() change
  for change in "$@"; do changes+=(--change "$change"); done
  local id
  id="$(tar -C "$WORK/rootfs" -c . | docker import "${changes[@]}" - "$image")"
  [ "$ARCH" = "$HOST_ARCH" ] && return
  rm -rf "$WORK/relabel"
  mkdir -p "$WORK/relabel"
  docker save "$image" | tar -C "$WORK/relabel" -x
  node -e '
    const fs = require("fs");
    const [dir, arch, variant] = process.argv.slice(1);
    const manifest = JSON.parse(fs.readFileSync(`${dir}/manifest.json`, "utf8"));
    const file = `${dir}/${manifest[0].Config}`;
    const config = JSON.parse(fs.readFileSync(file, "utf8"));
    config.architecture = arch;
    if (variant) config.variant = variant;
    else delete config.variant;
    fs.writeFileSync(file, JSON.stringify(config));
  ' "$WORK/relabel" "$PLATFORM_ARCH" "$PLATFORM_VARIANT"
  tar -C "$WORK/relabel" -c . | docker load -q >/dev/null
  rm -rf "$WORK/relabel"
  # The machine-architecture image the load replaced under that tag (its layer stays, shared with the new one).
  docker rmi "$id" >/dev/null
  local platform
  platform="$(docker image inspect --format '{{.Os}}/{{.Architecture}}' "$image")"
  [ "$platform" = "linux/$PLATFORM_ARCH" ] || { log "$image is $platform, not linux/$PLATFORM_ARCH"; exit 1; }
}

# Another architecture's binaries run only through a binfmt_misc handler (Debian's qemu-user-static registers
# them); without one, debootstrap's second stage fails halfway with an unhelpful "Exec format error".
require_emulation() {
  [ "$ARCH" = "$HOST_ARCH" ] && return
  local handler
  case "$ARCH" in arm64) handler=qemu-aarch64 ;; amd64) handler=qemu-x86_64 ;; esac
  if ! grep -qx enabled "/proc/sys/fs/binfmt_misc/$handler" 2>/dev/null; then
    log "$ARCH binaries cannot run here: no enabled binfmt_misc handler $handler. As root:" \
      "mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc (where it is not mounted)," \
      "apt-get install qemu-user-static binfmt-support, update-binfmts --enable $handler"
    exit 1
  fi
}

# The machine's CA bundle, so that npm and apt inside a build trust what the machine trusts (a TLS-inspecting
# proxy's CA, for one). The official images trust the public CAs only; on a machine that needs this, so do they.
trust_machine_cas() {
  local cafile
  cafile="$(npm config get cafile 2>/dev/null || true)"
  [ -n "$cafile" ] && [ "$cafile" != "null" ] && [ "$cafile" != "undefined" ] && [ -f "$cafile" ] || return 0
  cp "$cafile" "$WORK/rootfs/etc/ssl/certs/ca-certificates.crt"
  printf 'cafile=/etc/ssl/certs/ca-certificates.crt\n' >"$WORK/rootfs/usr/local/etc/npmrc"
}

build_node() {
  log "making $NODE_IMAGE"
  make_rootfs
  local arch="$NODE_ARCH"
  mkdir -p "$WORK/pkgs" "$WORK/rootfs/usr/local/lib/node_modules" "$WORK/rootfs/usr/local/bin" "$WORK/rootfs/usr/local/etc"
  (cd "$WORK/pkgs" && npm pack --silent "node-linux-$arch@22" "npm@10" >/dev/null)
  mkdir -p "$WORK/node" "$WORK/rootfs/usr/local/lib/node_modules/npm"
  tar -C "$WORK/node" -xzf "$WORK"/pkgs/node-linux-"$arch"-*.tgz
  install -m 0755 "$WORK/node/package/bin/node" "$WORK/rootfs/usr/local/bin/node"
  tar -C "$WORK/rootfs/usr/local/lib/node_modules/npm" --strip-components=1 -xzf "$WORK"/pkgs/npm-*.tgz
  ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$WORK/rootfs/usr/local/bin/npm"
  ln -sf ../lib/node_modules/npm/bin/npx-cli.js "$WORK/rootfs/usr/local/bin/npx"
  trust_machine_cas
  chroot "$WORK/rootfs" groupadd --gid 1000 node
  chroot "$WORK/rootfs" useradd --uid 1000 --gid node --shell /bin/bash --create-home node
  local version
  version="$(chroot "$WORK/rootfs" /usr/local/bin/node --version)"
  import_rootfs "$NODE_IMAGE" \
    "ENV NODE_VERSION=${version#v}" \
    'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    'LABEL org.edge-signin.stand-in=true' \
    'CMD ["node"]'
  log "$NODE_IMAGE made (Node $version, stand-in)"
}

build_mosquitto() {
  log "making $MOSQUITTO_IMAGE"
  make_rootfs
  cp /etc/resolv.conf "$WORK/rootfs/etc/resolv.conf"
  mount -t proc proc "$WORK/rootfs/proc"
  (
    export DEBIAN_FRONTEND=noninteractive
    chroot "$WORK/rootfs" apt-get update -qq
    chroot "$WORK/rootfs" apt-get install -y -qq --no-install-recommends mosquitto mosquitto-clients >/dev/null
    chroot "$WORK/rootfs" apt-get clean
  ) || { log "apt-get in the mosquitto rootfs failed"; exit 1; }
  umount "$WORK/rootfs/proc"
  rm -rf "$WORK/rootfs/var/lib/apt/lists/"*
  : >"$WORK/rootfs/etc/resolv.conf"
  # The official image's ids and layout.
  chroot "$WORK/rootfs" groupmod -g 1883 mosquitto
  chroot "$WORK/rootfs" usermod -u 1883 -g 1883 mosquitto
  mkdir -p "$WORK/rootfs/mosquitto/config" "$WORK/rootfs/mosquitto/data" "$WORK/rootfs/mosquitto/log"
  cp "$WORK/rootfs/usr/share/doc/mosquitto/examples/mosquitto.conf" "$WORK/rootfs/mosquitto/config/mosquitto.conf" 2>/dev/null ||
    : >"$WORK/rootfs/mosquitto/config/mosquitto.conf"
  chroot "$WORK/rootfs" chown -R mosquitto:mosquitto /mosquitto
  cat >"$WORK/rootfs/docker-entrypoint.sh" <<'EOF'
#!/bin/sh
set -e
# As the official image: started as root, hand /mosquitto to the mosquitto user (volumes arrive owned by root).
if [ "$(id -u)" = '0' ]; then
  [ -d "/mosquitto" ] && chown -R mosquitto:mosquitto /mosquitto || true
fi
# Debian's mosquitto 2.0.11 leaves stdout fully buffered when it is not a terminal, so `log_dest stdout` (what
# most configurations use in a container) would show nothing in `docker logs`; the official image's build shows
# each line as it is written. Line buffering gives the same.
exec stdbuf -oL "$@"
EOF
  chmod 0755 "$WORK/rootfs/docker-entrypoint.sh"
  import_rootfs "$MOSQUITTO_IMAGE" \
    'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    'LABEL org.edge-signin.stand-in=true' \
    'EXPOSE 1883' \
    'VOLUME ["/mosquitto/data", "/mosquitto/log"]' \
    'ENTRYPOINT ["/docker-entrypoint.sh"]' \
    'CMD ["/usr/sbin/mosquitto", "-c", "/mosquitto/config/mosquitto.conf"]'
  log "$MOSQUITTO_IMAGE made ($(chroot "$WORK/rootfs" dpkg-query -W -f '${Version}' mosquitto), stand-in)"
}

docker info >/dev/null 2>&1 || { log "no container engine answers (docker info)"; exit 1; }
require_emulation
for want in "${WANT[@]}"; do
  case "$want" in
    node) official_available "$NODE_IMAGE" && log "$NODE_IMAGE: using the image that is present" || build_node ;;
    mosquitto)
      official_available "$MOSQUITTO_IMAGE" && log "$MOSQUITTO_IMAGE: using the image that is present" ||
        build_mosquitto
      ;;
  esac
done
