#!/usr/bin/env bash
# Runs every check and test of Vigil, after installing what they need on a fresh Debian
# machine (apt packages, Rust components and targets, cargo-deb, cfn-lint). Safe to run
# again: it installs only what is missing. Usage: ./test.sh
set -euo pipefail
cd "$(dirname "$0")"

# Each step prints its name; the time it took is printed when the next one starts, and a
# table of all of them at the end (CI's log shows where the minutes go).
step_names=() step_seconds=() step_started=0
step_end() {
  if ((step_started)); then
    step_seconds+=($(($(date +%s) - step_started)))
  fi
}
step() {
  step_end
  step_names+=("$*")
  step_started=$(date +%s)
  printf '\n== %s\n' "$*"
}
report_times() {
  step_end
  printf '\n== step times (s)\n'
  for i in "${!step_seconds[@]}"; do printf '%6d  %s\n' "${step_seconds[i]}" "${step_names[i]}"; done
}

# Debian packages the tests use: the aarch64 cross linker and glibc, qemu-user to run
# aarch64 tests, systemd for systemd-analyze, dpkg-dev for the .deb's dependencies,
# ShellCheck for the deploy scripts, python3-venv for cfn-lint, mosquitto: the real
# broker the uplink's system tests run (TLS, client certificates), and chromium: the
# headless browser the replay report's system test renders it in.
APT_PACKAGES=(pkg-config gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user systemd
  dpkg-dev shellcheck python3-venv file mosquitto chromium)
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
# The sensor node's firmware is built for its Cortex-M4F; the agent for the gateway.
rustup target add thumbv7em-none-eabihf aarch64-unknown-linux-gnu >/dev/null
host=$(rustc -vV | sed -n 's/^host: //p')
gateway=aarch64-unknown-linux-gnu
# The gateway's build of vigil: the demo's broker in, the engineer's desk commands (feature
# `lab`: replay, dataset, eval, decode, model job) out; the Debian packages carry it too
# (cli/Cargo.toml). Every other build here has the default features.
gateway_features=(--no-default-features --features demo-broker)

# cargo-deb builds the Debian packages; pinned so a new release cannot change them unseen.
CARGO_DEB_VERSION=3.8.0
if ! cargo deb --version 2>/dev/null | grep -q "$CARGO_DEB_VERSION"; then
  step "installing cargo-deb $CARGO_DEB_VERSION"
  cargo install --locked cargo-deb --version "$CARGO_DEB_VERSION"
fi
# cfn-lint checks the CloudFormation template: the one on PATH, else a venv of our own.
CFN_LINT=$(command -v cfn-lint || true)
if [ -z "$CFN_LINT" ]; then
  CFN_LINT=target/tools/venv/bin/cfn-lint
  if [ ! -x "$CFN_LINT" ]; then
    step "installing cfn-lint in target/tools/venv"
    python3 -m venv target/tools/venv
    target/tools/venv/bin/pip install --quiet cfn-lint
  fi
fi

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo clippy -p vigil --all-targets --locked "${gateway_features[@]}" -- -D warnings

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

# models/*.py and the system tests' Python run from a venv of their own: every package
# pinned with its hash (models/requirements.txt for train.py, models/requirements-lint.txt
# for ruff, tests/requirements.txt for the Prometheus text parser tests/system/metrics.rs
# runs), installed again only when those files or the Python change. Bytecode goes under
# target/, not models/.
step "models/*.py: py_compile, ruff, train/serve parity fixture"
PY_VENV=target/tools/py-venv
PY_REQUIREMENTS=(models/requirements.txt models/requirements-lint.txt tests/requirements.txt)
py_stamp=$(cat "${PY_REQUIREMENTS[@]}" <(python3 --version) | sha256sum | cut -d' ' -f1)
if [ ! -x "$PY_VENV/bin/python3" ] || [ "$(cat "$PY_VENV/.requirements.sha256" 2>/dev/null)" != "$py_stamp" ]; then
  pip_args=()
  for f in "${PY_REQUIREMENTS[@]}"; do pip_args+=(-r "$f"); done
  echo "  creating $PY_VENV: pip install --require-hashes ${pip_args[*]}"
  rm -rf "$PY_VENV"
  python3 -m venv "$PY_VENV"
  "$PY_VENV/bin/python3" -m pip install --quiet --no-input --disable-pip-version-check --require-hashes \
    "${pip_args[@]}"
  echo "$py_stamp" >"$PY_VENV/.requirements.sha256"
else
  echo "  $PY_VENV is up to date with ${PY_REQUIREMENTS[*]}"
fi
export PYTHONPYCACHEPREFIX="$PWD/target/tools/pycache"
echo "  python3 -m py_compile models/*.py"
"$PY_VENV/bin/python3" -m py_compile models/*.py
echo "  ruff check models/*.py"
"$PY_VENV/bin/ruff" check --no-cache models/*.py
echo "  python3 models/parity.py --check models/parity/fixture.json"
"$PY_VENV/bin/python3" models/parity.py --check models/parity/fixture.json
unset PYTHONPYCACHEPREFIX

step "cargo test (host workspace)"
cargo test --workspace --locked

# train.py --data on data a fleet could bring: the real truck log's 1 Hz CSV and a simulated
# fleet of coolant, speed and engine speed, each trained or refused with its reason; it runs
# the vigil binary and the fleet_csv example that cargo test has just built.
step "models/test_train.py: train.py --data trains or refuses"
PYTHONPYCACHEPREFIX="$PWD/target/tools/pycache" "$PY_VENV/bin/python3" models/test_train.py

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

# The gateway build (see .cargo/config.toml: Debian's aarch64 gcc links, qemu-aarch64 runs).
step "aarch64: release build for the gateway"
cargo build --release --locked --target "$gateway" -p vigil "${gateway_features[@]}"
binary="target/$gateway/release/vigil"
file -b "$binary" | grep -q "ARM aarch64" || { echo "not an aarch64 binary: $binary" >&2; exit 1; }
# The release profile as Cargo really applies it, so that an edit of [profile.release] in
# Cargo.toml cannot drop a setting unseen. `cargo rustc -v -- --print cfg` runs the final
# rustc of the binary again (the dependencies are fresh from the build above; the extra
# argument gives it a unit of its own, so it is never "Fresh" and replaces nothing): it
# prints the command line with the profile's flags, then the cfg, and stops before compiling.
profile=$(cargo rustc --release --locked --target "$gateway" -p vigil "${gateway_features[@]}" --bin vigil -v -- --print cfg 2>&1) ||
  { echo "$profile" >&2; echo "release profile: cargo rustc --print cfg failed" >&2; exit 1; }
rustc_line=$(grep -E '^ *Running `.*rustc --crate-name vigil .*--crate-type bin .* --print cfg' <<<"$profile") ||
  { grep -v '^ *Fresh ' <<<"$profile" >&2; echo "release profile: cargo ran no rustc for the vigil binary" >&2; exit 1; }
for flag in "-C opt-level=z" "-C lto=fat" "-C codegen-units=1" "-C strip=symbols" "-C panic=abort"; do
  grep -qF -- " $flag " <<<"$rustc_line" ||
    { echo "release profile: the vigil binary is built without $flag ([profile.release] in Cargo.toml)" >&2; exit 1; }
done
grep -qx 'panic="abort"' <<<"$profile" ||
  { echo 'release profile: rustc does not report cfg panic="abort" for the vigil binary' >&2; exit 1; }
[[ $(file -b "$binary") == *", stripped"* ]] ||
  { echo "release profile: $binary is not stripped: $(file -b "$binary")" >&2; exit 1; }
echo "release profile as rustc gets it: opt-level=z, lto=fat, codegen-units=1, strip=symbols, panic=abort"
# The size target (README, "Build for the gateway"): 12 MB, decimal.
size=$(stat -c %s "$binary") size_target=12000000
echo "stripped aarch64 binary: $size bytes ($((size / 1024)) KiB; target < $size_target bytes)"
((size < size_target)) ||
  { echo "the gateway's binary is $((size - size_target)) bytes over its $size_target-byte target" >&2; exit 1; }
# It runs: the default config checks out under qemu-aarch64.
gateway_vigil=(qemu-aarch64 -L /usr/aarch64-linux-gnu "$binary")
"${gateway_vigil[@]}" print-default-config >target/vigil-default.toml
"${gateway_vigil[@]}" check-config target/vigil-default.toml
# It has what the truck needs and not the desk's commands (the size rests on both).
gateway_help=$("${gateway_vigil[@]}" --help)
for command in run demo check-config spool fleet alarm generate; do
  grep -qE "^  $command " <<<"$gateway_help" || { echo "the gateway's vigil has no \`$command\`" >&2; exit 1; }
done
for command in replay dataset eval decode model; do
  ! grep -qE "^  $command " <<<"$gateway_help" || { echo "the gateway's vigil has the desk's \`$command\`" >&2; exit 1; }
done
# The demo runs on it with its in-process broker: 2 simulated minutes as fast as they go
# (about 6 s under qemu), the batches through the spool to the broker, which acknowledges them.
demo_log=$("${gateway_vigil[@]}" demo --speed 0 --duration 2m 2>&1 >/dev/null) ||
  { echo "$demo_log" >&2; echo "the gateway's vigil demo failed" >&2; exit 1; }
if ! grep -q "in-process MQTT broker on 127.0.0.1" <<<"$demo_log" ||
  ! grep -qE "published, [1-9][0-9]* acknowledged; shutdown complete" <<<"$demo_log"; then
  echo "$demo_log" >&2
  echo "the gateway's vigil demo: no broker, or nothing acknowledged" >&2
  exit 1
fi
grep "^vigil demo: .* readings" <<<"$demo_log"

# The agent's unit tests on aarch64, under qemu-user (the runner in .cargo/config.toml): the
# vigil-agent crate, which is what runs on the truck (the simulator and the lab run on the
# engineer's x86 desk and are tested natively above). Only --lib: the system tests drive
# the binary through pseudo-terminals. Serial tests need a
# pty, and qemu-user 7.2 has no TCGETS2 (ENOSYS on open), so source::serial and the GPS
# receiver's pty test are skipped here; they run natively above. No debuginfo: it only makes the test binaries slow to link and load.
# Property tests run fewer cases under emulation (about 10x slower); the native run has them all.
step "aarch64: unit tests under qemu-aarch64"
CARGO_PROFILE_DEV_DEBUG=false CARGO_PROFILE_TEST_DEBUG=false PROPTEST_CASES=32 \
  cargo test --locked --target "$gateway" -p vigil-agent --lib -- --skip source::serial:: \
    --skip source::gps::tests::fixes_arrive_over_a_pseudo_terminal

step "Debian packages (arm64, amd64)"
# Both carry the gateway's build of vigil (its features are in cli/Cargo.toml's deb metadata
# too), and the completions and man pages of its CLI definition: only the commands it has.
cargo build --release --locked -p vigil "${gateway_features[@]}"
deploy/debian/generate.sh target/release/vigil target/generated
cargo deb --locked -p vigil --target "$gateway" --no-build --no-strip
cargo deb --locked -p vigil --no-build --no-strip
deploy/check-deb.sh target/debian/vigil_*_arm64.deb
deploy/check-deb.sh target/debian/vigil_*_amd64.deb

# The provisioning scripts run in the system tests (tests/system/provision.rs).
step "deploy: systemd-analyze security, shellcheck, cfn-lint"
# The "OK" band or better: systemd-analyze's overall exposure below 5.0 (threshold 0-100).
systemd-analyze security --offline=true --threshold=49 --no-pager deploy/vigil.service | tail -1
shellcheck test.sh .ci/run tests/outage-suite.sh deploy/aws/*.sh deploy/debian/postinst deploy/debian/*.sh deploy/check-deb.sh
"$CFN_LINT" deploy/aws/*.yaml

report_times
