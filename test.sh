#!/usr/bin/env bash
# Runs every check and test of Vigil, after installing what they need on a fresh Debian
# machine (apt packages, Rust components and targets). Safe to run again: it installs only
# what is missing. Usage: ./test.sh
set -euo pipefail
cd "$(dirname "$0")"

step() { printf '\n== %s\n' "$*"; }

# Debian packages the tests use.
# mosquitto: the real broker the uplink's system tests run (TLS, client certificates).
APT_PACKAGES=(pkg-config mosquitto)
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  step "installing ${missing[*]}"
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

step "Rust components and targets"
rustup component add rustfmt clippy >/dev/null
# The sensor node's firmware is built for its Cortex-M4F.
rustup target add thumbv7em-none-eabihf >/dev/null
host=$(rustc -vV | sed -n 's/^host: //p')

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "JSON Schemas are valid draft 2020-12 (when Python's jsonschema is there)"
if python3 -c 'import jsonschema' 2>/dev/null; then
  python3 - <<'PY'
import glob, json, jsonschema
for f in sorted(glob.glob("deploy/schemas/*.schema.json")):
    jsonschema.Draft202012Validator.check_schema(json.load(open(f)))
    print("  ok", f)
PY
else
  echo "  skipped: python3 -m pip install jsonschema to check them (the Rust tests check payloads)"
fi

step "cargo test (host workspace)"
cargo test --workspace --locked

# The firmware is its own workspace (firmware/node), so its embedded dependencies never
# unify with the host build's features.
step "firmware: fmt, clippy, host tests, thumbv7em-none-eabihf build"
(
  cd firmware/node
  cargo fmt --check
  cargo clippy --release --locked -- -D warnings
  cargo clippy --locked --target "$host" -p vigil-node -p max31865 --all-targets -- -D warnings
  cargo test --locked --target "$host"
  cargo build --release --locked
)
