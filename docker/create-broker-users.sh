#!/bin/sh
# Creates the broker users of one device or of a whole fleet in one run, without installing Mosquitto on the
# host: mosquitto_passwd runs inside the eclipse-mosquitto:2 image. docker/mosquitto/acl grants every device its
# topics BY PATTERN (its user names carry the device id), so adding a device writes one password file entry per
# user and changes nothing else: no ACL line, no other device's entry.
#
#   docker/create-broker-users.sh [--local] [DEVICE_ID ...] [--count N [--prefix PREFIX]] [--consumers N]
#
# DEVICE_ID defaults to EDGE_SIGNIN_DEVICE_ID from .env. `--count 1000 --prefix kiosk-` provisions kiosk-1 ...
# kiosk-1000. Writes docker/secrets/ (EDGE_SIGNIN_SECRETS_DIR):
#   DEVICE_ID/agent_mqtt_password    this device's agent password (user DEVICE_ID), readable by the image's node user
#   DEVICE_ID/display_mqtt_password  this device's display password (user edge-signin/DEVICE_ID)
#   DEVICE_ID/cache_key              32 random bytes (hex) that encrypt this agent's token cache in its state volume
#   events_mqtt_password             for your event consumer (user events; one for all devices), readable by you
#   events-K_mqtt_password           with --consumers N, K = 1..N: more consumers (users events-1 ... events-N), so
#                                    several can share the events with an MQTT 5 shared subscription; each needs
#                                    its own user (a client's id is its user name), and each gets an ACL block
#                                    like `events` (EDGE_SIGNIN_ACL_FILE, appended once): the only ACL lines the
#                                    script writes, and never for a device
#   controller_mqtt_password         for whatever sends commands to the agents (user controller), readable by you
#   fleet_mqtt_password              for `edge-signin fleet` (user fleet: availability and state only), readable by you
#   mosquitto_passwd                 the broker's password file (hashed), readable by the broker's mosquitto user
# Existing passwords are kept: running it again for a device changes nothing. The broker reads new users on
# SIGHUP (docker compose kill -s HUP mosquitto). With --local, the host's own mosquitto_passwd is used instead of
# the image (and no ownership is changed).
set -eu

usage() {
  echo "usage: $0 [--local] [DEVICE_ID ...] [--count N [--prefix PREFIX]] [--consumers N] (ids: letters, digits, '_' or '-', no '.': NATS and RabbitMQ cannot carry it; or set EDGE_SIGNIN_DEVICE_ID in .env)" >&2
  exit 2
}

# The ACL grants by pattern (%u, %c): a device id is one topic level and one user name, so it holds letters,
# digits, '_' and '-' only (no space, which would also make it several devices here, no '/', '+', '#', '.').
refuse_id() {
  echo "$0: $2 '$1' refused: a device id holds letters, digits, '_' or '-' only, starts with a letter or digit (no spaces, '/', '+', '#' or '.')" >&2
  exit 2
}
check_id() {
  case "$1" in
    "" | *[!A-Za-z0-9_-]* | [!A-Za-z0-9]*) refuse_id "$1" "${2:-device id}" ;;
  esac
}

root=$(cd "$(dirname "$0")/.." && pwd)
local_tools=false
count=0
consumers=0
prefix=device-
devices=""
while [ $# -gt 0 ]; do
  case "$1" in
    --local) local_tools=true ;;
    --count)
      [ $# -ge 2 ] || usage
      count=$2
      shift
      ;;
    --prefix)
      [ $# -ge 2 ] || usage
      prefix=$2
      shift
      ;;
    --consumers)
      [ $# -ge 2 ] || usage
      consumers=$2
      shift
      ;;
    -*) usage ;;
    *)
      check_id "$1"
      devices="$devices $1"
      ;;
  esac
  shift
done
case "$count$consumers" in "" | *[!0-9]*) usage ;; esac
# A prefix is the start of every id made from it (an empty one makes ids of digits only).
case "$prefix" in
  *[!A-Za-z0-9_-]* | [!A-Za-z0-9]*) refuse_id "$prefix" "prefix" ;;
esac
i=1
while [ "$i" -le "$count" ]; do
  devices="$devices $prefix$i"
  i=$((i + 1))
done
if [ -z "$devices" ] && [ -f "$root/.env" ]; then
  devices=$(sed -n 's/^EDGE_SIGNIN_DEVICE_ID=//p' "$root/.env" | tail -n 1 | tr -d "\"'\r")
  [ -z "$devices" ] || check_id "$devices" "EDGE_SIGNIN_DEVICE_ID in $root/.env"
fi
[ -n "$devices" ] || [ "$consumers" -gt 0 ] || usage
for device_id in $devices; do
  case "$device_id" in
    # Shared users' names, and the topic prefix: a display's user name is edge-signin/DEVICE_ID, so a device
    # called edge-signin would own the topics the ACL keeps every display's stray grants in.
    events | events-* | controller | fleet | edge-signin)
      echo "$0: '$device_id' is reserved (a shared user's name or the topic prefix); choose another device id" >&2
      exit 2
      ;;
  esac
done
secrets=${EDGE_SIGNIN_SECRETS_DIR:-$root/docker/secrets}
acl=${EDGE_SIGNIN_ACL_FILE:-$root/docker/mosquitto/acl}
mkdir -p "$secrets"
shared="events controller fleet"
i=1
while [ "$i" -le "$consumers" ]; do
  shared="$shared events-$i"
  i=$((i + 1))
done

# Runs where mosquitto_passwd is: in the container (as root, so it can hand each file to its reader) or here.
# One mosquitto_passwd run for the whole batch (-U hashes a file of user:password lines): one run per user
# rewrites the whole password file each time, which takes minutes for a thousand devices. The users to hash are
# those with a new password or no entry yet; every other entry is copied unchanged. The new file is built beside
# the old one, so a failure leaves the old file whole.
# shellcheck disable=SC2016
make_users='
set -eu
cd "$SECRETS"
umask 077
rm -f users.hash users.keep mosquitto_passwd.new pool.pw pool.key
: >users.hash
: >users.keep
# Random material for the whole run from one pipeline each (a process or two per user would take seconds per
# hundred devices): 32 letters and digits per password, 32 bytes in hex per cache key.
n=0
for device in $DEVICES; do n=$((n + 1)); done
{ tr -dc "A-Za-z0-9" </dev/urandom | head -c $((32 * (2 * n + 3 + CONSUMERS))) | fold -w 32; echo; } >pool.pw
{ od -An -vtx1 -N $((32 * n)) /dev/urandom | tr -d " \n" | fold -w 64; echo; } >pool.key
exec 3<pool.pw 4<pool.key
# A new password is written and queued for hashing; an existing one is queued only if its user has no entry.
add() {
  if [ ! -s "$2" ]; then
    read -r password <&3
    printf "%s" "$password" >"$2"
    printf "%s:%s\n" "$1" "$password" >>users.hash
  else
    printf "%s:%s\n" "$1" "$2" >>users.keep
  fi
}
# shellcheck disable=SC2086
[ -z "$DEVICES" ] || mkdir -p $DEVICES
for device in $DEVICES; do
  add "$device" "$device/agent_mqtt_password"
  add "edge-signin/$device" "$device/display_mqtt_password"
  if [ ! -s "$device/cache_key" ]; then
    read -r key <&4
    printf "%s\n" "$key" >"$device/cache_key"
  fi
done
for who in $SHARED; do add "$who" "${who}_mqtt_password"; done
[ -f mosquitto_passwd ] || : >mosquitto_passwd
# Users whose password file exists but who have no entry (a password file copied from elsewhere) are hashed too.
awk -F: "NR == FNR { present[\$1] = 1; next } !(\$1 in present)" mosquitto_passwd users.keep |
  while IFS=: read -r user file; do printf "%s:%s\n" "$user" "$(cat "$file")" >>users.hash; done
if [ -s users.hash ]; then
  mosquitto_passwd -U users.hash
  awk -F: "NR == FNR { fresh[\$1] = 1; next } !(\$1 in fresh)" users.hash mosquitto_passwd >mosquitto_passwd.new
  cat users.hash >>mosquitto_passwd.new
  # Rewritten in place, not renamed over: the broker container bind-mounts this one file, and a rename would
  # leave it reading the old file even after a reload.
  cat mosquitto_passwd.new >mosquitto_passwd
fi
exec 3<&- 4<&-
rm -f users.hash users.keep mosquitto_passwd.new pool.pw pool.key
if [ "$CHOWN" = true ]; then
  chown 1883:1883 mosquitto_passwd
  # shellcheck disable=SC2086
  [ -z "$DEVICES" ] || chown -R 1000:1000 $DEVICES
  for who in $SHARED; do chown "$HOST_UID:$HOST_GID" "${who}_mqtt_password"; done
fi
'

if [ "$local_tools" = true ]; then
  SECRETS=$secrets DEVICES=$devices SHARED=$shared CONSUMERS=$consumers CHOWN=false sh -c "$make_users"
else
  docker run --rm --network none \
    -e SECRETS=/secrets -e DEVICES="$devices" -e SHARED="$shared" -e CONSUMERS="$consumers" -e CHOWN=true \
    -e HOST_UID="$(id -u)" -e HOST_GID="$(id -g)" \
    -v "$secrets:/secrets" \
    --entrypoint /bin/sh "${MOSQUITTO_IMAGE:-eclipse-mosquitto:2}" -c "$make_users"
fi

# The extra consumers' ACL blocks, appended once (the broker reads the file at start and on SIGHUP).
i=1
while [ "$i" -le "$consumers" ]; do
  if ! grep -q "^user events-$i\$" "$acl"; then
    printf '\n# Event consumer events-%s (added by docker/create-broker-users.sh --consumers)\nuser events-%s\ntopic deny edge-signin/events-%s/#\ntopic read edge-signin/+/events/#\n' "$i" "$i" "$i" >>"$acl"
    echo "Added the ACL block of consumer events-$i to $acl"
  fi
  i=$((i + 1))
done

# shellcheck disable=SC2086
set -- $devices
if [ $# -eq 0 ]; then
  :
elif [ $# -eq 1 ]; then
  echo "Broker users for device $1: $1 (agent), edge-signin/$1 (display); passwords in $secrets/$1; shared: events, controller, fleet"
else
  echo "Broker users for $# devices ($1 ... $(eval echo "\${$#}")): DEVICE_ID (agent), edge-signin/DEVICE_ID (display); passwords in $secrets/DEVICE_ID; shared: events, controller, fleet"
fi
echo "Reload a running broker to let them in: docker compose kill -s HUP mosquitto"
