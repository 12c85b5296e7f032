#!/bin/sh
# Creates the broker users of compose.yaml and their passwords, without installing Mosquitto on the host:
# mosquitto_passwd runs inside the eclipse-mosquitto:2 image.
#
#   docker/create-broker-users.sh [DEVICE_ID]
#
# DEVICE_ID defaults to EDGE_SIGNIN_DEVICE_ID from .env. Writes docker/secrets/:
#   agent_mqtt_password    the agent's password (user DEVICE_ID-agent), readable by the image's node user
#   display_mqtt_password  the web display's password (user DEVICE_ID-display)
#   events_mqtt_password   for your event consumer (user events), readable by you
#   controller_mqtt_password  for whatever sends commands to the agent (user controller), readable by you
#   mosquitto_passwd       the broker's password file (hashed), readable by the broker's mosquitto user
#   cache_key              32 random bytes (base64) that encrypt the agent's token cache in its state volume
# Existing passwords are kept, so running it again only rebuilds the password file.
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
  "" | *[!A-Za-z0-9._-]*)
    echo "usage: $0 [--local] DEVICE_ID (letters, digits, '.', '_' or '-'; or set EDGE_SIGNIN_DEVICE_ID in .env)" >&2
    exit 2
    ;;
esac
secrets=${EDGE_SIGNIN_SECRETS_DIR:-$root/docker/secrets}
mkdir -p "$secrets"

# Runs where mosquitto_passwd is: in the container (as root, so it can hand each file to its reader) or here.
# shellcheck disable=SC2016
make_users='
set -eu
cd "$SECRETS"
umask 077
for who in agent display events controller; do
  if [ ! -s "${who}_mqtt_password" ]; then
    tr -dc "A-Za-z0-9" </dev/urandom | head -c 32 >"${who}_mqtt_password"
  fi
done
if [ ! -s cache_key ]; then
  head -c 32 /dev/urandom | base64 >cache_key
fi
rm -f mosquitto_passwd.new
touch mosquitto_passwd.new
mosquitto_passwd -b mosquitto_passwd.new "$DEVICE_ID-agent" "$(cat agent_mqtt_password)"
mosquitto_passwd -b mosquitto_passwd.new "$DEVICE_ID-display" "$(cat display_mqtt_password)"
mosquitto_passwd -b mosquitto_passwd.new events "$(cat events_mqtt_password)"
mosquitto_passwd -b mosquitto_passwd.new controller "$(cat controller_mqtt_password)"
mv mosquitto_passwd.new mosquitto_passwd
if [ "$CHOWN" = true ]; then
  chown 1883:1883 mosquitto_passwd
  chown 1000:1000 agent_mqtt_password display_mqtt_password cache_key
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
echo "Broker users for device $device_id: $device_id-agent, $device_id-display, events, controller (passwords in $secrets)"
if ! grep -q "^user $device_id-agent\$" "$root/docker/mosquitto/acl"; then
  echo "warning: docker/mosquitto/acl has no block for $device_id yet: copy the living-room-tv blocks and rename them" >&2
fi
