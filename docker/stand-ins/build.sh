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
# Needs: root, debootstrap, npm, a running engine (`docker info`). Debian's packages and the npm registry are the
# only downloads. Usage: docker/stand-ins/build.sh [--force]   (--force rebuilds stand-ins that exist)
set -euo pipefail

NODE_IMAGE="node:22-bookworm-slim"
MOSQUITTO_IMAGE="eclipse-mosquitto:2"
# The rootfs both stand-ins start from; kept as an image so a second stand-in costs no second debootstrap.
MINBASE_IMAGE="edge-signin-stand-in/bookworm-minbase:latest"
PULL_TIMEOUT_S=20
FORCE=0
[ "${1:-}" = "--force" ] && FORCE=1

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
  timeout "$PULL_TIMEOUT_S" docker pull -q "$image" >/dev/null 2>&1
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
    log "debootstrap bookworm (minbase) from Debian's mirror"
    debootstrap --variant=minbase --include=ca-certificates bookworm "$WORK/rootfs" >"$WORK/debootstrap.log" 2>&1 ||
      { tail -20 "$WORK/debootstrap.log" >&2; exit 1; }
    chroot "$WORK/rootfs" apt-get clean
    rm -rf "$WORK/rootfs/var/lib/apt/lists/"*
    tar -C "$WORK/rootfs" -c . | docker import - "$MINBASE_IMAGE" >/dev/null
    return
  fi
  local id
  id="$(docker create "$MINBASE_IMAGE" /bin/true)"
  docker export "$id" | tar -C "$WORK/rootfs" -x
  docker rm "$id" >/dev/null
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
  local arch
  case "$(uname -m)" in
    x86_64) arch=x64 ;;
    aarch64 | arm64) arch=arm64 ;;
    *) log "no node-linux package for $(uname -m)"; exit 1 ;;
  esac
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
  tar -C "$WORK/rootfs" -c . | docker import \
    --change "ENV NODE_VERSION=${version#v}" \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'LABEL org.edge-signin.stand-in=true' \
    --change 'CMD ["node"]' \
    - "$NODE_IMAGE" >/dev/null
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
  tar -C "$WORK/rootfs" -c . | docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'LABEL org.edge-signin.stand-in=true' \
    --change 'EXPOSE 1883' \
    --change 'VOLUME ["/mosquitto/data", "/mosquitto/log"]' \
    --change 'ENTRYPOINT ["/docker-entrypoint.sh"]' \
    --change 'CMD ["/usr/sbin/mosquitto", "-c", "/mosquitto/config/mosquitto.conf"]' \
    - "$MOSQUITTO_IMAGE" >/dev/null
  log "$MOSQUITTO_IMAGE made ($(chroot "$WORK/rootfs" dpkg-query -W -f '${Version}' mosquitto), stand-in)"
}

docker info >/dev/null 2>&1 || { log "no container engine answers (docker info)"; exit 1; }
official_available "$NODE_IMAGE" && log "$NODE_IMAGE: using the image that is present" || build_node
official_available "$MOSQUITTO_IMAGE" && log "$MOSQUITTO_IMAGE: using the image that is present" || build_mosquitto
