"""A fleet's own recorded drives, as train.py --data reads them: the 1 Hz CSVs that
`lab/src/dataset.rs` defines (`timestamp` in Unix seconds, then VSS names, an empty cell a
gap; one file per drive or vehicle), checked before anything is trained on them.

Owns reading a folder, the figures train.py writes into the card about the data it saw
(files, hours, time span, each signal's resolution, gaps), and the refusals: data that
cannot support a model is refused with the file or signal and the figure, never trained on.
It never imputes: a gap stays NaN and the windows around it are left out, as in the agent.
"""

import csv
import math
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

ENGINE_SPEED = "Vehicle.Powertrain.CombustionEngine.Speed"
# Never judged (ARCHITECTURE.md: position says where, and is never judged).
POSITION = {"Vehicle.CurrentLocation.Latitude", "Vehicle.CurrentLocation.Longitude"}
# Rows further apart than this start a new segment: an engine-off night inside one
# vehicle's file is not a gap of the sensors, and no window spans it.
MAX_ROW_GAP_S = 60
# A signal missing from more than this share of its file's ticks is refused: the agent
# masks the model on every gap and the dropout rule raises on them, so a signal missing
# more often than not is a bus or DBC problem to fix before its normal can be learnt.
MAX_GAP_SHARE = 0.5


class Refused(Exception):
    """Data that cannot support a model; each line names a file or signal and a figure."""

    def __init__(self, reasons):
        super().__init__("\n".join(reasons))
        self.reasons = reasons


class Run:
    """One segment of a file: every signal on a 1 Hz grid (NaN for a gap). `file` names the
    part (a half of a file held out in two); `source` is the file it came from."""

    def __init__(self, file, start, columns, source=None):
        self.file = file
        self.start = start
        self.columns = columns
        self.source = source or file

    @property
    def ticks(self):
        return len(next(iter(self.columns.values())))


def read_csv(path):
    """The runs of one CSV, split where rows are more than MAX_ROW_GAP_S apart. Raises
    Refused naming the file and line for anything that is not the 1 Hz CSV."""
    name = path.name
    with open(path, newline="") as f:
        rows = csv.reader(f)
        header = next(rows, [])
        if not header or header[0].strip() != "timestamp":
            raise Refused([(f"{name}: line 1 is {','.join(header)[:80]!r}; expected `timestamp` "
                           "(Unix seconds) then VSS names (lab/src/dataset.rs)")])
        names = [h.strip() for h in header[1:]]
        if len(set(names)) != len(names):
            raise Refused([f"{name}: a column name appears twice in the header"])
        stamps, values = [], []
        for line, row in enumerate(rows, start=2):
            if not row or not "".join(row).strip():
                continue
            try:
                stamps.append(float(row[0]))
                values.append([float(c) if c.strip() else math.nan for c in row[1:1 + len(names)]]
                              + [math.nan] * (len(names) + 1 - len(row)))
            except ValueError:
                raise Refused([f"{name}: line {line}: a cell is not a number ({','.join(row)[:80]!r})"]) \
                    from None
    if not stamps:
        raise Refused([f"{name}: no rows under the header"])
    t = np.asarray(stamps)
    v = np.asarray(values, np.float64).reshape(len(stamps), len(names))
    step = np.diff(t)
    if (step <= 0).any():
        line = int(np.flatnonzero(step <= 0)[0]) + 3
        raise Refused([f"{name}: line {line}: the timestamp does not increase"])
    offsets = t - t[0]
    off_grid = np.abs(offsets - np.round(offsets)) > 0.01
    if off_grid.any():
        line = int(np.flatnonzero(off_grid)[0]) + 2
        raise Refused([(f"{name}: line {line}: timestamp {t[line - 2]} is not on the 1 Hz grid of the "
                       f"first row ({t[0]}); resample with `vigil dataset` first")])
    breaks = np.flatnonzero(step > MAX_ROW_GAP_S) + 1
    runs = []
    for lo, hi in zip(np.r_[0, breaks], np.r_[breaks, len(t)]):
        idx = np.round(t[lo:hi] - t[lo]).astype(int)
        cols = {}
        for j, n in enumerate(names):
            col = np.full(idx[-1] + 1, np.nan)
            col[idx] = v[lo:hi, j]
            cols[n] = col
        runs.append(Run(name, float(t[lo]), cols))
    return runs


def read_folder(folder):
    """Every run of every `*.csv` in `folder`, files in name order."""
    folder = Path(folder)
    files = sorted(folder.glob("*.csv"))
    if not files:
        raise Refused([(f"{folder}: no *.csv file (one 1 Hz CSV per drive or vehicle, "
                       "`timestamp` then VSS names)")])
    runs, reasons = [], []
    for path in files:
        try:
            runs += read_csv(path)
        except Refused as e:
            reasons += e.reasons
    if reasons:
        raise Refused(reasons)
    return runs


def split(runs):
    """Training and held-out calibration runs: every second file (in name order) is held
    out, so calibration is on other vehicles, as for the simulated fleet; a single file is
    cut in two halves in time."""
    files = sorted({r.file for r in runs})
    if len(files) >= 2:
        held = set(files[1::2])
        return [r for r in runs if r.file not in held], [r for r in runs if r.file in held]
    train, calib = [], []
    for r in runs:
        half = r.ticks // 2
        train.append(Run(r.file + " (first half)", r.start, {n: c[:half] for n, c in r.columns.items()},
                         r.source))
        calib.append(Run(r.file + " (second half)", r.start + half,
                         {n: c[half:] for n, c in r.columns.items()}, r.source))
    return train, calib


def columns(runs):
    """Every column name in the data, in the order first seen."""
    seen = {}
    for r in runs:
        for n in r.columns:
            seen.setdefault(n, None)
    return list(seen)


def resolution(runs, signal):
    """The smallest step between two consecutive readings of `signal`: a sensor's value
    on the bus moves by whole steps of its resolution. Rounded to 6 significant figures so
    a CSV's decimal digits (72.8125 - 72.78125) do not give a float's noise."""
    steps = np.concatenate([np.abs(np.diff(r.columns[signal])) for r in runs if signal in r.columns] or [[]])
    steps = steps[np.isfinite(steps) & (steps > 0)]
    if not len(steps):
        return None
    return float(f"{steps.min():.6g}")


def hours(runs):
    return sum(r.ticks for r in runs) / 3600.0


def whole_windows(col, window):
    """How many windows of `window` ticks ending in this column have no gap."""
    ok = np.isfinite(col).astype(np.int64)
    if len(ok) < window:
        return 0
    sums = np.convolve(ok, np.ones(window, np.int64), mode="valid")
    return int((sums == window).sum())


def longest_gap(col):
    """The longest run of NaN ticks, in ticks."""
    gap = np.isnan(col)
    if not gap.any():
        return 0
    edges = np.diff(np.r_[0, gap.astype(np.int8), 0])
    return int((np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1)).max())


def signal_figures(runs, signal, window):
    """What the data holds of one signal: readings, ticks of the files that carry it, whole
    windows, the worst file's gap share, the longest gap, its range and its resolution."""
    carrying = [r for r in runs if signal in r.columns]
    per_file = {}
    for r in carrying:
        f = per_file.setdefault(r.file, [0, 0])
        f[0] += int(np.isnan(r.columns[signal]).sum())
        f[1] += r.ticks
    worst_file, (gaps, ticks) = max(per_file.items(), key=lambda kv: kv[1][0] / kv[1][1]) \
        if per_file else ("", (0, 1))
    values = np.concatenate([r.columns[signal] for r in carrying]) if carrying else np.array([])
    values = values[np.isfinite(values)]
    return {
        "readings": len(values),
        "ticks": int(sum(r.ticks for r in carrying)),
        "window_hours": round(sum(whole_windows(r.columns[signal], window) for r in carrying) / 3600.0, 3),
        "worst_gap_share": round(gaps / ticks, 4),
        "worst_gap_file": worst_file,
        "longest_gap_s": max((longest_gap(r.columns[signal]) for r in carrying), default=0),
        "min": float(values.min()) if len(values) else None,
        "max": float(values.max()) if len(values) else None,
        "resolution": resolution(runs, signal),
    }


def check(train_runs, calib_runs, signals, window, min_train_hours, min_calibration_hours):
    """Raises Refused with every reason the data cannot support a model of `signals`:
    a signal it lacks, a constant one, one missing from more than MAX_GAP_SHARE of a file,
    too few hours of whole windows to train each signal, too few hours to calibrate."""
    reasons = []
    every = train_runs + calib_runs
    files = sorted({r.source for r in every})
    for signal in signals:
        f = signal_figures(every, signal, window)
        if signal not in columns(every):
            reasons.append(f"{signal}: not a column of the data (columns: {', '.join(columns(every))})")
            continue
        if f["readings"] == 0:
            reasons.append(f"{signal}: no reading in any file (its column is empty): leave it out with "
                           "--signals, or check its decoding")
            continue
        if f["min"] == f["max"]:
            reasons.append(f"{signal}: constant, {f['min']:g} in all {f['readings']} readings of "
                           f"{len(files)} file(s); a model of a constant learns nothing: leave it out "
                           "with --signals, or check its decoding")
            continue
        if f["worst_gap_share"] > MAX_GAP_SHARE:
            reasons.append(f"{signal}: missing in {f['worst_gap_share']:.0%} of the ticks of "
                           f"{f['worst_gap_file']} (at most {MAX_GAP_SHARE:.0%}; longest gap "
                           f"{f['longest_gap_s']} s): fix the bus or the DBC mapping, or leave the file out")
            continue
        t = signal_figures(train_runs, signal, window)
        if t["window_hours"] < min_train_hours:
            reasons.append(f"{signal}: {t['window_hours']:.3f} h of whole {window} s windows to train "
                           f"on; needs at least {min_train_hours:.2f} h: record more drives")
    total = hours(calib_runs)
    if total < min_calibration_hours:
        reasons.append(f"calibration: {total:.3f} vehicle-hours; needs at least "
                       f"{min_calibration_hours:g} h (one vehicle-day) to set thresholds against a "
                       "budget per vehicle-day: record more drives, or pass --calibration DIR")
    if reasons:
        head = (f"{hours(every):.3f} vehicle-hours in {len(files)} file(s) "
                f"({hours(train_runs):.3f} h to train, {total:.3f} h to calibrate)")
        raise Refused([head] + reasons)


def iso(seconds):
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def describe(runs):
    """The card's account of a set of runs: files (name, hours, first and last time), the
    hours and the time span."""
    files = {}
    for r in runs:
        f = files.setdefault(r.file, {"file": r.file, "hours": 0.0, "start": r.start, "end": r.start})
        f["hours"] += r.ticks / 3600.0
        f["start"] = min(f["start"], r.start)
        f["end"] = max(f["end"], r.start + r.ticks - 1)
    out = [{"file": f["file"], "hours": round(f["hours"], 3), "start": iso(f["start"]), "end": iso(f["end"])}
           for f in files.values()]
    return {
        "files": out,
        "hours": round(hours(runs), 3),
        "span": {"start": iso(min(r.start for r in runs)),
                 "end": iso(max(r.start + r.ticks - 1 for r in runs))},
    }
