#!/usr/bin/env bash
# The crash and outage suite's full profile (issue 19; tests/system/outage.rs), and its
# figures as a table: kills, records delivered, lost inside and outside the flush window,
# duplicates, the busiest second at the broker (publishes and bytes), VmHWM per phase, the
# store's size against its cap, how long a frozen broker took to notice.
#
#   tests/outage-suite.sh                 build the release binary, run, print the table
#   VIGIL_OUTAGE_BIN=path tests/outage-suite.sh   run that binary instead (no build)
#   VIGIL_OUTAGE_SEED=n                   replay the kill points of an earlier run
#
# The agent runs as its release build (its memory is the one the 20 MB budget is for); the
# tests themselves are the debug build, one at a time so that the figures are not each
# other's. Mosquitto must be installed (test.sh installs it). Takes about 13 minutes after
# the build (8 minutes on 2 cores). CI runs the short profile as part of `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ -z "${VIGIL_OUTAGE_BIN:-}" ]]; then
  echo "outage-suite: building the release binary" >&2
  cargo build --release --locked -p vigil --bin vigil
  VIGIL_OUTAGE_BIN="$PWD/target/release/vigil"
fi
[[ -x "$VIGIL_OUTAGE_BIN" ]] || { echo "outage-suite: $VIGIL_OUTAGE_BIN is not an executable" >&2; exit 2; }

figures=$(mktemp)
trap 'rm -f "$figures"' EXIT
status=0
VIGIL_OUTAGE_FULL=1 VIGIL_OUTAGE_BIN="$VIGIL_OUTAGE_BIN" VIGIL_OUTAGE_FIGURES="$figures" \
  cargo test --locked -p vigil --test system outage -- --test-threads=1 || status=$?

echo
echo "Crash and outage suite, full profile ($("$VIGIL_OUTAGE_BIN" --version), $(date -u +%Y-%m-%dT%H:%MZ))"
awk -F ' [|] ' '
  { phase = $2; name = $3; value = $4
    if (phase != last) { printf "\n%s\n", phase; last = phase }
    printf "  %-44s %s\n", name, value }' "$figures"
if [[ $status -ne 0 ]]; then
  echo
  echo "outage-suite: a hard property failed (exit $status); see the test output above" >&2
fi
exit "$status"
