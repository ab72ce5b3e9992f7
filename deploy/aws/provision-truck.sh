#!/usr/bin/env bash
# Provisions one truck on AWS IoT Core: creates its thing (of the fleet's thing type), an
# active device certificate and key, attaches the fleet's device policy and the thing to the
# certificate, and writes what the truck's gateway needs into OUT/THING/:
#   vigil.toml          the agent's config for this truck
#   certs/device.pem.crt, certs/private.pem.key, certs/AmazonRootCA1.pem
#   install.sh          copies the above into /etc/vigil on the gateway, with the right owners
#
# Needs: the AWS CLI v2 with credentials allowed to use AWS IoT, and the stack made from
# deploy/aws/vigil-fleet.yaml. Run it on an operator's machine, never on the truck.
#
# Usage: deploy/aws/provision-truck.sh [options] THING_NAME
#   --stack NAME          the CloudFormation stack (default: vigil-fleet)
#   --cargo CLASS         gasoline, lpg, naphtha or empty (default: gasoline)
#   --compartments N      cargo-tank compartments with a probe, 1-8 (default: 3)
#   --fleet NAME --depot NAME   searchable thing attributes (optional)
#   --out DIR             where to write (default: ./trucks)
#   --region REGION       passed to every aws call (default: the CLI's own)
set -euo pipefail

usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit "${1:-0}"; }
die() { echo "provision-truck: $*" >&2; exit 1; }

stack=vigil-fleet cargo=gasoline compartments=3 fleet="" depot="" out=./trucks region_args=()
while (($#)); do
  case "$1" in
    --stack) stack=$2; shift 2 ;;
    --cargo) cargo=$2; shift 2 ;;
    --compartments) compartments=$2; shift 2 ;;
    --fleet) fleet=$2; shift 2 ;;
    --depot) depot=$2; shift 2 ;;
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

here=$(cd "$(dirname "$0")" && pwd)
default_config="$here/../../cli/src/config/default.toml"
[ -r "$default_config" ] || die "cannot read $default_config: run this from a Vigil checkout"
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
created=()
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

# Amazon Root CA 1 signs IoT Core's ATS endpoints; Debian's ca-certificates carries it.
root_ca=/etc/ssl/certs/Amazon_Root_CA_1.pem
if [ -r "$root_ca" ]; then
  cp "$root_ca" "$dest/certs/AmazonRootCA1.pem"
else
  echo "provision-truck: $root_ca not found: put Amazon Root CA 1 in $dest/certs/AmazonRootCA1.pem" >&2
fi

# The config: the documented default with this truck's identity.
sed -e "s/^id = .*/id = \"$thing\"/" \
    -e "s/^cargo = .*/cargo = \"$cargo\"/" \
    -e "s/^compartments = .*/compartments = $compartments/" \
    "$default_config" >"$dest/vigil.toml"
cat >>"$dest/vigil.toml" <<EOF

# AWS IoT Core, written by provision-truck.sh on $(date -u +%Y-%m-%d). This table arrives
# with the uplink feature; until the agent knows it, it stays commented out here.
# [uplink]
# endpoint = "$endpoint"
# port = 8883
# certificate = "/etc/vigil/certs/device.pem.crt"
# private_key = "/etc/vigil/certs/private.pem.key"
# ca = "/etc/vigil/certs/AmazonRootCA1.pem"
EOF

cat >"$dest/install.sh" <<'EOF'
#!/bin/sh
# Run as root on the gateway, from this folder, after installing the vigil package.
set -eu
install -m 0644 vigil.toml /etc/vigil/vigil.toml
install -d -m 0750 -o root -g vigil /etc/vigil/certs
install -m 0644 certs/device.pem.crt certs/AmazonRootCA1.pem /etc/vigil/certs/
install -m 0640 -o root -g vigil certs/private.pem.key /etc/vigil/certs/
vigil check-config /etc/vigil/vigil.toml
systemctl enable --now vigil
EOF
chmod 755 "$dest/install.sh"

trap - ERR
echo "provisioned $thing: certificate $cert_arn, endpoint $endpoint"
echo "copy $dest to the gateway and run its install.sh there as root; then delete the key from this machine"
