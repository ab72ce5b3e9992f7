#!/usr/bin/env python3
"""Writes and checks models/parity/fixture.json, the train/serve parity fixture.

    python3 models/parity.py --write models/parity/fixture.json
    python3 models/parity.py --check models/parity/fixture.json

Each case is one watched signal over a few dozen 1 Hz ticks (its values, the engine speed,
and its companion's values when it has one), and what train.py's own functions make of
it: the input row of every full window (`features`), the committed model's raw outputs on
those rows (`joined_forward` with forecaster.onnx's weights), the forecasts in signal
units (`forecast`, `level_forecast`), the standardised residuals (`residuals`, the same
arithmetic `residual_streams` runs), the statistics (`statistics`, `level_statistic`) and,
through `held`, the tick at which each statistic would raise an alert at the card's
threshold and at a lower probe threshold it does cross. agent/tests/train_serve_parity.rs
reads the same file and asserts that the agent's ModelCard::features, ModelCard::forecast,
ModelCard::level, score::Residuals and AlertState give the same.

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
         + "tick 14 and in the oil at tick 20 (both become 0 in the row)",
         COOLANT, [71 + t // 4 for t in range(n)], rpm(n, gaps={14}),
         with_gaps([60 + t * 5 / 32 for t in range(n)], {20}))
    n = 40
    case("coolant-runaway",
         "coolant held at 88, then climbing 1 degC a tick from tick 15 while the oil barely "
         + "moves: the residual leans (CUSUM), the score crosses",
         COOLANT, [88 + max(0, t - 14) for t in range(n)], rpm(n),
         [90 + t / 32 for t in range(n)])
    n = 60
    case("coolant-disagrees-with-oil",
         "coolant stuck at 97 while a cold oil (45 degC) warms: the level residual is clipped "
         + "and its EWMA climbs; a +6 step at tick 40",
         COOLANT, [97 + (6 if t >= 40 else 0) for t in range(n)],
         rpm(n, pattern=(700, 900, 1800, 2200, 1900)), [45 + t / 16 for t in range(n)])
    n = 20
    case("coolant-without-oil",
         "coolant with no oil on the bus: no companion, so zeros in the row and no "
         + "consistency check",
         COOLANT, [84 + (t % 3 == 0) for t in range(n)], rpm(n))
    n = 35
    case("oil-spikes",
         "oil (1/32 degC) steady at 92 with +4 degC spikes at ticks 15 and 24: two outliers "
         + "in the window",
         OIL, [92 + (t % 4) / 32 + (4 if t in (15, 24) else 0) for t in range(n)], rpm(n))
    n = 35
    case("fuel-extreme-cold-dropout",
         "fuel at -30 degC (far below its range) with the engine off (0 rpm), rising 1 degC "
         + "every 3 ticks; a dropout at tick 10 stops the forecasts for a window",
         FUEL, with_gaps([-30 + t // 3 for t in range(n)], {10}), rpm(n, pattern=(0,)))
    n = 32
    case("oil-score-pending-into-dropout",
         "oil (1/32 degC) warming 1/32 degC a tick, 1/32 then 4/32 above that at ticks 14 and "
         + "15: the score is over its thresholds at tick 15, pending, when a dropout at tick 16 "
         + "leaves no residual until tick 27; warming 3/32 a tick from then, the score is over "
         + "again from tick 27 and the debounce, started over, raises at 29",
         OIL, with_gaps([92 + t / 32 + {14: 1 / 32, 15: 4 / 32}.get(t, 0) + 2 * max(0, t - 26) / 32
                         for t in range(n)], {16}), rpm(n))
    n = 34
    case("fuel-drift-into-dropout",
         "fuel (1 degC) near 35 degC leaning upward from tick 15: the CUSUM passes its card "
         + "threshold at tick 16, pending, when a dropout at ticks 17..19 leaves no residual "
         + "until tick 30; carried over it stays over, so Drift raises at 18, inside the dropout",
         FUEL, with_gaps([35 + t // 6 + max(0, t - 14) for t in range(n)], {17, 18, 19}), rpm(n))
    n = 36
    case("coolant-step-into-dropout",
         "coolant at 88 against a warming oil, stepping +12 at tick 19 (two outliers, the level "
         + "residual jumps); a dropout at ticks 22..24 leaves no level until tick 34 and no "
         + "residual until 35: the outlier count (at its card threshold) and the level EWMA (at "
         + "its probe threshold), over and pending from tick 20, carry over and raise at 22, "
         + "inside the dropout; the CUSUM's probe, raised at 21, stays over across it",
         COOLANT, with_gaps([88 + (12 if t >= 19 else 0) for t in range(n)], {22, 23, 24}),
         rpm(n), [90 + t / 32 for t in range(n)])
    n = 30
    case("tank3-heating-step",
         "compartment 3 (1 milli-degC) wandering near 14.3, stepping +0.25 degC at tick 18",
         tank(3), [(14297 + (t * 7) % 5 + (250 if t >= 18 else 0)) / 1000 for t in range(n)],
         rpm(n))
    n = 30
    case("tank8-drift-no-engine-speed",
         "compartment 8 drifting 4 milli-degC a tick from tick 10, with the engine speed not "
         + "available for ticks 5..16",
         tank(8), [(21500 + 4 * max(0, t - 10)) / 1000 for t in range(n)],
         rpm(n, gaps=set(range(5, 17))))
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


def evaluate(spec, card, joined, values, context, companion, outputs):
    """train.py's functions on one case. `outputs` are the raw model outputs (float32) per
    tick, None where no forecast: with None they are computed with the committed model."""
    context_norm = card["context"]
    s = np.array(values, np.float64)
    run = {spec["signal"]: s, train.CONTEXT: np.array(context, np.float64)}
    if companion is not None:
        assert "level" in spec, f"{spec['signal']} has no companion in the card"
        run[spec["level"]["companion"]] = np.array(companion, np.float64)
    k, w, ctx, comp = train.signal_windows(run, spec)
    x = train.features(w, ctx, comp, spec, context_norm)
    if outputs is None:
        out32 = train.joined_forward(joined, x)
        # The fixture's residuals are residual_streams' own, on this same run.
        streams = list(train.residual_streams(joined, [("case", run)], [spec], context_norm))
    else:
        out32 = np.array([outputs[t] for t in k], np.float32).reshape(len(k), 4)
        streams = None
    out = out32.astype(np.float64)
    r, z = train.residuals(s, k, w, comp, out, spec)
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
    fc = [None] * n
    lfc = [None] * n
    has_level = "level" in spec and comp is not None
    for i, t in enumerate(k):
        rows[t] = x[i]
        raw[t] = out32[i]
        fc[t] = (mean[i], sigma[i])
        if has_level:
            lfc[t] = (lmean[i], lsigma[i])
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
    assert np.abs(finite_r - train.OUTLIER).min() > MARGIN, "a residual at the outlier limit"
    return {
        "features": rows, "outputs": raw, "forecast": fc, "level_forecast": lfc,
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
        for key in ("about", "signal", "values", "context", "companion", "features"):
            compare(f"{where}.{key}", old[key], new[key], None, problems)
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
