#!/usr/bin/env python3
"""Trains Vigil's forecaster, calibrates its thresholds and writes the model and its card.

    python3 models/train.py            # simulates the data if models/data is missing

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

import hashlib
import json
import subprocess
import sys
from pathlib import Path

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


FORECAST_INPUTS = 2 * WINDOW + 1 + len(KINDS)
# The consistency net's inputs: engine speed, kind and companion columns of the row.
LEVEL_COLUMNS = np.r_[WINDOW + 1:FORECAST_INPUTS, FORECAST_INPUTS:FORECAST_INPUTS + WINDOW]


def features(w, ctx, comp, spec, context_norm):
    """The agent's input rows for windows `w` (n, 10), context windows `ctx` (n, 10) and
    companion windows `comp` (n, 10; None for a signal without a companion)."""
    kind = spec["kind"]
    last = w[:, -1:]
    rel = (w - last) / spec["scale"]
    level = (last - spec["center"]) / spec["level_scale"]
    c = np.where(np.isnan(ctx), 0.0, (ctx - context_norm["center"]) / context_norm["scale"])
    if not spec.get("context", True):
        c = np.zeros_like(c)
    onehot = np.zeros((len(w), len(KINDS)))
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
    _, ctx = windows(run[CONTEXT])
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


def samples(run_list, specs, context_norm, with_kinds=False):
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
            x = features(w[ok], ctx[ok], None if comp is None else comp[ok], spec, context_norm)
            y = ((nxt[ok] - w[ok, -1]) / spec["scale"]).astype(np.float32)
            xs.append(x)
            ys.append(y)
            floors.append(np.full(len(y), spec["sigma_floor"] / spec["scale"], np.float32))
            kinds.append(np.full(len(y), spec["kind"]))
    out = np.concatenate(xs), np.concatenate(ys), np.concatenate(floors)
    return (*out, np.concatenate(kinds)) if with_kinds else out


def level_samples(run_list, specs, context_norm, with_kinds=False):
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
            x = features(w[ok], ctx[ok], comp[ok], spec, context_norm)[:, LEVEL_COLUMNS]
            y = ((w[ok, -1] - spec["center"]) / spec["level_scale"]).astype(np.float32)
            xs.append(x)
            ys.append(y)
            floors.append(np.full(len(y), spec["sigma_floor"] / spec["level_scale"], np.float32))
            kinds.append(np.full(len(y), spec["kind"]))
    out = np.concatenate(xs), np.concatenate(ys), np.concatenate(floors)
    return (*out, np.concatenate(kinds)) if with_kinds else out


# The columns each net reads: contiguous, and overlapping in the engine speed and the kind.
FORECAST_GROUP = np.arange(0, FORECAST_INPUTS)
LEVEL_GROUP = np.arange(WINDOW + 1, FORECAST_INPUTS + WINDOW)
# The columns that say whether the model knows the conditions, checked against the envelope:
# for the forecaster the signal's level, the engine speed and the kind, never the window's
# own changes (a tank heating faster than any training window is what it must judge, not
# a reason to stand aside); the consistency check reads no value of its own signal at all.
FORECAST_CONDITIONS = np.arange(WINDOW, FORECAST_INPUTS)
LEVEL_CONDITIONS = LEVEL_GROUP


def envelope(x, x_kinds, xl, xl_kinds, n_in):
    """Per kind, every input column's low and high over its training rows (the forecaster's
    columns from its rows, the companion's from the consistency rows, the engine speed and
    the kind from both), widened by ENVELOPE_MARGIN of the range, as float32 values (the
    agent compares its float32 row with them exactly)."""
    shared = np.arange(WINDOW + 1, FORECAST_INPUTS)
    companion = np.arange(FORECAST_INPUTS, FORECAST_INPUTS + WINDOW)
    out = []
    for kind in range(len(KINDS)):
        low = np.zeros(n_in)
        high = np.zeros(n_in)
        rows = x[x_kinds == kind][:, FORECAST_GROUP]
        low[FORECAST_GROUP] = rows.min(axis=0)
        high[FORECAST_GROUP] = rows.max(axis=0)
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


def normalisation(run_list):
    specs = []
    for signal, kind, resolution in WATCHED:
        series = [run[signal] for _, run in run_list if signal in run]
        kind_series = [run[s] for _, run in run_list for s, k, _ in WATCHED if k == kind and s in run]
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
            "context": kind not in WITHOUT_CONTEXT,
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
    ctx = np.concatenate([run[CONTEXT] for _, run in run_list])
    ctx = ctx[~np.isnan(ctx)]
    context_norm = {"signal": CONTEXT, "center": float(np.mean(ctx)), "scale": float(np.std(ctx))}
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


def train(x, y, floor, rng, hidden):
    model = Mlp(rng, x.shape[1], hidden)
    m = [np.zeros_like(p) for p in model.params()]
    v = [np.zeros_like(p) for p in model.params()]
    step = 0
    for epoch in range(EPOCHS):
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
        print(f"epoch {epoch + 1}/{EPOCHS}: nll {total / len(y):.4f}", flush=True)
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


def masks(x, ctx, comp, spec, env):
    """Per window: whether the forecast runs (the engine speed whole, the conditions it
    reads in the envelope) and whether the consistency check does (also the companion
    whole and in the envelope)."""
    ctx_whole = context_whole(ctx, spec)
    comp_whole = np.zeros(len(x), bool) if comp is None else whole(comp)
    forecast_ok = ctx_whole & within(env, spec["kind"], x, FORECAST_CONDITIONS)
    level_ok = ctx_whole & comp_whole & within(env, spec["kind"], x, LEVEL_CONDITIONS)
    return forecast_ok, level_ok


def residual_streams(joined, run_list, specs, context_norm, env):
    """Per (run, signal): the standardised residual of the forecast at each tick, and of the
    consistency check (all NaN without one), NaN where none, as the agent computes them
    (masked where an input has a gap, abstaining outside the envelope `env`)."""
    for name, run in run_list:
        for spec in specs:
            if spec["signal"] not in run:
                continue
            s = run[spec["signal"]]
            k, w, ctx, comp = signal_windows(run, spec)
            x = features(w, ctx, comp, spec, context_norm)
            out = joined_forward(joined, x).astype(np.float64)
            forecast_ok, level_ok = masks(x, ctx, comp, spec, env)
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


def calibrate(joined, run_list, specs, context_norm, env):
    """The worst each statistic held on normal drives, per signal kind."""
    kind_of = {s["signal"]: s["kind"] for s in specs}
    worst = {k: {"score": 0.0, "cusum": 0.0, "outliers": 0.0, "level": 0.0}
             for k in range(len(KINDS))}
    for name, signal, r, z in residual_streams(joined, run_list, specs, context_norm, env):
        w = worst[kind_of[signal]]
        stats = list(statistics(r)) + [level_statistic(z)]
        for key, stat in zip(["score", "cusum", "outliers", "level"], stats):
            peak = float(held(stat).max())
            if peak > w[key]:
                w[key] = peak
                print(f"calibration: {key} {peak:.2f} on {signal} in {name}", flush=True)
    hours = sum(len(next(iter(run.values()))) for _, run in run_list) / 3600.0
    for spec in specs:
        w = worst[spec["kind"]]
        spec["score"] = round(max(w["score"] * MARGIN, 3.0), 3)
        spec["cusum_h"] = round(max(w["cusum"] * MARGIN, 5.0), 3)
        spec["outlier_count"] = int(w["outliers"]) + 2
        if "level" in spec:
            spec["level"]["h"] = round(max(w["level"] * MARGIN, 1.0), 3)
    return {KINDS[k]: v for k, v in worst.items()}, hours


def join(forecaster, level, n_in):
    """One Gemm-Relu-Gemm from the two nets: hidden units side by side, each fed only the
    columns its net was trained on, each output fed only by its own net's hidden units."""
    h1, h2 = forecaster.w1.shape[1], level.w1.shape[1]
    w1 = np.zeros((n_in, h1 + h2), np.float32)
    w1[:FORECAST_INPUTS, :h1] = forecaster.w1
    w1[LEVEL_COLUMNS, h1:] = level.w1
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


def main():
    ensure_data()
    rng = np.random.default_rng(SEED)
    train_runs, calib_runs = runs("train"), runs("calib")
    specs, context_norm = normalisation(train_runs)
    x, y, floor, x_kinds = samples(train_runs, specs, context_norm, with_kinds=True)
    print(f"{len(y)} training windows from {len(train_runs)} drives", flush=True)
    forecaster = train(x[:, :FORECAST_INPUTS], y, floor, rng, HIDDEN)
    xl, yl, floor_l, xl_kinds = level_samples(train_runs, specs, context_norm, with_kinds=True)
    print(f"{len(yl)} consistency windows", flush=True)
    level = train(xl, yl, floor_l, rng, LEVEL_HIDDEN)
    n_in = x.shape[1]
    joined = join(forecaster, level, n_in)
    sha = export(joined, n_in, HERE / "forecaster.onnx")
    env = envelope(x, x_kinds, xl, xl_kinds, n_in)
    worst, calib_hours = calibrate(joined, calib_runs, specs, context_norm, env)
    # Golden vectors: real calibration windows, and the model's output on them in float32.
    xc, _, _ = samples(calib_runs[:1], specs, context_norm)
    # Six rows of any signal and two with a companion, so both nets are checked.
    with_companion = np.flatnonzero(np.abs(xc[:, FORECAST_INPUTS:]).sum(axis=1) > 0)
    pick_rng = np.random.default_rng(SEED + 1)
    pick = np.concatenate([pick_rng.choice(len(xc), 6, replace=False),
                           pick_rng.choice(with_companion, 2, replace=False)])
    golden = [{"input": [float(v) for v in xc[i]],
               "output": [float(v) for v in joined_forward(joined, xc[i:i + 1])[0]]} for i in pick]
    n_params = sum(p.size for p in forecaster.params() + level.params())
    train_hours = sum(len(next(iter(run.values()))) for _, run in train_runs) / 3600.0
    card = {
        "name": "vigil-forecaster",
        "version": "2.3.0",
        "onnx": "forecaster.onnx",
        "sha256": sha,
        "input": {"name": "x", "shape": [1, n_in]},
        "output": {"name": "y", "shape": [1, 4]},
        "rate_hz": 1.0,
        "window": WINDOW,
        "context": context_norm,
        "kinds": len(KINDS),
        "signals": specs,
        "thresholds": {
            "debounce_ticks": DEBOUNCE_TICKS,
            "cusum_k": CUSUM_K,
            "level_tau": LEVEL_TAU,
            "level_clip": LEVEL_CLIP,
            "cusum_clip": CUSUM_CLIP,
            "outlier": OUTLIER,
            "outlier_window": OUTLIER_WINDOW,
        },
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
            "windows": len(y),
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
    write_markdown(card)
    print(f"wrote forecaster.onnx ({n_params} parameters, sha256 {sha[:12]}...) and its card")


def write_markdown(card):
    t = card["thresholds"]
    tr = card["training"]
    lines = [
        "# Model card: vigil-forecaster " + card["version"],
        "",
        "Written by `models/train.py`; the JSON card beside it is what the agent loads and checks.",
        "",
        "## What it does",
        (f"From the last {card['window']} s of one temperature signal, resampled at {card['rate_hz']:g} Hz, "
        "and the engine speed over the same ticks (not for a cargo tank, whose temperature follows the "
        "air and the cargo: its rows hold zeros there), it forecasts the next tick's value and its spread. "
        "The agent scores each tick by the standardised residual (actual - mean) / spread."),
        "",
        ("For a signal with a companion (the coolant, whose companion is the oil) it also says what the "
        "signal's level should be now, from the companion's window and the engine speed only, never from "
        "the signal's own values. The agent keeps an EWMA of that standardised residual: a coolant "
        "sensor that drifts or sticks stops agreeing with the oil, which a 10 s forecast cannot see."),
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
        (f"Budget: {card['false_alarm_budget_per_hour'] * 100:g} false alarm per 100 vehicle-hours. Each "
        f"threshold is the largest value the statistic held for {t['debounce_ticks']} ticks on "
        f"{tr['calibration']['hours']} h of normal calibration drives (other vehicles than training), "
        f"times {tr['calibration']['margin']}, per signal kind (table above)."),
        f"- residual score: |residual| held {t['debounce_ticks']} ticks",
        f"- CUSUM on the residual clipped to +-{t['cusum_clip']}, less k = {t['cusum_k']} per tick",
        f"- outliers: residuals beyond {t['outlier']} within {t['outlier_window']} ticks",
        f"- consistency: |EWMA| (time constant {t['level_tau']:g} ticks) of the level residual clipped to "
        f"+-{t['level_clip']:g}; thresholds: "
        + ", ".join(f"`{s['signal']}` {s['level']['h']} (companion `{s['level']['companion']}`)"
                    for s in card["signals"] if "level" in s),
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
    (HERE / "MODEL_CARD.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
