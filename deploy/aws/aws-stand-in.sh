#!/usr/bin/env bash
# A stand-in for the AWS CLI v2, for testing provision-truck.sh without an AWS account
# (tests/system/provision.rs puts it on the PATH as `aws`). It answers what the script asks,
# as the real CLI would with --output text, and logs each call's "service operation
# arguments" (without --region and --output) to $AWS_STUB_LOG.
#
#   AWS_STUB_LOG          the call log (required)
#   AWS_STUB_CERTIFICATE  the PEM certificate create-keys-and-certificate hands out (required
#   AWS_STUB_PRIVATE_KEY  for that call), and its private key; written to the requested
#                         files under the caller's umask, as the real CLI writes them
#   AWS_STUB_ENDPOINT     what describe-endpoint answers (default: an eu-west-1 ATS endpoint)
#   AWS_STUB_THINGS       space-separated thing names that exist already
set -euo pipefail
: "${AWS_STUB_LOG:?the stand-in aws logs its calls to \$AWS_STUB_LOG}"
args=()
while (($#)); do
  case "$1" in
    --region|--output) shift 2 ;;
    *) args+=("$1"); shift ;;
  esac
done
echo "${args[*]}" >>"$AWS_STUB_LOG"
# The value of option $1 in this call.
opt() {
  local i
  for ((i = 0; i < ${#args[@]} - 1; i++)); do
    if [ "${args[i]}" = "$1" ]; then echo "${args[i+1]}"; fi
  done
}
case "${args[0]} ${args[1]}" in
  "iot describe-thing")
    name=$(opt --thing-name)
    if [[ " ${AWS_STUB_THINGS:-} " == *" $name "* ]]; then
      echo "$name"
    else
      echo "An error occurred (ResourceNotFoundException) when calling the DescribeThing operation" >&2
      exit 254
    fi ;;
  "cloudformation describe-stacks")
    case "$(opt --query)" in
      *DevicePolicyName*) echo "vigil-fleet-device" ;;
      *ThingTypeName*) echo "vigil-fleet-tanker-gateway" ;;
    esac ;;
  "iot describe-endpoint") echo "${AWS_STUB_ENDPOINT:-a1b2c3-ats.iot.eu-west-1.amazonaws.com}" ;;
  "iot create-thing") echo '{"thingName": "x"}' ;;
  "iot create-keys-and-certificate")
    cat "${AWS_STUB_CERTIFICATE:?the stand-in needs \$AWS_STUB_CERTIFICATE to hand out}" \
      >"$(opt --certificate-pem-outfile)"
    cat "${AWS_STUB_PRIVATE_KEY:?the stand-in needs \$AWS_STUB_PRIVATE_KEY to hand out}" \
      >"$(opt --private-key-outfile)"
    echo "arn:aws:iot:eu-west-1:123456789012:cert/abc" ;;
  "iot attach-policy"|"iot attach-thing-principal") ;;
  *) echo "aws stand-in: unexpected call: ${args[*]}" >&2; exit 2 ;;
esac
