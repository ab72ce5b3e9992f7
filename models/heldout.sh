#!/usr/bin/env bash
# The fleet's own loop on a simulated fleet split by vehicle, for the figures in
# models/README.md ("Held out"): the built-in model against one trained by
# `train.py --data` on the training part, both judged by `vigil eval --data --labels` on
# the held-out part, which neither saw; the training's wall time per vehicle-hour; the job
# document's size for the built-in model and the trained one.
#
#   models/heldout.sh [OUT_DIR]     # default target/heldout
#
# The sizes are variables: TRAIN_VEHICLES trucks of TRAIN_HOURS each to train on (every
# second one calibrates; train.py wants 10 h of calibration), NORMAL_DRIVES normal hours and
# DRIVES_PER_FAULT drives of each fault row held out. PYTHON is the Python with
# models/requirements.txt (default: test.sh's venv, else python3). A file that exists is
# kept, except the trained model and the eval's outputs: delete OUT_DIR to simulate again.
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=${1:-target/heldout}
TRAIN_VEHICLES=${TRAIN_VEHICLES:-16}
TRAIN_HOURS=${TRAIN_HOURS:-2}
NORMAL_DRIVES=${NORMAL_DRIVES:-20}
DRIVES_PER_FAULT=${DRIVES_PER_FAULT:-2}
PYTHON=${PYTHON:-$( [ -x target/tools/py-venv/bin/python3 ] && echo target/tools/py-venv/bin/python3 || echo python3 )}
VIGIL=target/tools/vigil

echo "== building vigil and the heldout_fleet example (--profile tools)"
# One command for both: built apart, their dependencies' features differ and both rebuild.
cargo build --locked --profile tools -p vigil --bin vigil -p vigil-lab --example heldout_fleet

if [ ! -f "$OUT/logs/labels.csv" ]; then
  echo "== simulating: $TRAIN_VEHICLES x $TRAIN_HOURS h to train; $NORMAL_DRIVES normal h and $DRIVES_PER_FAULT drives a fault held out"
  rm -rf "$OUT/logs"
  target/tools/examples/heldout_fleet "$OUT/logs.part" "$TRAIN_VEHICLES" "$TRAIN_HOURS" \
    "$NORMAL_DRIVES" "$DRIVES_PER_FAULT"
  mv "$OUT/logs.part" "$OUT/logs"
fi
for part in train heldout; do
  if [ ! -f "$OUT/$part/dataset-summary.json" ]; then
    echo "== vigil dataset: $part"
    rm -rf "${OUT:?}/$part"
    "$VIGIL" dataset --input "$OUT/logs/$part"/*.log --out "$OUT/$part"
  fi
done

echo "== train.py --data on the training part (default signal set)"
rm -rf "$OUT/trained"
start=$(date +%s.%N)
"$PYTHON" models/train.py --data "$OUT/train" --out "$OUT/trained" --version 1.0.0-heldout \
  | tee "$OUT/train.log"
end=$(date +%s.%N)
hours=$("$PYTHON" -c "import json,sys; print(sum(o['rows'] for o in json.load(open(sys.argv[1]))['outputs']) / 3600)" \
  "$OUT/train/dataset-summary.json")
"$PYTHON" -c "import sys; s = float(sys.argv[2]) - float(sys.argv[1]); h = float(sys.argv[3]); print(f'train.py --data: {s:.0f} s wall on {h:.2f} vehicle-hours of CSV: {s / h:.2f} s per vehicle-hour')" \
  "$start" "$end" "$hours" | tee -a "$OUT/train.log"

for model in builtin trained; do
  card=models/forecaster.card.json
  [ "$model" = trained ] && card="$OUT/trained/forecaster.card.json"
  echo "== vigil eval --data on the held-out part: $model ($card)"
  "$VIGIL" eval --data "$OUT/heldout" --labels "$OUT/logs/labels.csv" --model "$card" \
    --out "$OUT/eval-$model.json" | tee "$OUT/eval-$model.md"
  echo "== vigil model job: $model"
  "$VIGIL" model job --card "$card" --out "$OUT/job-$model.json"
done

echo "== held out: the built-in model against the trained one (stage = rules, limits and model)"
"$PYTHON" - "$OUT/eval-builtin.json" "$OUT/eval-trained.json" <<'PY'
import json, math, sys

def poisson_upper(n):
    """One-sided 95 % upper bound on a Poisson mean with n events (as vigil eval)."""
    lo, hi = float(n), n + 10.0 + 10.0 * math.sqrt(n + 1)
    def cdf(mu):
        term = total = math.exp(-mu)
        for k in range(1, n + 1):
            term *= mu / k
            total += term
        return total
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if cdf(mid) > 0.05 else (lo, mid)
    return hi

reports = [json.load(open(p)) for p in sys.argv[1:]]
def cell(report, fault, detector):
    c = dict(dict(report["faults"])[fault])[detector]
    delays = c["delays_s"]
    median = f"{delays[len(delays) // 2]:.0f} s" if delays else "-"
    return f"{c['detected']}/{c['visible']}, {median}"
print("| fault | built-in stage | built-in model | trained stage | trained model |")
print("|---|---|---|---|---|")
for fault, _ in reports[0]["faults"]:
    print(f"| {fault} | " + " | ".join(cell(r, fault, d) for r in reports for d in ("stage", "model")) + " |")
hours = reports[0]["clean_hours"]
row = []
for r in reports:
    for d in ("stage", "model"):
        n = dict(r["false_alarms"])[d]
        row.append(f"{n} ({100 * n / hours:.2f} per 100 h, at most {100 * poisson_upper(n) / hours:.2f})")
print(f"| false alarms in {hours:.1f} clean h | " + " | ".join(row) + " |")
PY
