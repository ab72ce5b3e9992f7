#!/usr/bin/env python3
"""Writes and checks models/parity/fixture.json, the train/serve parity fixture.

    python3 models/parity.py --write models/parity/fixture.json
    python3 models/parity.py --check models/parity/fixture.json

Each case is one watched signal over a few dozen 1 Hz ticks (its values, the engine speed,
and its companion's values when it has one), and what train.py's own functions make of
it: the input row of every window of the signal without a gap (`features`); whether that
row lies within the card's envelope for the forecaster's columns and for the consistency
check's (`within` with `FORECAST_CONDITIONS`, `LEVEL_CONDITIONS`); what each part did on the window,
"ran", "abstained" (a column outside the envelope) or "masked" (a gap in the engine speed,
or for the consistency check in the companion: masked, never imputed), as `masks` decides;
the committed model's raw outputs on every row (`joined_forward` with forecaster.onnx's
weights); the forecasts in signal units where they ran (`forecast`, `level_forecast`); the
standardised residuals (`residuals` with `masks`' forecast_ok and level_ok, checked equal
to `residual_streams` on the same run); the statistics (`statistics`, `level_statistic`)
and, through `held`, the tick at which each statistic would raise an alert at the card's
threshold and at a lower probe threshold it does cross. agent/tests/train_serve_parity.rs
reads the same file and asserts that the agent's ModelCard::features,
ModelCard::within_envelope, Model::forecast's Step (run where train.py runs, abstaining
where it abstains), ModelCard::forecast, ModelCard::level, score::Residuals and AlertState
give the same, with Detector::tick's masking.

Safeguards: no statistic lies within 1e-6 of a threshold it is compared with, no residual
within 1e-6 of the outlier limit, and no feature within 1e-6 (relative) of an envelope bound
other than a column the envelope pins to one value, so a last-bit difference between numpy
and Rust can flip neither a comparison nor an abstention.

--write is deterministic (the same bytes every run on one machine). --check recomputes
everything and compares: inputs and features exactly, the network's outputs within the
card's golden tolerance (float32 matrix products differ by a few ULPs between CPUs), and
everything after the network, recomputed from the fixture's own outputs, within 1e-9.
"""

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import train  # train.py beside this file, whatever the working directory

CARD = HERE / "forecaster.card.json"
COOLANT = "Vehicle.Powertrain.CombustionEngine.EngineCoolant.Temperature"
OIL = "Vehicle.Powertrain.CombustionEngine.EngineOil.Temperature"
FUEL = "Vehicle.Powertrain.FuelSystem.Temperature"
TOLERANCE = 1e-9
STATISTICS = ["score", "cusum", "outliers", "level"]
# No statistic may sit this close to a threshold it is compared with, so a last-digit
# difference between numpy and Rust can never flip a comparison.
MARGIN = 1e-6


def tank(n):
    return f"Vehicle.Cargo.Tank.Compartment{n}.Temperature"


def rpm(n, pattern=(850, 1200, 1450, 1600, 1375, 1100, 950), gaps=()):
    """Engine speed on the J1939 grid (1/8 rpm), piecewise linear through `pattern`, 4 ticks
    a segment; NaN at `gaps`."""
    out = []
    for t in range(n):
        i, f = divmod(t, 4)
        a, b = pattern[i % len(pattern)], pattern[(i + 1) % len(pattern)]
        out.append(round((a + (b - a) * f / 4) * 8) / 8)
    return with_gaps(out, gaps)


def with_gaps(values, gaps):
    return [float("nan") if t in gaps else float(v) for t, v in enumerate(values)]


def cases():
    """The inputs: (name, about, signal, values, engine speed, companion or None)."""
    c = []

    def case(name, about, signal, values, context, companion=None):
        c.append((name, about, signal, values, context, companion))

    n = 30
    case("coolant-warm-up",
         "coolant (1 degC steps) warming with its oil companion; a gap in the engine speed at "
         + "tick 14 masks the forecast and the consistency check on the 10 windows holding it, "
         + "and a gap in the oil at tick 20 masks the consistency check until tick 29 while the "
         + "forecast runs again from tick 24",
         COOLANT, [71 + t // 4 for t in range(n)], rpm(n, gaps={14}),
         with_gaps([60 + t * 5 / 32 for t in range(n)], {20}))
    n = 40
    climb = [1, 1, 0, 1, 1, 0, 1]
    case("coolant-runaway",
         "coolant held at 88, then climbing 5 degC every 7 ticks from tick 15 (a climb whose "
         + "every window stays inside the training envelope) while the oil barely moves: the "
         + "residual leans, the score, the CUSUM and the level EWMA cross their probe thresholds",
         COOLANT, [88 + sum(climb[i % 7] for i in range(max(0, t - 14))) for t in range(n)],
         rpm(n), [90 + t / 32 for t in range(n)])
    n = 60
    case("coolant-disagrees-with-oil",
         "coolant stuck at 97 while a cold oil (45 degC) warms: the level residual is clipped "
         + "and its EWMA climbs; from tick 40 it reads 127, above any coolant in training "
         + "(the card's envelope ends at 122): the forecaster abstains there, while the "
         + "consistency check (which never sees the coolant's own values) runs on",
         COOLANT, [97 + (30 if t >= 40 else 0) for t in range(n)],
         rpm(n, pattern=(700, 900, 1500, 1700, 1400)), [45 + t / 16 for t in range(n)])
    n = 20
    case("coolant-without-oil",
         "coolant with no oil on the bus: no companion, so zeros in the row and no "
         + "consistency check",
         COOLANT, [84 + (t % 3 == 0) for t in range(n)], rpm(n))
    n = 35
    case("oil-spikes",
         "oil (1/32 degC) steady at 92 with +2 degC spikes at ticks 12, 17, 22 and 27: the "
         + "first is an outlier (19 sigma); with a spike in its window the model widens its "
         + "spread, so the second and third (5.3, 5.6) are not and the fourth (6.02) is: two "
         + "outliers, one short of the card's count, and the probe count raises at 29",
         OIL, [92 + (t % 4) / 32 + (2 if t in (12, 17, 22, 27) else 0) for t in range(n)], rpm(n))
    n = 30
    case("oil-chatter",
         "oil (1/32 degC) at 92 whose reading chatters +1 degC every other tick from tick 13 "
         + "(a loose connector): past the first jump (an outlier, 9.9 sigma) no residual is an "
         + "outlier and the score stays near 2, under the card's threshold; its probe raises "
         + "at 15",
         OIL, [92 + (t % 2 if t >= 12 else 0) for t in range(n)], rpm(n))
    n = 35
    case("fuel-cold-dropout",
         "fuel at -6 degC (near the bottom of its training range) with the engine idling at "
         + "600 rpm, rising 1 degC every 5 ticks; a dropout at tick 10 stops the forecasts for "
         + "a window; from tick 21 every step leans the CUSUM, which raises at its card "
         + "threshold at tick 32",
         FUEL, with_gaps([-6 + t // 5 for t in range(n)], {10}), rpm(n, pattern=(600,)))
    n = 32
    case("oil-score-pending-into-dropout",
         "oil (1/32 degC) warming 1/32 degC a tick, 1/32 then 8/32 above that at ticks 14 and "
         + "15: the score is over its probe threshold at tick 15, pending, when a dropout at "
         + "tick 16 leaves no residual until tick 27; warming 3/32 a tick from then, the score "
         + "is over again from tick 27 and the debounce, started over, raises at 29",
         OIL, with_gaps([92 + t / 32 + {14: 1 / 32, 15: 8 / 32}.get(t, 0) + 2 * max(0, t - 26) / 32
                         for t in range(n)], {16}), rpm(n))
    n = 34
    case("fuel-drift-into-dropout",
         "fuel (1 degC) at 35 degC climbing 1 degC a tick from tick 15: a dropout at ticks "
         + "17..19 leaves no residual, the CUSUM carried at 4.6, until the window is whole "
         + "again (tick 29); it then climbs faster than any training window, and the "
         + "forecaster still judges it (it abstains on conditions, never on the signal's own "
         + "changes): the CUSUM passes its probe threshold at tick 30 and raises at 32",
         FUEL, with_gaps([35 + max(0, t - 14) for t in range(n)], {17, 18, 19}), rpm(n))
    n = 36
    case("coolant-step-into-dropout",
         "coolant at 88 against a warming oil, stepping +4 at tick 13 and +7 at tick 20 (an "
         + "outlier each, the level residual jumps); a dropout at ticks 22..24 leaves no "
         + "level until tick 34 and no "
         + "residual until 35: the outlier count (at its card threshold) and the level EWMA (at "
         + "its probe threshold), over and pending from tick 20, carry over and raise at 22, "
         + "inside the dropout; the CUSUM's probe raises at 16",
         COOLANT, with_gaps([88 + (4 if t >= 13 else 0) + (7 if t >= 20 else 0)
                             for t in range(n)], {22, 23, 24}),
         rpm(n), [90 + t / 32 for t in range(n)])
    n = 30
    case("tank3-heating-step",
         "compartment 3 (1 milli-degC) wandering near 14.3, stepping +0.15 degC at tick 18",
         tank(3), [(14297 + (t * 7) % 5 + (150 if t >= 18 else 0)) / 1000 for t in range(n)],
         rpm(n))
    n = 30
    case("tank8-drift-no-engine-speed",
         "compartment 8 drifting 4 milli-degC a tick from tick 10, with the engine speed not "
         + "available for ticks 5..16: a tank's rows carry no engine speed (zeros), so the gap "
         + "masks nothing and the forecast runs on every window",
         tank(8), [(21500 + 4 * max(0, t - 10)) / 1000 for t in range(n)],
         rpm(n, gaps=set(range(5, 17))))
    n = 30
    case("coolant-engine-speed-gap",
         "coolant near 90 against its oil, the engine speed missing at ticks 12 and 13: the "
         + "forecast and the consistency check are masked on the windows ending at ticks 12..22 "
         + "(never imputed), so no residual at ticks 13..23 and the level EWMA carried",
         COOLANT, [90 + (t % 5 == 0) for t in range(n)], rpm(n, gaps={12, 13}),
         [93 + t / 32 for t in range(n)])
    n = 30
    case("coolant-oil-gap",
         "coolant near 90 against a warming oil that is missing at ticks 14 and 15: the "
         + "forecast runs on every window, the consistency check is masked on the windows "
         + "ending at ticks 14..24 and its EWMA carried",
         COOLANT, [90 + (t % 4 == 1) for t in range(n)], rpm(n),
         with_gaps([85 + t / 16 for t in range(n)], {14, 15}))
    n = 30
    case("fuel-engine-speed-gap",
         "fuel (1 degC) near 41, the engine speed missing at ticks 15 and 16: the forecast is "
         + "masked on the windows ending at ticks 15..25, as the coolant's is, while a tank's "
         + "runs through such a gap",
         FUEL, [41 + (t % 6 == 0) for t in range(n)], rpm(n, gaps={15, 16}))
    n = 40
    context = rpm(n)
    context[12] = context[13] = 4200.0
    case("coolant-beyond-envelope",
         "coolant near 95 with a hot oil climbing from 124 degC; the engine speed at 4200 rpm "
         + "at ticks 12 and 13, beyond any training row: the forecaster and the consistency "
         + "check both abstain on the windows ending at ticks 12..22; from tick 33 the oil's "
         + "window passes 130.5 degC, beyond the consistency check's envelope, which abstains "
         + "while the forecaster runs",
         COOLANT, [95 + (t % 3 == 2) for t in range(n)], context,
         [124 + t / 5 for t in range(n)])
    return c


def load_model():
    """The committed card, and the weights of the ONNX file it names (checked by SHA-256)."""
    card = json.loads(CARD.read_text())
    data = (HERE / card["onnx"]).read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    if sha != card["sha256"]:
        sys.exit(f"{card['onnx']}: SHA-256 {sha}, the card says {card['sha256']}")
    init = {t.name: numpy_helper.to_array(t) for t in onnx.load_from_string(data).graph.initializer}
    joined = [init[name] for name in ("w1", "b1", "w2", "b2")]
    for i, g in enumerate(card["golden"]):
        got = train.joined_forward(joined, np.array([g["input"]], np.float32))[0]
        if np.abs(got - np.array(g["output"], np.float32)).max() > card["golden_tolerance"]:
            sys.exit(f"golden vector {i}: numpy gives {got}, the card says {g['output']}")
    return card, joined


def raised(stat, thresholds, at_least):
    """The tick at which a statistic held for the debounce (train.held) first passes each
    threshold: the agent raises on the last of the DEBOUNCE_TICKS ticks; None if never."""
    h = train.held(stat)
    out = []
    for threshold in thresholds:
        over = h >= threshold if at_least else h > threshold
        hit = np.flatnonzero(over)
        out.append([threshold, int(hit[0]) + train.DEBOUNCE_TICKS - 1 if len(hit) else None])
    return out


def states(ok, whole_inputs, inside):
    """Per window, what the model did: "ran", "abstained" (its inputs whole, a column of its
    group outside the envelope) or "masked" (a gap in an input it needs)."""
    out = ["ran" if o else "masked" if not w else "abstained"
           for o, w, i in zip(ok, whole_inputs, inside)]
    assert all((s == "ran") == bool(o) and (s != "abstained" or not i)
               for s, o, i in zip(out, ok, inside)), "train.masks disagrees with whole and within"
    return out


def evaluate(spec, card, joined, values, context, companion, outputs):
    """train.py's functions on one case. `outputs` are the raw model outputs (float32) of
    every window's row: with None they are computed with the committed model."""
    context_norm = card["context"]
    env = card["envelope"]
    s = np.array(values, np.float64)
    run = {spec["signal"]: s, train.CONTEXT: np.array(context, np.float64)}
    if companion is not None:
        assert "level" in spec, f"{spec['signal']} has no companion in the card"
        run[spec["level"]["companion"]] = np.array(companion, np.float64)
    k, w, ctx, comp = train.signal_windows(run, spec)
    x = train.features(w, ctx, comp, spec, context_norm)
    # Where the forecast runs and where the consistency check does (train.masks: a gap in
    # the engine speed or the companion masks, a row outside the envelope abstains).
    forecast_ok, level_ok = train.masks(x, ctx, comp, spec, env)
    inside = (train.within(env, spec["kind"], x, train.FORECAST_CONDITIONS),
              train.within(env, spec["kind"], x, train.LEVEL_CONDITIONS))
    if outputs is None:
        out32 = train.joined_forward(joined, x)
        # The fixture's residuals are residual_streams' own, on this same run.
        streams = list(train.residual_streams(joined, [("case", run)], [spec], context_norm, env))
    else:
        out32 = np.array([outputs[t] for t in k], np.float32).reshape(len(k), 4)
        streams = None
    out = out32.astype(np.float64)
    r, z = train.residuals(s, k, w, comp, out, spec, forecast_ok, level_ok)
    if streams is not None:
        [(_, _, r_stream, z_stream)] = streams
        assert r.tobytes() == r_stream.tobytes() and z.tobytes() == z_stream.tobytes()
    mean, sigma = train.forecast(out, w[:, -1], spec)
    lmean, lsigma = train.level_forecast(out, spec)
    score, cusum, outliers = train.statistics(r)
    level = train.level_statistic(z)

    n = len(s)
    rows = [None] * n
    raw = [None] * n
    within = [None] * n
    forecaster = [None] * n
    consistency = [None] * n
    fc = [None] * n
    lfc = [None] * n
    has_level = "level" in spec and comp is not None
    ctx_whole = train.context_whole(ctx, spec)
    f_state = states(forecast_ok, ctx_whole, inside[0])
    if has_level:
        l_state = states(level_ok, ctx_whole & train.whole(comp), inside[1])
    else:
        assert not level_ok.any(), "a consistency check without a companion"
    for i, t in enumerate(k):
        rows[t] = x[i]
        raw[t] = out32[i]
        within[t] = (bool(inside[0][i]), bool(inside[1][i]))
        forecaster[t] = f_state[i]
        if forecast_ok[i]:
            fc[t] = (mean[i], sigma[i])
        if has_level:
            consistency[t] = l_state[i]
            if level_ok[i]:
                lfc[t] = (lmean[i], lsigma[i])
    # No row within a float32 rounding of an envelope bound (except a column the envelope
    # pins to one value, such as the kind's), so the agent's row cannot fall on the other
    # side of it.
    low = np.array(env[spec["kind"]]["low"], np.float32).astype(np.float64)
    high = np.array(env[spec["kind"]]["high"], np.float32).astype(np.float64)
    free = low < high
    for bound in (low, high):
        near = np.abs(x.astype(np.float64) - bound)[:, free] / np.maximum(1.0, np.abs(bound[free]))
        assert not len(near) or near.min() > MARGIN, \
            f"{spec['signal']}: a feature within {near.min()} of an envelope bound"
    th = {"score": spec["score"], "cusum": spec["cusum_h"], "outliers": spec["outlier_count"],
          "level": spec["level"]["h"] if has_level else None}
    stats = {"score": score, "cusum": cusum, "outliers": outliers, "level": level}
    alerts = {}
    for name in STATISTICS:
        if th[name] is None:
            continue
        peak = float(train.held(stats[name]).max())
        thresholds = [th[name]]
        if name == "outliers":
            if 0 < peak < th[name]:
                thresholds.append(int(peak))
        elif peak > 0:
            thresholds.append(round(0.75 * peak, 3))
        alerts[name] = raised(stats[name], thresholds, at_least=name == "outliers")
        finite = stats[name][np.isfinite(stats[name])]
        for threshold in thresholds if name != "outliers" else []:  # counts are exact
            near = np.abs(finite - threshold).min() if len(finite) else 1.0
            assert near > MARGIN, f"{spec['signal']}: {name} within {near} of {threshold}"
    finite_r = np.abs(r[np.isfinite(r)])
    assert not len(finite_r) or np.abs(finite_r - train.OUTLIER).min() > MARGIN, \
        "a residual at the outlier limit"
    return {
        "features": rows, "outputs": raw, "within": within, "forecaster": forecaster,
        "consistency": consistency, "forecast": fc, "level_forecast": lfc,
        "residual": r, "level_residual": z, "cusum": cusum, "outliers": outliers,
        "level": level if has_level else None, "raised": alerts,
    }


def f64(v):
    v = float(v)
    return "null" if np.isnan(v) else repr(v)


def f32(v):
    text = str(np.float32(v))
    assert np.float32(float(text)) == np.float32(v), text
    return text


def array(values, fmt=f64):
    return "[" + ",".join("null" if v is None else fmt(v) for v in values) + "]"


def rows(values, fmt):
    """One tick a line: null, or the tick's numbers."""
    lines = ["null" if v is None else array(v, fmt) for v in values]
    return "[\n    " + ",\n    ".join(lines) + "\n   ]"


def gates(e):
    """Where the model ran, as fixture text: per window, whether its row lies within the
    envelope for the forecaster's columns and the consistency check's (train.within), and
    what each did ("ran", "abstained", "masked"; the consistency check null without one)."""
    return [
        ("within", rows(e["within"], lambda v: "true" if v else "false")),
        ("forecaster", array(e["forecaster"], json.dumps)),
        ("consistency", array(e["consistency"], json.dumps)),
    ]


def derived(e):
    """The fields of a case that follow from the model's outputs, as fixture text."""
    return [
        ("forecast", rows(e["forecast"], f64)),
        ("level_forecast", rows(e["level_forecast"], f64)),
        ("residual", array(e["residual"])),
        ("level_residual", array(e["level_residual"])),
        ("cusum", array(e["cusum"])),
        ("outliers", array(e["outliers"], lambda v: str(int(v)))),
        ("level", "null" if e["level"] is None else array(e["level"])),
        ("raised", json.dumps(e["raised"], separators=(",", ":"))),
    ]


def fixture_text(card, joined):
    th = card["thresholds"]
    head = {
        "about": "Train/serve parity fixture, written by `python3 models/parity.py --write "
                 "models/parity/fixture.json` from train.py's functions; do not edit. "
                 "agent/tests/train_serve_parity.rs checks the agent against it.",
        "card": {"name": card["name"], "version": card["version"], "sha256": card["sha256"]},
        "window": train.WINDOW,
        # train.py's constants, which the card's thresholds must equal.
        "thresholds": {"debounce_ticks": train.DEBOUNCE_TICKS, "cusum_k": train.CUSUM_K,
                       "cusum_clip": train.CUSUM_CLIP, "outlier": train.OUTLIER,
                       "outlier_window": train.OUTLIER_WINDOW, "level_tau": train.LEVEL_TAU,
                       "level_clip": train.LEVEL_CLIP},
    }
    if head["thresholds"] != th:
        sys.exit(f"train.py's thresholds {head['thresholds']} are not the card's {th}: "
                 "the committed model was calibrated with the card's")
    specs = {s["signal"]: s for s in card["signals"]}
    parts = []
    for name, about, signal, values, context, companion in cases():
        spec = specs[signal]
        e = evaluate(spec, card, joined, values, context, companion, None)
        fields = [
            ("name", json.dumps(name)),
            ("about", json.dumps(about)),
            ("signal", json.dumps(signal)),
            ("values", array(values)),
            ("context", array(context)),
            ("companion", "null" if companion is None else array(companion)),
            ("features", rows(e["features"], f32)),
        ] + gates(e) + [
            ("outputs", rows(e["outputs"], f32)),
        ] + derived(e)
        lines = [f'   "{key}": {text}' for key, text in fields]
        parts.append("  {\n" + ",\n".join(lines) + "\n  }")
    body = json.dumps(head, indent=1)[:-2]
    return body + ',\n "cases": [\n' + ",\n".join(parts) + "\n ]\n}\n"


def close(a, b, tol):
    """Equal within tol * max(1, |b|), None and NaN matching only themselves."""
    if a is None or b is None:
        return a is None and b is None
    return abs(a - b) <= tol * max(1.0, abs(b))


def compare(where, stored, fresh, tol, problems):
    """Appends where `stored` (the fixture) and `fresh` (train.py now) differ."""
    if isinstance(fresh, list) or isinstance(stored, list):
        if not (isinstance(fresh, list) and isinstance(stored, list)) or len(stored) != len(fresh):
            problems.append(f"{where}: the fixture has {json.dumps(stored)[:80]}, "
                            f"train.py gives {json.dumps(fresh)[:80]}")
            return
        for i, (s, f) in enumerate(zip(stored, fresh)):
            compare(f"{where}[{i}]", s, f, tol, problems)
    elif isinstance(fresh, dict) or isinstance(stored, dict):
        if not (isinstance(fresh, dict) and isinstance(stored, dict)) or stored.keys() != fresh.keys():
            problems.append(f"{where}: the fixture has {stored}, train.py gives {fresh}")
            return
        for key in fresh:
            compare(f"{where}.{key}", stored[key], fresh[key], tol, problems)
    elif isinstance(fresh, str) or isinstance(stored, str) or tol is None:
        if stored != fresh:
            problems.append(f"{where}: the fixture has {stored!r}, train.py gives {fresh!r}")
    elif not close(stored, fresh, tol):
        problems.append(f"{where}: the fixture has {stored!r}, train.py gives {fresh!r} "
                        f"(tolerance {tol:g})")


def nans(values):
    """A fixture's list with NaN for null."""
    return [float("nan") if v is None else v for v in values]


def check(path, card, joined):
    """Recompute and compare; returns the problems found."""
    stored = json.loads(Path(path).read_text())
    fresh = json.loads(fixture_text(card, joined))
    problems = []
    for key in ("about", "card", "window", "thresholds"):
        compare(key, stored.get(key), fresh[key], None, problems)
    names = [c["name"] for c in fresh["cases"]]
    if [c.get("name") for c in stored.get("cases", [])] != names:
        return problems + [f"cases: {[c.get('name') for c in stored.get('cases', [])]} != {names}"]
    specs = {s["signal"]: s for s in card["signals"]}
    for old, new in zip(stored["cases"], fresh["cases"]):
        where = old["name"]
        for key in ("about", "signal", "values", "context", "companion", "features", "within",
                    "forecaster", "consistency"):
            compare(f"{where}.{key}", old.get(key), new[key], None, problems)
        compare(f"{where}.outputs", old["outputs"], new["outputs"], card["golden_tolerance"],
                problems)
        # After the network, from the fixture's own outputs, so a CPU whose float32 products
        # differ in the last digits still has to reproduce every statistic.
        e = evaluate(specs[old["signal"]], card, joined, nans(old["values"]), nans(old["context"]),
                     None if old["companion"] is None else nans(old["companion"]), old["outputs"])
        for key, text in derived(e):
            compare(f"{where}.{key}", old[key], json.loads(text), TOLERANCE, problems)
    return problems


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", metavar="PATH", help="write the fixture")
    mode.add_argument("--check", metavar="PATH", help="recompute and compare with the fixture")
    args = parser.parse_args()
    card, joined = load_model()
    if args.write:
        text = fixture_text(card, joined)
        Path(args.write).parent.mkdir(parents=True, exist_ok=True)
        Path(args.write).write_text(text)
        print(f"wrote {args.write}: {len(cases())} cases, {len(text)} bytes")
        return 0
    problems = check(args.check, card, joined)
    if problems:
        for p in problems[:40]:
            print("  " + p, file=sys.stderr)
        print(f"{args.check} is stale: {len(problems)} values differ from what train.py's "
              f"functions give now; run `python3 models/parity.py --write {args.check}` "
              "and check agent/tests/train_serve_parity.rs still passes", file=sys.stderr)
        return 1
    same = Path(args.check).read_text() == fixture_text(card, joined)
    print(f"{args.check}: train.py's functions reproduce it"
          + ("" if same else " (outputs within the golden tolerance, the rest within 1e-9)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
