#!/bin/sh
# Creates (or renews the password file entries of) one device's broker users, without installing Mosquitto on
# the host: mosquitto_passwd runs inside the eclipse-mosquitto:2 image. Run it once per device; it never touches
# another device's users, passwords or ACL lines.
#
#   docker/create-broker-users.sh [--local] [DEVICE_ID]
#
# DEVICE_ID defaults to EDGE_SIGNIN_DEVICE_ID from .env. Writes docker/secrets/ (EDGE_SIGNIN_SECRETS_DIR):
#   DEVICE_ID/agent_mqtt_password    this device's agent password (user DEVICE_ID-agent), readable by the image's node user
#   DEVICE_ID/display_mqtt_password  this device's display password (user DEVICE_ID-display)
#   DEVICE_ID/cache_key              32 random bytes (base64) that encrypt this agent's token cache in its state volume
#   events_mqtt_password             for your event consumer (user events; one for all devices), readable by you
#   controller_mqtt_password         for whatever sends commands to the agents (user controller), readable by you
#   mosquitto_passwd                 the broker's password file (hashed), readable by the broker's mosquitto user
# and appends the device's two ACL blocks to docker/mosquitto/acl (EDGE_SIGNIN_ACL_FILE) unless they are there.
# Existing passwords are kept: running it again for a device changes nothing but the password file's hashes.
# With --local, the host's own mosquitto_passwd is used instead of the image (and no ownership is changed).
set -eu

local_tools=false
if [ "${1:-}" = "--local" ]; then
  local_tools=true
  shift
fi

root=$(cd "$(dirname "$0")/.." && pwd)
device_id=${1:-}
if [ -z "$device_id" ] && [ -f "$root/.env" ]; then
  device_id=$(sed -n 's/^EDGE_SIGNIN_DEVICE_ID=//p' "$root/.env" | tail -n 1 | tr -d "\"'\r")
fi
case "$device_id" in
  "" | *[!A-Za-z0-9_-]* | [!A-Za-z0-9]*)
    echo "usage: $0 [--local] DEVICE_ID (letters, digits, '_' or '-', no '.': NATS and RabbitMQ cannot carry it; or set EDGE_SIGNIN_DEVICE_ID in .env)" >&2
    exit 2
    ;;
esac
case "$device_id" in
  events | controller)
    echo "$0: '$device_id' is a shared user's name; choose another device id" >&2
    exit 2
    ;;
esac
secrets=${EDGE_SIGNIN_SECRETS_DIR:-$root/docker/secrets}
acl=${EDGE_SIGNIN_ACL_FILE:-$root/docker/mosquitto/acl}
mkdir -p "$secrets/$device_id"

# Runs where mosquitto_passwd is: in the container (as root, so it can hand each file to its reader) or here.
# The password file is updated for this device's users only (mosquitto_passwd -b adds or replaces one user), on
# a copy first, so a failure of mosquitto_passwd leaves the old file whole.
# shellcheck disable=SC2016
make_users='
set -eu
cd "$SECRETS"
umask 077
for who in agent display; do
  if [ ! -s "$DEVICE_ID/${who}_mqtt_password" ]; then
    tr -dc "A-Za-z0-9" </dev/urandom | head -c 32 >"$DEVICE_ID/${who}_mqtt_password"
  fi
done
for who in events controller; do
  if [ ! -s "${who}_mqtt_password" ]; then
    tr -dc "A-Za-z0-9" </dev/urandom | head -c 32 >"${who}_mqtt_password"
  fi
done
if [ ! -s "$DEVICE_ID/cache_key" ]; then
  head -c 32 /dev/urandom | base64 >"$DEVICE_ID/cache_key"
fi
rm -f mosquitto_passwd.new
if [ -f mosquitto_passwd ]; then cp mosquitto_passwd mosquitto_passwd.new; else touch mosquitto_passwd.new; fi
mosquitto_passwd -b mosquitto_passwd.new "$DEVICE_ID-agent" "$(cat "$DEVICE_ID/agent_mqtt_password")"
mosquitto_passwd -b mosquitto_passwd.new "$DEVICE_ID-display" "$(cat "$DEVICE_ID/display_mqtt_password")"
grep -q "^events:" mosquitto_passwd.new || mosquitto_passwd -b mosquitto_passwd.new events "$(cat events_mqtt_password)"
grep -q "^controller:" mosquitto_passwd.new || mosquitto_passwd -b mosquitto_passwd.new controller "$(cat controller_mqtt_password)"
# Rewritten in place, not renamed over: the broker container bind-mounts this one file, and a rename would leave it
# reading the old file even after a reload.
if [ -f mosquitto_passwd ]; then cat mosquitto_passwd.new >mosquitto_passwd && rm mosquitto_passwd.new; else mv mosquitto_passwd.new mosquitto_passwd; fi
if [ "$CHOWN" = true ]; then
  chown 1883:1883 mosquitto_passwd
  chown 1000:1000 "$DEVICE_ID" "$DEVICE_ID/agent_mqtt_password" "$DEVICE_ID/display_mqtt_password" "$DEVICE_ID/cache_key"
  chown "$HOST_UID:$HOST_GID" events_mqtt_password controller_mqtt_password
fi
'

if [ "$local_tools" = true ]; then
  SECRETS=$secrets DEVICE_ID=$device_id CHOWN=false sh -c "$make_users"
else
  docker run --rm --network none \
    -e SECRETS=/secrets -e DEVICE_ID="$device_id" -e CHOWN=true \
    -e HOST_UID="$(id -u)" -e HOST_GID="$(id -g)" \
    -v "$secrets:/secrets" \
    --entrypoint /bin/sh "${MOSQUITTO_IMAGE:-eclipse-mosquitto:2}" -c "$make_users"
fi

# This device's ACL blocks, appended once (the broker reads the file at start and on SIGHUP).
if ! grep -q "^user $device_id-agent\$" "$acl"; then
  cat >>"$acl" <<ACL

# Device $device_id (added by docker/create-broker-users.sh)
user $device_id-agent
topic write edge-signin/$device_id/#
topic read edge-signin/$device_id/request/#

user $device_id-display
topic read edge-signin/$device_id/display
topic read edge-signin/$device_id/state
topic read edge-signin/$device_id/availability
ACL
  echo "Added the ACL blocks of $device_id to $acl (reload the broker: docker compose kill -s HUP mosquitto)"
fi
echo "Broker users for device $device_id: $device_id-agent, $device_id-display (passwords in $secrets/$device_id); shared: events, controller"
