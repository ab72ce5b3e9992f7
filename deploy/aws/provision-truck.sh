#!/usr/bin/env bash
# Provisions one truck on AWS IoT Core: creates its thing (of the fleet's thing type), an
# active device certificate and key, attaches the fleet's device policy and the thing to the
# certificate, and writes what the truck's gateway needs into OUT/THING/:
#   vigil.toml          the agent's config for this truck: deploy/vigil.toml (the package's
#                       template) filled in: SocketCAN and the serial node, the uplink on
#   certs/device.pem.crt, certs/private.pem.key, certs/AmazonRootCA1.pem
#   install.sh          installs the above into /etc/vigil on the gateway, the key owned by
#                       the agent's user and private (deploy/aws/install-truck.sh)
#
# Needs: the AWS CLI v2 with credentials allowed to use AWS IoT, and the stack made from
# deploy/aws/vigil-fleet.yaml. Run it on an operator's machine, never on the truck.
#
# Usage: deploy/aws/provision-truck.sh [options] THING_NAME
#   --stack NAME          the CloudFormation stack (default: vigil-fleet)
#   --cargo CLASS         gasoline, lpg, naphtha or empty (default: gasoline)
#   --compartments N      cargo-tank compartments with a probe, 1-8 (default: 3)
#   --fleet NAME --depot NAME   searchable thing attributes (optional)
#   --port N              the broker's port: 8883, or 443 where 8883 is blocked (default: 8883)
#   --root-ca FILE        the CA the endpoint chains to (default: Amazon Root CA 1 from
#                         ca-certificates, /etc/ssl/certs/Amazon_Root_CA_1.pem)
#   --out DIR             where to write (default: ./trucks)
#   --region REGION       passed to every aws call (default: the CLI's own)
set -euo pipefail

usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit "${1:-0}"; }
# What this run made on AWS, said when a later step fails so it can be cleaned up.
created=()
die() {
  echo "provision-truck: $*" >&2
  if ((${#created[@]})); then echo "provision-truck: failed; created so far: ${created[*]}" >&2; fi
  exit 1
}

stack=vigil-fleet cargo=gasoline compartments=3 fleet="" depot="" port=8883 out=./trucks region_args=()
root_ca=/etc/ssl/certs/Amazon_Root_CA_1.pem
while (($#)); do
  case "$1" in
    --stack) stack=$2; shift 2 ;;
    --cargo) cargo=$2; shift 2 ;;
    --compartments) compartments=$2; shift 2 ;;
    --fleet) fleet=$2; shift 2 ;;
    --depot) depot=$2; shift 2 ;;
    --port) port=$2; shift 2 ;;
    --root-ca) root_ca=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --region) region_args=(--region "$2"); shift 2 ;;
    -h|--help) usage 0 ;;
    -*) die "unknown option $1 (see --help)" ;;
    *) break ;;
  esac
done
(($# == 1)) || usage 2
thing=$1

# The same rules the agent applies to [vehicle] id (it is the MQTT client id).
[[ $thing =~ ^[A-Za-z0-9:_-]{1,128}$ ]] ||
  die "thing name '$thing' may use only letters, digits, ':', '_' and '-' (1-128 characters)"
[[ $cargo =~ ^(gasoline|lpg|naphtha|empty)$ ]] || die "--cargo must be gasoline, lpg, naphtha or empty"
[[ $compartments =~ ^[1-8]$ ]] || die "--compartments must be 1 to 8"
if ! [[ $port =~ ^[1-9][0-9]{0,4}$ ]] || ((port > 65535)); then
  die "--port must be a TCP port (8883, or 443 on AWS IoT Core where 8883 is blocked)"
fi

here=$(cd "$(dirname "$0")" && pwd)
template="$here/../vigil.toml"
installer="$here/install-truck.sh"
for file in "$template" "$installer"; do
  [ -r "$file" ] || die "cannot read $file: run this from a Vigil checkout"
done
# Amazon Root CA 1 signs IoT Core's ATS endpoints; Debian's ca-certificates carries it.
[ -r "$root_ca" ] || die "cannot read the CA $root_ca: install ca-certificates, or give --root-ca FILE"
command -v aws >/dev/null || die "the AWS CLI (aws) is not installed"
aws() { command aws "${region_args[@]}" --output text "$@"; }

dest="$out/$thing"
[ -e "$dest" ] && die "$dest exists already: move it away, or pick another --out"
if aws iot describe-thing --thing-name "$thing" >/dev/null 2>&1; then
  die "thing '$thing' exists already on AWS IoT; remove it first or choose another name"
fi

output() {
  aws cloudformation describe-stacks --stack-name "$stack" \
    --query "Stacks[0].Outputs[?OutputKey=='$1'].OutputValue"
}
policy=$(output DevicePolicyName)
thing_type=$(output ThingTypeName)
for value in "$policy" "$thing_type"; do
  if [ -z "$value" ] || [ "$value" = None ]; then
    die "stack '$stack' has no DevicePolicyName/ThingTypeName outputs: deploy deploy/aws/vigil-fleet.yaml first"
  fi
done
endpoint=$(aws iot describe-endpoint --endpoint-type iot:Data-ATS --query endpointAddress)

# From here on AWS resources exist: say what to clean up if a later step fails.
trap 'if ((${#created[@]})); then echo "provision-truck: failed; created so far: ${created[*]}" >&2; fi' ERR

attributes="cargo=$cargo"
[ -n "$fleet" ] && attributes+=",fleet=$fleet"
[ -n "$depot" ] && attributes+=",depot=$depot"
aws iot create-thing --thing-name "$thing" --thing-type-name "$thing_type" \
  --attribute-payload "attributes={$attributes}" >/dev/null
created+=("thing $thing")

mkdir -p "$dest/certs"
chmod 700 "$dest/certs"
cert_arn=$(
  umask 077
  aws iot create-keys-and-certificate --set-as-active \
    --certificate-pem-outfile "$dest/certs/device.pem.crt" \
    --private-key-outfile "$dest/certs/private.pem.key" \
    --query certificateArn
)
created+=("certificate $cert_arn")
aws iot attach-policy --policy-name "$policy" --target "$cert_arn"
aws iot attach-thing-principal --thing-name "$thing" --principal "$cert_arn"

cp "$root_ca" "$dest/certs/AmazonRootCA1.pem"

# The config: the package's template with this truck's identity and endpoint filled in.
config="$dest/vigil.toml"
{
  echo "# Written by deploy/aws/provision-truck.sh on $(date -u +%Y-%m-%d) for the thing $thing:"
  echo "# the template's FILL IN lines are filled in."
  echo "#"
  cat "$template"
} >"$config"
# Sets KEY in [TABLE] to VALUE (TOML); fails if the template has no such line there.
set_key() {
  awk -v table="[$1]" -v key="$2" -v value="$3" '
    /^\[/ { here = ($0 == table) }
    here && index($0, key " = ") == 1 { print key " = " value; done = 1; next }
    { print }
    END { exit !done }' "$config" >"$config.new" ||
    die "the template $template has no '$2 = ' line in [$1]"
  mv "$config.new" "$config"
}
set_key vehicle id "\"$thing\""
set_key vehicle cargo "\"$cargo\""
set_key vehicle compartments "$compartments"
set_key uplink endpoint "\"$endpoint\""
set_key uplink port "$port"

cp "$installer" "$dest/install.sh"
chmod 755 "$dest/install.sh"

trap - ERR
echo "provisioned $thing: certificate $cert_arn, endpoint $endpoint"
echo "copy $dest to the gateway and run its install.sh there as root; then delete the key from this machine"
