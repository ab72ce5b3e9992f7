#!/usr/bin/env python3
"""Trains Vigil's forecaster, calibrates its thresholds and writes the model and its card.

    python3 models/train.py            # simulates the data if models/data is missing
    python3 models/train.py --data DIR --out OUTDIR [--signals NAME,...] [--calibration DIR]

With --data it trains on a fleet's own 1 Hz CSVs (`timestamp`, then VSS names; one file per
drive or vehicle) instead of the simulated fleet, on the signals given or every column but
the engine speed and the position: fleet_data.py reads and checks them and refuses data that
cannot support a model (too few hours, a constant signal, a signal missing from most of a
file), exit code 2. Each signal's resolution is the smallest step the data shows; the
engine speed and the companions (the oil for the coolant) are used when the data has them.
Thresholds are calibrated on --calibration DIR, or on every second file held out, to a
false-alarm budget per vehicle-day (--budget-per-vehicle-day), and the 95 % upper bound the
calibration hours reach is reported and written into the card. OUTDIR gets forecaster.onnx,
forecaster.card.json (what the agent loads) and MODEL_CARD.md. The steps below are the same.

Steps, all seeded (the same inputs give the same bytes):
1. Data: `cargo run --profile tools -p vigil-lab --example training_data -- models/data` writes
   1 Hz CSVs of normal simulated drives, one per seed: training seeds and calibration seeds
   are different vehicles, trucks and some with a car's engine speeds or on cold days (see
   lab/src/dataset.rs).
2. Features: for each watched signal and tick k with a full 10 s window, the same row the
   agent builds (agent/src/detect/model.rs, ModelCard::features): the window less its last
   value over the signal's scale, the last value's level, the engine speed over the window
   (zeros for a tank: WITHOUT_CONTEXT), a one-hot of the signal's kind, and the companion's window as levels (zeros for a
   signal without one). Targets: the next tick's change over the scale (the forecast), and
   for a signal with a companion its own level now (the consistency check).
3. Model: two MLPs trained apart by Gaussian negative log-likelihood (the spread adds the
   bus resolution in quadrature) with Adam, in numpy, then joined block-wise into one
   Gemm-Relu-Gemm graph: the forecaster (the first 25 inputs -> 32 -> change mean, log
   spread) and the consistency net (engine speed, kind and companion -> 16 -> level mean,
   log spread). The consistency net never sees the signal's own window, so it cannot copy
   it.
4. Calibration: the agent's statistics replayed over the calibration drives; each
   threshold is the largest value normal driving reached (held for the debounce), times a
   margin, which is how a budget of 1 false alarm per 100 vehicle-hours is met on finite
   data.
5. Output: models/forecaster.onnx (Gemm, Relu, Gemm; opset 13), models/forecaster.card.json
   with golden input/output vectors, models/MODEL_CARD.md.

Needs numpy and onnx (models/requirements.txt). Runs in about two minutes on 2 cores once
the data exists.
"""

import argparse
import hashlib
import json
import math
import subprocess
import sys
import time
from pathlib import Path

import fleet_data  # beside this file
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
SEED = 20261122
WINDOW = 10
HIDDEN = 32
EPOCHS = 12
BATCH = 1024
LR = 2e-3
MARGIN = 1.25
# The model abstains on a row outside the training rows' range of any of its input columns,
# widened by this share of the range on each side (per signal kind).
ENVELOPE_MARGIN = 0.25
DEBOUNCE_TICKS = 3
CUSUM_K = 0.5
CUSUM_CLIP = 3.0
OUTLIER = 6.0
OUTLIER_WINDOW = 600
BUDGET_PER_HOUR = 0.01

CONTEXT = "Vehicle.Powertrain.CombustionEngine.Speed"
# Signals with a consistency check, and the companion whose window tells what their level
# should be: a 1-degC coolant that drifts or sticks still has to agree with the oil.
COMPANIONS = {
    "Vehicle.Powertrain.CombustionEngine.EngineCoolant.Temperature":
        "Vehicle.Powertrain.CombustionEngine.EngineOil.Temperature",
}
LEVEL_HIDDEN = 16
LEVEL_TAU = 120.0
LEVEL_CLIP = 6.0
# (signal, kind, bus resolution)
KINDS = ["coolant", "oil", "fuel", "tank"]
# Kinds whose rows carry no engine speed (zeros, as for a gap): a cargo tank's temperature
# follows the air and the cargo, not the engine, so the model judges a tank the same on a
# truck's engine, a car's, or none sending (card: the signal's "context": false).
WITHOUT_CONTEXT = {KINDS.index("tank")}
WATCHED = [
    ("Vehicle.Powertrain.CombustionEngine.EngineCoolant.Temperature", 0, 1.0),
    ("Vehicle.Powertrain.CombustionEngine.EngineOil.Temperature", 1, 0.03125),
    ("Vehicle.Powertrain.FuelSystem.Temperature", 2, 1.0),
] + [(f"Vehicle.Cargo.Tank.Compartment{n}.Temperature", 3, 0.001) for n in range(1, 9)]


def ensure_data():
    if any(DATA.glob("train-*.csv")):
        return
    cmd = ["cargo", "run", "--profile", "tools", "-p", "vigil-lab", "--example", "training_data",
           "--", str(DATA)]
    print("simulating:", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, cwd=HERE.parent)


def load(path):
    with open(path) as f:
        header = f.readline().strip().split(",")
    data = np.genfromtxt(path, delimiter=",", skip_header=1, dtype=np.float64)
    return {name: data[:, i] for i, name in enumerate(header)}


def runs(prefix):
    files = sorted(DATA.glob(f"{prefix}-*.csv"), key=lambda p: int(p.stem.split("-")[1]))
    return [(p.name, load(p)) for p in files]


def windows(series):
    """Every (k, window ending at k) with no gap: shape (n, WINDOW)."""
    idx = np.arange(WINDOW - 1, len(series))
    w = np.stack([series[idx - WINDOW + 1 + j] for j in range(WINDOW)], axis=1)
    return idx, w


class Layout:
    """Where each block lies in the input row, for a model of `kinds` signal kinds: the
    window, the level, the engine speed, the one-hot kind, the companion (the agent's
    `ModelCard::features` and `ModelCard::conditions`)."""

    def __init__(self, kinds):
        self.kinds = kinds
        self.forecast_inputs = 2 * WINDOW + 1 + kinds
        self.inputs = self.forecast_inputs + WINDOW
        # The consistency net's inputs: engine speed, kind and companion columns of the row.
        self.level_columns = np.r_[WINDOW + 1:self.forecast_inputs,
                                   self.forecast_inputs:self.forecast_inputs + WINDOW]
        # The columns each net reads: contiguous, and overlapping in the engine speed and
        # the kind.
        self.forecast_group = np.arange(0, self.forecast_inputs)
        self.level_group = np.arange(WINDOW + 1, self.forecast_inputs + WINDOW)
        # The columns that say whether the model knows the conditions, checked against the
        # envelope: for the forecaster the signal's level, the engine speed and the kind,
        # never the window's own changes (a tank heating faster than any training window is
        # what it must judge, not a reason to stand aside); the consistency check reads no
        # value of its own signal at all.
        self.forecast_conditions = np.arange(WINDOW, self.forecast_inputs)
        self.level_conditions = self.level_group


# The simulated truck's layout (four kinds), which the committed model and parity.py use.
DEFAULT = Layout(len(KINDS))
FORECAST_INPUTS = DEFAULT.forecast_inputs
LEVEL_COLUMNS = DEFAULT.level_columns


def features(w, ctx, comp, spec, context_norm, layout=DEFAULT):
    """The agent's input rows for windows `w` (n, 10), context windows `ctx` (n, 10) and
    companion windows `comp` (n, 10; None for a signal without a companion)."""
    kind = spec["kind"]
    last = w[:, -1:]
    rel = (w - last) / spec["scale"]
    level = (last - spec["center"]) / spec["level_scale"]
    c = np.where(np.isnan(ctx), 0.0, (ctx - context_norm["center"]) / context_norm["scale"])
    if not spec.get("context", True):
        c = np.zeros_like(c)
    onehot = np.zeros((len(w), layout.kinds))
    onehot[:, kind] = 1.0
    if comp is None or "level" not in spec:
        k = np.zeros((len(w), WINDOW))
    else:
        lv = spec["level"]
        k = np.where(np.isnan(comp), 0.0, (comp - lv["companion_center"]) / lv["companion_scale"])
    return np.concatenate([rel, level, c, onehot, k], axis=1).astype(np.float32)


def signal_windows(run, spec):
    """(tick index, own window, context window, companion window or None) with no gap in
    the own window."""
    s = run[spec["signal"]]
    idx, w = windows(s)
    # Without an engine speed in the data every signal's rows hold zeros there ("context":
    # false), so its window is all gap and never read.
    _, ctx = windows(run[CONTEXT] if CONTEXT in run else np.full(len(s), np.nan))
    comp = None
    if "level" in spec and spec["level"]["companion"] in run:
        _, comp = windows(run[spec["level"]["companion"]])
    ok = ~np.isnan(w).any(axis=1)
    return idx[ok], w[ok], ctx[ok], None if comp is None else comp[ok]


def whole(windows_or_none):
    """Per row: the window has no gap (False for every row without a window at all)."""
    return ~np.isnan(windows_or_none).any(axis=1)


def context_whole(ctx, spec):
    """Per row: the engine speed the row needs is whole (always, for a kind without it)."""
    return whole(ctx) if spec.get("context", True) else np.ones(len(ctx), bool)


def samples(run_list, specs, context_norm, with_kinds=False, layout=DEFAULT):
    """The forecaster's training rows: windows whose engine speed is whole (a gap masks the
    model, never imputed) and whose next value exists."""
    xs, ys, floors, kinds = [], [], [], []
    for _, run in run_list:
        for spec in specs:
            if spec["signal"] not in run:
                continue
            s = run[spec["signal"]]
            idx, w, ctx, comp = signal_windows(run, spec)
            nxt = np.append(s[1:], np.nan)[idx]
            ok = ~np.isnan(nxt) & context_whole(ctx, spec)
            x = features(w[ok], ctx[ok], None if comp is None else comp[ok], spec, context_norm, layout)
            y = ((nxt[ok] - w[ok, -1]) / spec["scale"]).astype(np.float32)
            xs.append(x)
            ys.append(y)
            floors.append(np.full(len(y), spec["sigma_floor"] / spec["scale"], np.float32))
            kinds.append(np.full(len(y), spec["kind"]))
    out = np.concatenate(xs), np.concatenate(ys), np.concatenate(floors)
    return (*out, np.concatenate(kinds)) if with_kinds else out


def level_samples(run_list, specs, context_norm, with_kinds=False, layout=DEFAULT):
    """The consistency net's rows (its columns only) and targets: the level now, on windows
    whose engine speed and companion are whole."""
    xs, ys, floors, kinds = [], [], [], []
    for _, run in run_list:
        for spec in specs:
            if "level" not in spec or spec["signal"] not in run:
                continue
            _idx, w, ctx, comp = signal_windows(run, spec)
            if comp is None:
                continue
            ok = whole(ctx) & whole(comp)
            x = features(w[ok], ctx[ok], comp[ok], spec, context_norm, layout)[:, layout.level_columns]
            y = ((w[ok, -1] - spec["center"]) / spec["level_scale"]).astype(np.float32)
            xs.append(x)
            ys.append(y)
            floors.append(np.full(len(y), spec["sigma_floor"] / spec["level_scale"], np.float32))
            kinds.append(np.full(len(y), spec["kind"]))
    if not xs:
        # No signal has a companion in this data: no consistency rows.
        n = len(layout.level_columns)
        xs, ys, floors, kinds = [np.zeros((0, n), np.float32)], [np.zeros(0, np.float32)], \
            [np.zeros(0, np.float32)], [np.zeros(0, int)]
    out = np.concatenate(xs), np.concatenate(ys), np.concatenate(floors)
    return (*out, np.concatenate(kinds)) if with_kinds else out


FORECAST_GROUP = DEFAULT.forecast_group
LEVEL_GROUP = DEFAULT.level_group
FORECAST_CONDITIONS = DEFAULT.forecast_conditions
LEVEL_CONDITIONS = DEFAULT.level_conditions


def envelope(x, x_kinds, xl, xl_kinds, n_in, layout=DEFAULT):
    """Per kind, every input column's low and high over its training rows (the forecaster's
    columns from its rows, the companion's from the consistency rows, the engine speed and
    the kind from both), widened by ENVELOPE_MARGIN of the range, as float32 values (the
    agent compares its float32 row with them exactly)."""
    shared = np.arange(WINDOW + 1, layout.forecast_inputs)
    companion = np.arange(layout.forecast_inputs, layout.forecast_inputs + WINDOW)
    out = []
    for kind in range(layout.kinds):
        low = np.zeros(n_in)
        high = np.zeros(n_in)
        rows = x[x_kinds == kind][:, layout.forecast_group]
        low[layout.forecast_group] = rows.min(axis=0)
        high[layout.forecast_group] = rows.max(axis=0)
        level_rows = xl[xl_kinds == kind]
        if len(level_rows):
            lo, hi = level_rows.min(axis=0), level_rows.max(axis=0)
            low[shared] = np.minimum(low[shared], lo[:len(shared)])
            high[shared] = np.maximum(high[shared], hi[:len(shared)])
            low[companion] = lo[len(shared):]
            high[companion] = hi[len(shared):]
        span = high - low
        low = (low - ENVELOPE_MARGIN * span).astype(np.float32)
        high = (high + ENVELOPE_MARGIN * span).astype(np.float32)
        out.append({"low": [float(v) for v in low], "high": [float(v) for v in high]})
    return out


def within(env, kind, x, group):
    """Per row of `x` (float32 rows), whether the columns of `group` lie in the envelope of
    `kind` (ModelCard::within_envelope in the agent)."""
    if env is None:
        return np.ones(len(x), bool)
    low = np.asarray(env[kind]["low"], np.float32)[group]
    high = np.asarray(env[kind]["high"], np.float32)[group]
    cols = x[:, group]
    return ((low <= cols) & (cols <= high)).all(axis=1)


def normalisation(run_list, watched=WATCHED, without_context=WITHOUT_CONTEXT, context=CONTEXT):
    """Each watched (signal, kind, resolution)'s normalisation, pooled over its kind, and the
    engine speed's; `context` None when the data has no engine speed (every signal's rows
    then hold zeros there, and the card's context is a placeholder nothing reads)."""
    specs = []
    for signal, kind, resolution in watched:
        series = [run[signal] for _, run in run_list if signal in run]
        kind_series = [run[s] for _, run in run_list for s, k, _ in watched if k == kind and s in run]
        if not kind_series:
            continue
        deltas = np.concatenate([np.diff(s) for s in kind_series])
        levels = np.concatenate(kind_series)
        deltas, levels = deltas[~np.isnan(deltas)], levels[~np.isnan(levels)]
        specs.append({
            "signal": signal,
            "kind": kind,
            "scale": float(max(np.std(deltas), resolution)),
            "center": float(np.mean(levels)),
            "level_scale": float(max(np.std(levels), 1.0)),
            "sigma_floor": float(resolution / np.sqrt(12.0)),
            "context": context is not None and kind not in without_context,
        })
        _ = series
    by_signal = {s["signal"]: s for s in specs}
    for signal, companion in COMPANIONS.items():
        if signal in by_signal and companion in by_signal:
            by_signal[signal]["level"] = {
                "companion": companion,
                "companion_center": by_signal[companion]["center"],
                "companion_scale": by_signal[companion]["level_scale"],
            }
    if context is None:
        return specs, {"signal": CONTEXT, "center": 0.0, "scale": 1.0}
    ctx = np.concatenate([run[context] for _, run in run_list if context in run])
    ctx = ctx[~np.isnan(ctx)]
    context_norm = {"signal": context, "center": float(np.mean(ctx)), "scale": float(np.std(ctx))}
    return specs, context_norm


class Mlp:
    def __init__(self, rng, n_in, hidden):
        self.w1 = (rng.standard_normal((n_in, hidden)) * np.sqrt(2.0 / n_in)).astype(np.float32)
        self.b1 = np.zeros(hidden, np.float32)
        self.w2 = (rng.standard_normal((hidden, 2)) * np.sqrt(1.0 / hidden)).astype(np.float32)
        self.b2 = np.zeros(2, np.float32)

    def params(self):
        return [self.w1, self.b1, self.w2, self.b2]

    def forward(self, x):
        h = np.maximum(x @ self.w1 + self.b1, 0.0)
        return h, h @ self.w2 + self.b2


def nll_grad(model, x, y, floor):
    h, out = model.forward(x)
    mu, ls = out[:, 0], np.clip(out[:, 1], -10, 10)
    e2 = np.exp(2 * ls)
    v = e2 + floor * floor
    err = y - mu
    loss = np.mean(0.5 * err * err / v + 0.5 * np.log(v))
    n = len(y)
    dout = np.stack([-err / v, e2 * (1.0 / v - err * err / (v * v))], axis=1) / n
    gw2 = h.T @ dout
    gb2 = dout.sum(0)
    dh = (dout @ model.w2.T) * (h > 0)
    gw1 = x.T @ dh
    gb1 = dh.sum(0)
    return loss, [gw1, gb1, gw2, gb2]


def train(x, y, floor, rng, hidden, epochs=EPOCHS):
    model = Mlp(rng, x.shape[1], hidden)
    m = [np.zeros_like(p) for p in model.params()]
    v = [np.zeros_like(p) for p in model.params()]
    step = 0
    for epoch in range(epochs):
        order = rng.permutation(len(y))
        total = 0.0
        lr = LR * (0.5 ** (epoch // 4))
        for start in range(0, len(y), BATCH):
            b = order[start:start + BATCH]
            loss, grads = nll_grad(model, x[b], y[b], floor[b])
            total += loss * len(b)
            step += 1
            for p, g, mi, vi in zip(model.params(), grads, m, v):
                mi *= 0.9
                mi += 0.1 * g
                vi *= 0.999
                vi += 0.001 * g * g
                mhat = mi / (1 - 0.9 ** step)
                vhat = vi / (1 - 0.999 ** step)
                p -= (lr * mhat / (np.sqrt(vhat) + 1e-8)).astype(np.float32)
        print(f"epoch {epoch + 1}/{epochs}: nll {total / len(y):.4f}", flush=True)
    return model


def forecast(out, last, spec):
    """The forecast in signal units (mean, sigma) from the model's raw outputs `out` (float64,
    one row per window) and each window's last value (ModelCard::forecast in the agent)."""
    mu, ls = out[:, 0], np.clip(out[:, 1], -10, 10)
    spread = np.exp(ls) * spec["scale"]
    sigma = np.sqrt(spread ** 2 + spec["sigma_floor"] ** 2)
    mean = last + mu * spec["scale"]
    return mean, sigma


def level_forecast(out, spec):
    """The level (mean, sigma) the consistency check says, in signal units, from the model's
    raw outputs (ModelCard::level in the agent)."""
    lmean = spec["center"] + out[:, 2] * spec["level_scale"]
    lspread = np.exp(np.clip(out[:, 3], -10, 10)) * spec["level_scale"]
    lsigma = np.sqrt(lspread ** 2 + spec["sigma_floor"] ** 2)
    return lmean, lsigma


def residuals(s, k, w, comp, out, spec, forecast_ok=None, level_ok=None):
    """The standardised residuals of series `s`, from the raw outputs `out` (float64) on its
    windows `w` ending at ticks `k` (companion windows `comp`, None without): the forecast
    made at k scored at k + 1, and the consistency check at k (all NaN without one), NaN
    where none, as the agent computes them (Residuals::step, Residuals::level_step). Only
    windows where `forecast_ok` (`level_ok`) forecast (check the level): the others are
    masked (a gap in an input) or outside the envelope, where the model abstains."""
    every = np.ones(len(k), bool)
    forecast_ok = every if forecast_ok is None else forecast_ok
    level_ok = every if level_ok is None else level_ok
    r = np.full(len(s), np.nan)
    z = np.full(len(s), np.nan)
    mean, sigma = forecast(out, w[:, -1], spec)
    scored = (k + 1 < len(s)) & forecast_ok
    r[k[scored] + 1] = (s[k[scored] + 1] - mean[scored]) / sigma[scored]
    if "level" in spec and comp is not None:
        lmean, lsigma = level_forecast(out, spec)
        z[k[level_ok]] = ((w[:, -1] - lmean) / lsigma)[level_ok]
    return r, z


def masks(x, ctx, comp, spec, env, layout=DEFAULT):
    """Per window: whether the forecast runs (the engine speed whole, the conditions it
    reads in the envelope) and whether the consistency check does (also the companion
    whole and in the envelope)."""
    ctx_whole = context_whole(ctx, spec)
    comp_whole = np.zeros(len(x), bool) if comp is None else whole(comp)
    forecast_ok = ctx_whole & within(env, spec["kind"], x, layout.forecast_conditions)
    level_ok = ctx_whole & comp_whole & within(env, spec["kind"], x, layout.level_conditions)
    return forecast_ok, level_ok


def residual_streams(joined, run_list, specs, context_norm, env, layout=DEFAULT):
    """Per (run, signal): the standardised residual of the forecast at each tick, and of the
    consistency check (all NaN without one), NaN where none, as the agent computes them
    (masked where an input has a gap, abstaining outside the envelope `env`)."""
    for name, run in run_list:
        for spec in specs:
            if spec["signal"] not in run:
                continue
            s = run[spec["signal"]]
            k, w, ctx, comp = signal_windows(run, spec)
            x = features(w, ctx, comp, spec, context_norm, layout)
            out = joined_forward(joined, x).astype(np.float64)
            forecast_ok, level_ok = masks(x, ctx, comp, spec, env, layout)
            r, z = residuals(s, k, w, comp, out, spec, forecast_ok, level_ok)
            yield name, spec["signal"], r, z


def level_statistic(z):
    """The consistency statistic: an EWMA (time constant LEVEL_TAU ticks) of the clipped
    level residual, held through gaps."""
    e = 0.0
    out = np.zeros(len(z))
    for i, zi in enumerate(z):
        if not np.isnan(zi):
            e += (min(max(zi, -LEVEL_CLIP), LEVEL_CLIP) - e) / LEVEL_TAU
        out[i] = abs(e)
    return out


def held(stat):
    """The statistic held for the debounce: the least of DEBOUNCE_TICKS ticks in a row."""
    if len(stat) < DEBOUNCE_TICKS:
        return np.array([0.0])
    stack = np.stack([stat[i:len(stat) - DEBOUNCE_TICKS + 1 + i] for i in range(DEBOUNCE_TICKS)])
    return np.nan_to_num(stack, nan=0.0).min(axis=0)


def statistics(r):
    """The three statistics the agent keeps per signal, tick by tick."""
    score = np.abs(r)
    pos = neg = 0.0
    cusum = np.zeros(len(r))
    outliers = np.zeros(len(r))
    recent = []
    for i, ri in enumerate(r):
        if not np.isnan(ri):
            c = min(max(ri, -CUSUM_CLIP), CUSUM_CLIP)
            pos = max(0.0, pos + c - CUSUM_K)
            neg = max(0.0, neg - c - CUSUM_K)
            if abs(ri) > OUTLIER:
                recent.append(i)
        while recent and recent[0] <= i - OUTLIER_WINDOW:
            recent.pop(0)
        cusum[i] = max(pos, neg)
        outliers[i] = len(recent)
    return score, cusum, outliers


STATISTICS = ["score", "cusum", "outliers", "level"]


def calibrate(joined, run_list, specs, context_norm, env, layout=DEFAULT, kind_names=KINDS, spare=0):
    """Sets each signal's thresholds from the statistics held on normal drives, per signal
    kind: the (spare + 1)-th highest peak of a stream (the worst, for spare 0) times MARGIN.
    `spare` is how many streams per statistic the false-alarm budget lets cross (see
    `alarms_allowed`). Returns that reference value per kind and statistic, and the hours."""
    kind_of = {s["signal"]: s["kind"] for s in specs}
    peaks = {k: {key: [0.0] for key in STATISTICS} for k in range(layout.kinds)}
    worst = {k: {key: 0.0 for key in STATISTICS} for k in range(layout.kinds)}
    for name, signal, r, z in residual_streams(joined, run_list, specs, context_norm, env, layout):
        w = worst[kind_of[signal]]
        stats = list(statistics(r)) + [level_statistic(z)]
        for key, stat in zip(STATISTICS, stats):
            peak = float(held(stat).max())
            peaks[kind_of[signal]][key].append(peak)
            if peak > w[key]:
                w[key] = peak
                print(f"calibration: {key} {peak:.2f} on {signal} in {name}", flush=True)
    for k, by_statistic in peaks.items():
        for key, values in by_statistic.items():
            worst[k][key] = sorted(values, reverse=True)[min(spare, len(values) - 1)]
    hours = sum(len(next(iter(run.values()))) for _, run in run_list) / 3600.0
    for spec in specs:
        w = worst[spec["kind"]]
        spec["score"] = round(max(w["score"] * MARGIN, 3.0), 3)
        spec["cusum_h"] = round(max(w["cusum"] * MARGIN, 5.0), 3)
        spec["outlier_count"] = int(w["outliers"]) + 2
        if "level" in spec:
            spec["level"]["h"] = round(max(w["level"] * MARGIN, 1.0), 3)
    return {kind_names[k]: v for k, v in worst.items()}, hours


def thresholds_of(spec):
    """The threshold of each statistic of one signal's card entry (None: not judged)."""
    return {"score": spec["score"], "cusum": spec["cusum_h"], "outliers": spec["outlier_count"] - 1,
            "level": spec["level"]["h"] if "level" in spec else None}


def crossings(stat, threshold):
    """How many times the statistic, held for the debounce, goes above `threshold`: the
    alarms it would raise (each counted once however long it stays above)."""
    above = held(stat) > threshold
    return int(above[0]) + int((above[1:] & ~above[:-1]).sum())


def count_alarms(joined, run_list, specs, context_norm, env, layout):
    """The alarms the card's thresholds raise on `run_list`, per (signal, statistic): an
    upper count of what the agent would raise (its incidents merge what fires together)."""
    out = {}
    for _name, signal, r, z in residual_streams(joined, run_list, specs, context_norm, env, layout):
        spec = next(s for s in specs if s["signal"] == signal)
        stats = list(statistics(r)) + [level_statistic(z)]
        for key, stat in zip(STATISTICS, stats):
            th = thresholds_of(spec)[key]
            if th is not None:
                n = crossings(stat, th)
                if n:
                    out[f"{signal} {key}"] = out.get(f"{signal} {key}", 0) + n
    return out


def poisson_upper(n, confidence=0.95):
    """The one-sided upper confidence bound on a Poisson mean after `n` events: the mean
    at which seeing `n` or fewer has probability 1 - confidence (3.0 for none at 95 %)."""
    def cdf(mu):
        term = total = math.exp(-mu)
        for i in range(1, n + 1):
            term *= mu / i
            total += term
        return total
    lo, hi = 0.0, 10.0 + 10.0 * n
    for _ in range(100):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if cdf(mid) > 1 - confidence else (lo, mid)
    return hi


def alarms_allowed(budget_per_hour, hours):
    """The most alarms calibration may let through on `hours` while the 95 % upper bound on
    the rate stays within the budget: -1 when even none cannot show it (too few hours)."""
    n = -1
    while poisson_upper(n + 1) <= budget_per_hour * hours:
        n += 1
    return n


def join(forecaster, level, n_in, layout=DEFAULT):
    """One Gemm-Relu-Gemm from the two nets: hidden units side by side, each fed only the
    columns its net was trained on, each output fed only by its own net's hidden units."""
    h1, h2 = forecaster.w1.shape[1], level.w1.shape[1]
    w1 = np.zeros((n_in, h1 + h2), np.float32)
    w1[:layout.forecast_inputs, :h1] = forecaster.w1
    w1[layout.level_columns, h1:] = level.w1
    b1 = np.concatenate([forecaster.b1, level.b1])
    w2 = np.zeros((h1 + h2, 4), np.float32)
    w2[:h1, :2] = forecaster.w2
    w2[h1:, 2:] = level.w2
    b2 = np.concatenate([forecaster.b2, level.b2])
    return [w1, b1, w2, b2]


def joined_forward(joined, x):
    w1, b1, w2, b2 = joined
    return np.maximum(x @ w1 + b1, 0.0) @ w2 + b2


def export(joined, n_in, path):
    w1, b1, w2, b2 = joined
    graph = helper.make_graph(
        [
            helper.make_node("Gemm", ["x", "w1", "b1"], ["h_pre"]),
            helper.make_node("Relu", ["h_pre"], ["h"]),
            helper.make_node("Gemm", ["h", "w2", "b2"], ["y"]),
        ],
        "vigil_forecaster",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, n_in])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
        [numpy_helper.from_array(a, n) for a, n in [(w1, "w1"), (b1, "b1"), (w2, "w2"), (b2, "b2")]],
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)],
                              producer_name="vigil models/train.py")
    proto.ir_version = 8
    onnx.checker.check_model(proto)
    data = proto.SerializeToString()
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


class Fitted:
    """The two nets trained on one set of runs, joined, with the rows they saw."""

    def __init__(self, train_runs, specs, context_norm, layout, epochs):
        rng = np.random.default_rng(SEED)
        x, y, floor, self.x_kinds = samples(train_runs, specs, context_norm, True, layout)
        print(f"{len(y)} training windows from {len(train_runs)} drives", flush=True)
        self.forecaster = train(x[:, :layout.forecast_inputs], y, floor, rng, HIDDEN, epochs)
        xl, yl, floor_l, self.xl_kinds = level_samples(train_runs, specs, context_norm, True, layout)
        print(f"{len(yl)} consistency windows", flush=True)
        if len(yl):
            self.level = train(xl, yl, floor_l, rng, LEVEL_HIDDEN, epochs)
        else:
            # No signal with a companion: the consistency outputs are a constant nothing
            # reads (the agent checks the level only for a signal whose card entry has one).
            self.level = Mlp(rng, len(layout.level_columns), LEVEL_HIDDEN)
            for p in self.level.params():
                p[...] = 0.0
        self.x, self.xl, self.windows = x, xl, len(y)
        self.n_in = x.shape[1]
        self.joined = join(self.forecaster, self.level, self.n_in, layout)
        self.parameters = int(sum(p.size for p in self.forecaster.params() +
                                  (self.level.params() if len(yl) else [])))

    def envelope(self, layout):
        return envelope(self.x, self.x_kinds, self.xl, self.xl_kinds, self.n_in, layout)


def golden_vectors(joined, xc, layout):
    """Real calibration rows and the model's output on them in float32: six rows of any
    signal and two with a companion (eight of any without one), so both nets are checked."""
    with_companion = np.flatnonzero(np.abs(xc[:, layout.forecast_inputs:]).sum(axis=1) > 0)
    pick_rng = np.random.default_rng(SEED + 1)
    if len(with_companion) >= 2:
        pick = np.concatenate([pick_rng.choice(len(xc), 6, replace=False),
                               pick_rng.choice(with_companion, 2, replace=False)])
    else:
        pick = pick_rng.choice(len(xc), min(8, len(xc)), replace=False)
    return [{"input": [float(v) for v in xc[i]],
             "output": [float(v) for v in joined_forward(joined, xc[i:i + 1])[0]]} for i in pick]


def card_head(name, version, sha, n_in, context_norm, kinds, specs):
    """The card's fields up to the signals, in the order the agent's ModelCard lists them."""
    return {
        "name": name,
        "version": version,
        "onnx": "forecaster.onnx",
        "sha256": sha,
        "input": {"name": "x", "shape": [1, n_in]},
        "output": {"name": "y", "shape": [1, 4]},
        "rate_hz": 1.0,
        "window": WINDOW,
        "context": context_norm,
        "kinds": kinds,
        "signals": specs,
    }


def thresholds_section():
    return {
        "debounce_ticks": DEBOUNCE_TICKS,
        "cusum_k": CUSUM_K,
        "level_tau": LEVEL_TAU,
        "level_clip": LEVEL_CLIP,
        "cusum_clip": CUSUM_CLIP,
        "outlier": OUTLIER,
        "outlier_window": OUTLIER_WINDOW,
    }


def main():
    """The committed model: trained and calibrated on the simulated fleet in models/data."""
    ensure_data()
    train_runs, calib_runs = runs("train"), runs("calib")
    specs, context_norm = normalisation(train_runs)
    fit = Fitted(train_runs, specs, context_norm, DEFAULT, EPOCHS)
    forecaster, level, joined, n_in = fit.forecaster, fit.level, fit.joined, fit.n_in
    sha = export(joined, n_in, HERE / "forecaster.onnx")
    env = fit.envelope(DEFAULT)
    worst, calib_hours = calibrate(joined, calib_runs, specs, context_norm, env)
    xc, _, _ = samples(calib_runs[:1], specs, context_norm)
    golden = golden_vectors(joined, xc, DEFAULT)
    n_params = sum(p.size for p in forecaster.params() + level.params())
    train_hours = sum(len(next(iter(run.values()))) for _, run in train_runs) / 3600.0
    card = {
        **card_head("vigil-forecaster", "2.3.0", sha, n_in, context_norm, len(KINDS), specs),
        "thresholds": thresholds_section(),
        "false_alarm_budget_per_hour": BUDGET_PER_HOUR,
        "golden": golden,
        "golden_tolerance": 1e-4,
        "training": {
            "script": "models/train.py",
            "seed": SEED,
            "data": f"normal simulated drives ({', '.join(name for name, _ in train_runs)}), each "
                    "vehicle's ECU dithering its temperatures as a real one does (oil 0.04-0.16, "
                    "coolant and fuel 0.1-0.4 degC standard deviation before the bus rounds them); "
                    "seeds 25-32 (and calibration seeds 1501-1700) with a passenger car's engine "
                    "speeds (800 rpm idle, 2000-3100 cruising), seeds 33-40 (and 1701-1900) on "
                    "cold days (-15 to 2 degC; the others 2 to 30)",
            "envelope_margin": ENVELOPE_MARGIN,
            "drives": len(train_runs),
            "hours": round(train_hours, 2),
            "windows": fit.windows,
            "parameters": int(n_params),
            "architecture": f"forecaster MLP {FORECAST_INPUTS}-{HIDDEN}-2 and consistency MLP "
                            f"{len(LEVEL_COLUMNS)}-{LEVEL_HIDDEN}-2, joined as {n_in}-{HIDDEN + LEVEL_HIDDEN}-4, "
                            f"ReLU; Gaussian NLL; Adam, {EPOCHS} epochs",
            "calibration": {
                "drives": len(calib_runs),
                "hours": round(calib_hours, 2),
                "worst_normal": worst,
                "margin": MARGIN,
            },
        },
        "kind_names": KINDS,
        "envelope": env,
    }
    eval_path = HERE / "eval.json"
    card["evaluation"] = json.loads(eval_path.read_text()) if eval_path.exists() else \
        "run `vigil eval --model models/forecaster.card.json --out models/eval.json`, then train.py again"
    (HERE / "forecaster.card.json").write_text(json.dumps(card, indent=1) + "\n")
    write_markdown(card, HERE / "MODEL_CARD.md")
    print(f"wrote forecaster.onnx ({n_params} parameters, sha256 {sha[:12]}...) and its card")


def write_markdown(card, path):
    t = card["thresholds"]
    tr = card["training"]
    fleet = tr.get("data_seen")
    lines = [
        f"# Model card: {card['name']} {card['version']}",
        "",
        "Written by `models/train.py`; the JSON card beside it is what the agent loads and checks.",
        "",
        "## What it does",
        *(what_it_does_on_fleet_data(card) if fleet else [
            (f"From the last {card['window']} s of one temperature signal, resampled at {card['rate_hz']:g} Hz, "
             "and the engine speed over the same ticks (not for a cargo tank, whose temperature follows the "
             "air and the cargo: its rows hold zeros there), it forecasts the next tick's value and its spread. "
             "The agent scores each tick by the standardised residual (actual - mean) / spread."),
            "",
            ("For a signal with a companion (the coolant, whose companion is the oil) it also says what the "
             "signal's level should be now, from the companion's window and the engine speed only, never from "
             "the signal's own values. The agent keeps an EWMA of that standardised residual: a coolant "
             "sensor that drifts or sticks stops agreeing with the oil, which a 10 s forecast cannot see."),
        ]),
        "",
        "## Input and output",
        (f"- input `x` [1, {card['input']['shape'][1]}]: 10 window values less the last, over the signal's scale; "
        "the last value's level ((last - center) / level_scale); 10 engine speeds ((rpm - center) / scale, gaps 0; "
        "zeros for a signal whose `context` is false); "
        f"one-hot kind ({', '.join(card['kind_names'])}); "
        "10 companion values ((value - companion center) / companion scale; zeros without a companion)."),
        ("- output `y` [1, 4]: the change's mean over the scale, and the log of its spread over the scale; "
        "the level's mean ((value - center) / level_scale) and the log of its spread over level_scale. "
        "The agent adds the bus resolution (sigma_floor) in quadrature to both spreads."),
        "",
        "| signal | kind | scale | center | level scale | sigma floor | score threshold | CUSUM h | outliers |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for s in card["signals"]:
        lines.append(f"| `{s['signal']}` | {card['kind_names'][s['kind']]} | {s['scale']:.4f} | "
                     f"{s['center']:.2f} | {s['level_scale']:.2f} | {s['sigma_floor']:.4f} | "
                     f"{s['score']} | {s['cusum_h']} | {s['outlier_count']} |")
    c = card["context"]
    lines += [
        f"\nContext: `{c['signal']}`, center {c['center']:.1f}, scale {c['scale']:.1f}.",
        "",
        "## Thresholds (calibrated on normal drives)",
        *(calibration_on_fleet_data(tr["calibration"], t) if fleet else [
            (f"Budget: {card['false_alarm_budget_per_hour'] * 100:g} false alarm per 100 vehicle-hours. Each "
             f"threshold is the largest value the statistic held for {t['debounce_ticks']} ticks on "
             f"{tr['calibration']['hours']} h of normal calibration drives (other vehicles than training), "
             f"times {tr['calibration']['margin']}, per signal kind (table above)."),
        ]),
        f"- residual score: |residual| held {t['debounce_ticks']} ticks",
        f"- CUSUM on the residual clipped to +-{t['cusum_clip']}, less k = {t['cusum_k']} per tick",
        f"- outliers: residuals beyond {t['outlier']} within {t['outlier_window']} ticks",
        f"- consistency: |EWMA| (time constant {t['level_tau']:g} ticks) of the level residual clipped to "
        f"+-{t['level_clip']:g}; thresholds: "
        + (", ".join(f"`{s['signal']}` {s['level']['h']} (companion `{s['level']['companion']}`)"
                     for s in card["signals"] if "level" in s) or "none (no signal has its companion)"),
        "",
        "## Where it abstains",
        (f"The card holds, per signal kind, every input column's range over the training rows, widened by "
        f"{tr['envelope_margin']:g} of the range on each side. Where the conditions lie outside it the model "
        "abstains: the forecaster when the signal's level, the engine speed or the kind does (never for the "
        "window's own changes, which are what it judges), the consistency check when the engine speed, the "
        "kind or the companion does. A window with a gap in the engine speed or the companion is masked, "
        "never imputed. The rules and limits run either way."),
        "",
        "## Training",
        (f"{tr['architecture']}; {tr['parameters']} parameters; {tr['windows']} windows from "
        f"{tr['drives']} drives ({tr['hours']} h), {tr['data']}; seed {tr['seed']}."),
        "",
        *(data_seen_lines(card) if fleet else []),
        "## Evaluation",
    ]
    ev = card["evaluation"]
    if isinstance(ev, dict) and "table_markdown" in ev:
        lines.append(ev["table_markdown"])
    else:
        lines.append(str(ev))
    lines += ["", "## Golden vectors",
              (f"{len(card['golden'])} input/output pairs in the JSON card; the agent refuses the model "
              f"unless tract reproduces them within {card['golden_tolerance']}.")]
    path.write_text("\n".join(lines) + "\n")


def what_it_does_on_fleet_data(card):
    with_context = [s["signal"] for s in card["signals"] if s["context"]]
    with_level = [f"`{s['signal']}` (companion `{s['level']['companion']}`)"
                  for s in card["signals"] if "level" in s]
    return [
        (f"From the last {card['window']} s of one signal, resampled at {card['rate_hz']:g} Hz, "
         + (f"and the engine speed (`{card['context']['signal']}`) over the same ticks for "
            f"{len(with_context)} of its {len(card['signals'])} signals, " if with_context else
            "without an engine speed (the data had none: every row holds zeros there), ")
         + "it forecasts the next tick's value and its spread. The agent scores each tick by the "
         "standardised residual (actual - mean) / spread."),
        "",
        ("It also says what a signal's level should be now from its companion's window, for "
         + ", ".join(with_level) + "." if with_level else
         "No signal has its companion in this data, so there is no consistency check."),
    ]


def calibration_on_fleet_data(cal, t):
    b = cal["budget"]
    return [
        (f"Budget: {b['per_vehicle_day']:g} false alarm per vehicle-day ({b['hours_per_vehicle_day']:g} h of "
         f"running), {b['per_hour']:g} per hour. On {cal['hours']} h of calibration drives (held apart from "
         f"training) the budget lets {max(b['alarms_allowed'], 0)} alarm(s) through at 95 % confidence; each "
         f"threshold is the {'largest' if cal['spare'] == 0 else str(cal['spare'] + 1) + '-th largest'} value "
         f"a drive's statistic held for {t['debounce_ticks']} ticks, times {cal['margin']}, per signal kind "
         "(table above)."),
        "",
        (f"At these thresholds the calibration data raised {b['alarms']} alarm(s) "
         f"({', '.join(f'{k}: {v}' for k, v in b['alarms_by_statistic'].items()) or 'none'}): at most "
         f"{b['upper_95_per_vehicle_day']:.3g} per vehicle-day at 95 % confidence, "
         + ("within the budget." if b["met"] else
            f"NOT shown within the budget: that needs {b['hours_needed']:g} calibration hours without an "
            "alarm.")),
        "",
    ]


def data_seen_lines(card):
    d = card["training"]["data_seen"]
    spans = [d["training"]["span"], d["calibration"]["span"]]
    lines = [
        "## Data",
        (f"{d['training']['hours']} h to train and {d['calibration']['hours']} h to calibrate, "
         f"{min(s['start'] for s in spans)} to {max(s['end'] for s in spans)} "
         f"(training from `{d['training']['source']}`, calibration from `{d['calibration']['source']}`)."),
        "",
        "| signal | resolution (smallest step) | range | whole-window hours | worst gap share | longest gap |",
        "|---|---|---|---|---|---|",
    ]
    for name, f in d["signals"].items():
        lines.append(f"| `{name}` | {f['resolution']} | {f['min']:g} to {f['max']:g} | {f['window_hours']} | "
                     f"{f['worst_gap_share']:.1%} | {f['longest_gap_s']} s |")
    lines += ["", "| file | used for | hours | first | last |", "|---|---|---|---|---|"]
    for part in ("training", "calibration"):
        for f in d[part]["files"]:
            lines.append(f"| `{f['file']}` | {part} | {f['hours']} | {f['start']} | {f['end']} |")
    return lines + [""]


# --- Training on a fleet's own recorded drives (--data) ---

# A vehicle-day is a working day of running: EU drivers' hours allow 9 h of driving, 10 h
# twice a week, and the agent runs while the engine does.
HOURS_PER_VEHICLE_DAY = 10.0
# One false alarm per 10 vehicle-days: the 1 per 100 vehicle-hours the committed model is
# calibrated to (BUDGET_PER_HOUR).
BUDGET_PER_VEHICLE_DAY = BUDGET_PER_HOUR * HOURS_PER_VEHICLE_DAY
# Training needs, for each signal, at least this many whole windows per parameter of the
# forecaster (802 parameters for one kind: 2.2 h; the committed model had 130 per
# parameter). Fewer rows than ten per parameter fit the drives, not the signal's normal.
WINDOWS_PER_PARAMETER = 10
# The kind of each built-in signal, as the committed model names them; any other signal is
# a kind of its own, named by its VSS name.
KNOWN_KINDS = {
    "Vehicle.Powertrain.CombustionEngine.EngineCoolant.Temperature": "coolant",
    "Vehicle.Powertrain.CombustionEngine.EngineOil.Temperature": "oil",
    "Vehicle.Powertrain.FuelSystem.Temperature": "fuel",
    **{f"Vehicle.Cargo.Tank.Compartment{n}.Temperature": "tank" for n in range(1, 9)},
}


def minimum_training_hours(layout):
    parameters = layout.forecast_inputs * HIDDEN + HIDDEN + HIDDEN * 2 + 2
    return WINDOWS_PER_PARAMETER * parameters / 3600.0


def kinds_of(signals):
    """Each signal's kind index and the kinds' names, in the order first met."""
    names = []
    for s in signals:
        k = KNOWN_KINDS.get(s, s)
        if k not in names:
            names.append(k)
    return [names.index(KNOWN_KINDS.get(s, s)) for s in signals], names


def choose_signals(args, every_run):
    """The watched signals (--signals, or every column but the engine speed and the
    position) and the engine speed's column, or None."""
    columns = fleet_data.columns(every_run)
    if args.context == "none":
        context = None
    else:
        context = args.context if args.context in columns else None
        if context is None and args.context != fleet_data.ENGINE_SPEED:
            raise fleet_data.Refused([(f"--context {args.context}: not a column of the data "
                                      f"(columns: {', '.join(columns)})")])
    if args.signals:
        signals = [s.strip() for s in args.signals.split(",") if s.strip()]
    else:
        signals = [c for c in columns if c != context and c not in fleet_data.POSITION]
    if context in signals:
        raise fleet_data.Refused([(f"{context}: the engine speed is the model's context, not a watched "
                                  "signal; leave it out of --signals, or pass --context none")])
    return signals, context


def as_runs(run_list):
    """fleet_data's runs as the (name, columns) pairs the functions above take."""
    return [(f"{r.file}@{fleet_data.iso(r.start)}", r.columns) for r in run_list]


def data_main(args):
    """Trains, calibrates and writes a model of the signals in a folder of 1 Hz CSVs."""
    started, cpu_started = time.monotonic(), time.process_time()
    out = Path(args.out)
    every = fleet_data.read_folder(args.data)
    if args.calibration:
        train_part, calib_part = every, fleet_data.read_folder(args.calibration)
        calib_source = args.calibration
    else:
        train_part, calib_part = fleet_data.split(every)
        calib_source = f"{args.data} (every second file held out)"
    signals, context = choose_signals(args, train_part + calib_part)
    kind_index, kind_names = kinds_of(signals)
    layout = Layout(len(kind_names))
    fleet_data.check(train_part, calib_part, signals, WINDOW, minimum_training_hours(layout),
                     args.hours_per_vehicle_day)
    if context is not None and fleet_data.signal_figures(train_part, context, WINDOW)["min"] == \
            fleet_data.signal_figures(train_part, context, WINDOW)["max"]:
        print(f"{context} is constant in the training data: trained without it", flush=True)
        context = None
    figures = {s: fleet_data.signal_figures(train_part + calib_part, s, WINDOW) for s in signals}
    watched = [(s, k, figures[s]["resolution"]) for s, k in zip(signals, kind_index)]
    without_context = {kind_names.index("tank")} if "tank" in kind_names else set()
    train_runs, calib_runs = as_runs(train_part), as_runs(calib_part)
    specs, context_norm = normalisation(train_runs, watched, without_context, context)
    for spec in specs:
        spec["resolution"] = figures[spec["signal"]]["resolution"]
    fit = Fitted(train_runs, specs, context_norm, layout, args.epochs)
    trained = time.monotonic()
    out.mkdir(parents=True, exist_ok=True)
    sha = export(fit.joined, fit.n_in, out / "forecaster.onnx")
    env = fit.envelope(layout)
    budget_per_hour = args.budget_per_vehicle_day / args.hours_per_vehicle_day
    calib_hours = fleet_data.hours(calib_part)
    allowed = alarms_allowed(budget_per_hour, calib_hours)
    statistics_judged = 3 * layout.kinds + len({s["kind"] for s in specs if "level" in s})
    spare = max(allowed, 0) // statistics_judged
    worst, _ = calibrate(fit.joined, calib_runs, specs, context_norm, env, layout, kind_names, spare)
    alarms = count_alarms(fit.joined, calib_runs, specs, context_norm, env, layout)
    n_alarms = sum(alarms.values())
    upper = poisson_upper(n_alarms) / calib_hours * args.hours_per_vehicle_day
    xc, _, _ = samples(calib_runs[:4], specs, context_norm, layout=layout)
    golden = golden_vectors(fit.joined, xc, layout)
    card = {
        **card_head(args.name, args.version, sha, fit.n_in, context_norm, layout.kinds, specs),
        "thresholds": thresholds_section(),
        "false_alarm_budget_per_hour": budget_per_hour,
        "golden": golden,
        "golden_tolerance": 1e-4,
        "training": {
            "script": "models/train.py --data",
            "seed": SEED,
            "data": f"{len(train_runs)} recorded drives from {args.data}",
            "data_seen": {
                "training": {"source": str(args.data), **fleet_data.describe(train_part)},
                "calibration": {"source": str(calib_source), **fleet_data.describe(calib_part)},
                "signals": figures,
                "context": context,
            },
            "envelope_margin": ENVELOPE_MARGIN,
            "drives": len(train_runs),
            "hours": round(fleet_data.hours(train_part), 2),
            "windows": fit.windows,
            "parameters": fit.parameters,
            "architecture": f"forecaster MLP {layout.forecast_inputs}-{HIDDEN}-2 and consistency MLP "
                            f"{len(layout.level_columns)}-{LEVEL_HIDDEN}-2, joined as "
                            f"{fit.n_in}-{HIDDEN + LEVEL_HIDDEN}-4, ReLU; Gaussian NLL; Adam, {args.epochs} epochs",
            "calibration": {
                "drives": len(calib_runs),
                "hours": round(calib_hours, 2),
                "worst_normal": worst,
                "margin": MARGIN,
                "spare": spare,
                "budget": {
                    "per_vehicle_day": args.budget_per_vehicle_day,
                    "hours_per_vehicle_day": args.hours_per_vehicle_day,
                    "per_hour": budget_per_hour,
                    "alarms_allowed": allowed,
                    "alarms": n_alarms,
                    "alarms_by_statistic": alarms,
                    "upper_95_per_vehicle_day": round(upper, 4),
                    "met": upper <= args.budget_per_vehicle_day,
                    "hours_needed": math.ceil(poisson_upper(0) / budget_per_hour),
                },
            },
        },
        "kind_names": kind_names,
        "envelope": env,
        "evaluation": "not evaluated: run `vigil eval` on labelled recorded drives",
    }
    card_path = out / "forecaster.card.json"
    card_path.write_text(json.dumps(card, indent=1) + "\n")
    write_markdown(card, out / "MODEL_CARD.md")
    seconds, cpu = time.monotonic() - started, time.process_time() - cpu_started
    vehicle_hours = fleet_data.hours(train_part) + calib_hours
    b = card["training"]["calibration"]["budget"]
    print(f"wrote {card_path} ({fit.parameters} parameters, {layout.kinds} kinds, sha256 {sha[:12]}...)")
    print(f"calibration: {n_alarms} alarm(s) in {calib_hours:.2f} h: at most {upper:.3g} false alarms per "
          f"vehicle-day at 95 % (budget {args.budget_per_vehicle_day:g}: "
          + ("met" if b["met"] else f"not shown; needs {b['hours_needed']} h without an alarm") + ")")
    print(f"trained and calibrated in {seconds:.1f} s ({cpu:.1f} s of CPU; reading and training "
          f"{trained - started:.1f} s, calibrating {started + seconds - trained:.1f} s) on "
          f"{vehicle_hours:.2f} vehicle-hours: {seconds / vehicle_hours:.2f} s per vehicle-hour")
    return 0


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", help="a folder of 1 Hz CSVs (`timestamp` then VSS names, one file per "
                   "drive or vehicle); without it, the simulated fleet in models/data")
    p.add_argument("--out", help="where to write forecaster.onnx, forecaster.card.json, MODEL_CARD.md "
                   "(with --data)")
    p.add_argument("--signals", help="comma-separated VSS names to watch (default: every column but the "
                   "engine speed and the position)")
    p.add_argument("--calibration", help="a folder of 1 Hz CSVs of other vehicles to calibrate on "
                   "(default: every second file of --data)")
    p.add_argument("--context", default=fleet_data.ENGINE_SPEED,
                   help="the engine-speed column, or `none` (default: %(default)s when the data has it)")
    p.add_argument("--budget-per-vehicle-day", type=float, default=BUDGET_PER_VEHICLE_DAY,
                   help="false alarms per vehicle-day the thresholds may cost (default: %(default)g)")
    p.add_argument("--hours-per-vehicle-day", type=float, default=HOURS_PER_VEHICLE_DAY,
                   help="running hours in a vehicle-day (default: %(default)g); also the fewest "
                   "calibration hours accepted")
    p.add_argument("--epochs", type=int, default=EPOCHS, help="training epochs (default: %(default)s)")
    p.add_argument("--name", default="fleet-forecaster", help="the model's name in its card")
    p.add_argument("--version", default="1.0.0", help="the model's version in its card")
    args = p.parse_args(argv)
    if args.data is None:
        given = [f for f in ("out", "signals", "calibration") if getattr(args, f) is not None]
        if given:
            p.error(f"--{given[0]} needs --data")
    elif args.out is None:
        p.error("--data needs --out")
    return args


def entry(argv):
    args = parse_args(argv)
    if args.data is None:
        return main()
    try:
        return data_main(args)
    except fleet_data.Refused as e:
        print("train.py: refused: the data cannot support a model:", file=sys.stderr)
        for reason in e.reasons:
            print(f"  {reason}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(entry(sys.argv[1:]))
