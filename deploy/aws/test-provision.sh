#!/usr/bin/env bash
# Tests provision-truck.sh without an AWS account: a stand-in `aws` on PATH answers like the
# AWS CLI v2 and records every call. Checks the calls, the files written, their modes, and
# that the agent accepts the config. It cannot check AWS itself (the policy's effect, the
# endpoint): that needs a real account.
# Usage: deploy/aws/test-provision.sh [path/to/vigil]   (default: target/debug/vigil)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
vigil=$(realpath "${1:-$here/../../target/debug/vigil}")
[ -x "$vigil" ] || { echo "test-provision: no vigil binary at $vigil (cargo build -p vigil)" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir "$work/bin"
cat >"$work/bin/aws" <<'EOF'
#!/usr/bin/env bash
# Stand-in for the AWS CLI: logs "service operation" and answers what provision-truck.sh asks.
set -euo pipefail
args=()
while (($#)); do
  case "$1" in
    --region|--output) shift 2 ;;
    *) args+=("$1"); shift ;;
  esac
done
echo "${args[*]}" >>"$AWS_STUB_LOG"
opt() { local i; for ((i = 0; i < ${#args[@]}; i++)); do [ "${args[i]}" = "$1" ] && echo "${args[i+1]}"; done; }
case "${args[0]} ${args[1]}" in
  "iot describe-thing") echo "An error occurred (ResourceNotFoundException)" >&2; exit 254 ;;
  "cloudformation describe-stacks")
    case "$(opt --query)" in
      *DevicePolicyName*) echo "vigil-fleet-device" ;;
      *ThingTypeName*) echo "vigil-fleet-tanker-gateway" ;;
    esac ;;
  "iot describe-endpoint") echo "a1b2c3-ats.iot.eu-west-1.amazonaws.com" ;;
  "iot create-thing") echo '{"thingName": "x"}' ;;
  "iot create-keys-and-certificate")
    echo "-----BEGIN CERTIFICATE-----" >"$(opt --certificate-pem-outfile)"
    echo "-----BEGIN RSA PRIVATE KEY-----" >"$(opt --private-key-outfile)"
    echo "arn:aws:iot:eu-west-1:123456789012:cert/abc" ;;
  "iot attach-policy"|"iot attach-thing-principal") ;;
  *) echo "aws stand-in: unexpected call: ${args[*]}" >&2; exit 2 ;;
esac
EOF
chmod +x "$work/bin/aws"
export PATH="$work/bin:$PATH" AWS_STUB_LOG="$work/calls.log"

fail() { echo "test-provision: FAIL: $*" >&2; exit 1; }
passed=0
pass() { passed=$((passed + 1)); }

# A good run.
"$here/provision-truck.sh" --out "$work/trucks" --cargo lpg --compartments 4 --fleet north \
  --region eu-west-1 truck-0042 >"$work/out.txt"
truck="$work/trucks/truck-0042"
expected="cloudformation describe-stacks
cloudformation describe-stacks
iot describe-endpoint
iot create-thing
iot create-keys-and-certificate
iot attach-policy
iot attach-thing-principal"
actual=$(grep -v '^iot describe-thing' "$work/calls.log" | cut -d' ' -f1,2)
[ "$actual" = "$expected" ] || fail "calls were:"$'\n'"$actual"
pass
grep -q -- "--thing-type-name vigil-fleet-tanker-gateway --attribute-payload attributes={cargo=lpg,fleet=north}" \
  "$work/calls.log" || fail "create-thing without the thing type and attributes"
grep -q -- "attach-policy --policy-name vigil-fleet-device --target arn:aws:iot:eu-west-1:123456789012:cert/abc" \
  "$work/calls.log" || fail "the device policy was not attached to the new certificate"
pass
[ "$(stat -c %a "$truck/certs/private.pem.key")" = 600 ] || fail "the private key is not mode 600"
[ "$(stat -c %a "$truck/certs")" = 700 ] || fail "certs/ is not mode 700"
pass
"$vigil" check-config "$truck/vigil.toml" >/dev/null || fail "the agent refuses the written config"
grep -q '^id = "truck-0042"$' "$truck/vigil.toml" || fail "vehicle id not set"
grep -q '^cargo = "lpg"$' "$truck/vigil.toml" || fail "cargo not set"
grep -q '^compartments = 4$' "$truck/vigil.toml" || fail "compartments not set"
grep -q 'a1b2c3-ats.iot.eu-west-1.amazonaws.com' "$truck/vigil.toml" || fail "endpoint not written"
sh -n "$truck/install.sh" || fail "install.sh does not parse"
pass

# Refusals, before any AWS resource is made.
: >"$work/calls.log"
if "$here/provision-truck.sh" --out "$work/trucks" 'bad/name' 2>/dev/null; then fail "accepted a bad thing name"; fi
if "$here/provision-truck.sh" --out "$work/trucks" --compartments 9 t1 2>/dev/null; then fail "accepted 9 compartments"; fi
if "$here/provision-truck.sh" --out "$work/trucks" truck-0042 2>/dev/null; then fail "overwrote an existing folder"; fi
if grep -q create "$work/calls.log"; then fail "created something on a refused run"; fi
pass

echo "provision: $passed passed, 0 failed"
