"""train.py --data on data a fleet could bring: the 1 Hz CSV of the repository's real truck
log, and a simulated fleet whose CSVs hold only the coolant, the road speed and the engine
speed. Each either trains, and the agent loads the model (`vigil replay --model`, which
checks the SHA-256, the shapes and the golden vectors through tract), or is refused with
the figure that says why; the test checks which, and the message.

    python3 models/test_train.py      # test.sh runs it after `cargo test`, which builds both:

the `vigil` binary (VIGIL_BIN, default target/debug/vigil) and the lab example that writes
the simulated fleet (FLEET_CSV_BIN, default target/debug/examples/fleet_csv).
"""

import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
COOLANT = "Vehicle.Powertrain.CombustionEngine.EngineCoolant.Temperature"
SPEED = "Vehicle.Speed"
ENGINE_SPEED = "Vehicle.Powertrain.CombustionEngine.Speed"
FUEL = "Vehicle.Powertrain.FuelSystem.Temperature"
REAL_LOG_CSV = ROOT / "tests/data/j1939-truck-css.1hz.csv"
# Eight trucks of 2.5 h: every second file is held out, so 10 h train and 10 h calibrate,
# the fewest hours a calibration against a budget per vehicle-day (10 h) accepts.
VEHICLES, HOURS, FIRST_SEED = 8, 2.5, 60001


def binary(variable, default):
    path = Path(os.environ.get(variable, ROOT / default))
    if not path.exists():
        raise SystemExit(f"{path} is missing: build it (`cargo test` builds both), or set {variable}")
    return path


def train(data, out, *extra):
    """Runs train.py --data with one epoch (the test checks what it accepts and writes, not
    how well it fits)."""
    return subprocess.run([sys.executable, str(HERE / "train.py"), "--data", str(data), "--out", str(out),
                           "--epochs", "1", *extra], capture_output=True, text=True, check=False)


def rewrite(path, edit):
    """Rewrites a CSV in place; `edit(header, row_index, row)` changes a row's cells."""
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    for i, row in enumerate(rows[1:]):
        edit(rows[0], i, row)
    with open(path, "w", newline="") as f:
        csv.writer(f, lineterminator="\n").writerows(rows)


class TrainOnData(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = Path(tempfile.mkdtemp(prefix="vigil-train-"))
        cls.vigil = binary("VIGIL_BIN", "target/debug/vigil")
        cls.fleet = cls.tmp / "fleet"
        subprocess.run([str(binary("FLEET_CSV_BIN", "target/debug/examples/fleet_csv")), str(cls.fleet),
                        str(FIRST_SEED), str(VEHICLES), str(HOURS), f"{COOLANT},{SPEED},{ENGINE_SPEED}"],
                       check=True, capture_output=True)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp)

    def copy_of_fleet(self, name):
        dest = self.tmp / name
        shutil.copytree(self.fleet, dest)
        return dest

    def assertRefused(self, result, *figures):
        self.assertEqual(result.returncode, 2, result.stdout + result.stderr)
        self.assertIn("train.py: refused: the data cannot support a model", result.stderr)
        for figure in figures:
            self.assertIn(figure, result.stderr)

    def test_the_real_truck_log_is_refused_for_its_hours_and_its_constant_speed(self):
        data = self.tmp / "real"
        data.mkdir()
        shutil.copy(REAL_LOG_CSV, data)
        result = train(data, self.tmp / "real-out")
        # 127 s of an idling engine, cut in two halves: the road speed never leaves 0, and
        # every other signal has 55 s of windows to train on.
        self.assertRefused(
            result,
            "0.035 vehicle-hours in 1 file(s) (0.018 h to train, 0.018 h to calibrate)",
            f"{SPEED}: constant, 0 in all 126 readings of 1 file(s)",
            f"{COOLANT}: 0.015 h of whole 10 s windows to train on; needs at least 2.58 h",
            f"{FUEL}: 0.015 h of whole 10 s windows to train on; needs at least 2.58 h",
            "calibration: 0.018 vehicle-hours; needs at least 10 h (one vehicle-day)",
        )
        self.assertFalse((self.tmp / "real-out" / "forecaster.card.json").exists())

    def test_coolant_speed_and_engine_speed_train_a_model_the_agent_loads(self):
        out = self.tmp / "model"
        result = train(self.fleet, out)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        card = json.loads((out / "forecaster.card.json").read_text())
        self.assertEqual([s["signal"] for s in card["signals"]], [COOLANT, SPEED])
        self.assertEqual(card["kind_names"], ["coolant", SPEED])
        self.assertEqual(card["context"]["signal"], ENGINE_SPEED)
        self.assertTrue(all(s["context"] for s in card["signals"]))
        self.assertFalse(any("level" in s for s in card["signals"]), "no oil: no consistency check")
        self.assertEqual(card["input"]["shape"], [1, 3 * 10 + 1 + 2])
        # The resolutions are the bus's: 1 degC for the coolant, 1/256 km/h for the speed.
        self.assertEqual([s["resolution"] for s in card["signals"]], [1.0, 1 / 256])
        seen = card["training"]["data_seen"]
        self.assertEqual(len(seen["training"]["files"]), VEHICLES // 2)
        self.assertEqual(len(seen["calibration"]["files"]), VEHICLES // 2)
        self.assertAlmostEqual(seen["calibration"]["hours"], VEHICLES // 2 * HOURS, delta=0.01)
        budget = card["training"]["calibration"]["budget"]
        self.assertEqual(budget["per_vehicle_day"], 0.1)
        # No alarm in 10 calibration hours bounds the rate at 3.0 per 10 h at 95 %: 3 per
        # vehicle-day, far from the budget of 0.1, which needs 300 h.
        self.assertEqual(budget["alarms"], 0)
        self.assertAlmostEqual(budget["upper_95_per_vehicle_day"], 3.0, delta=0.01)
        self.assertFalse(budget["met"])
        self.assertEqual(budget["hours_needed"], 300)
        self.assertIn("at most 3 false alarms per vehicle-day at 95 %", result.stdout)
        self.assertIn("## Data", (out / "MODEL_CARD.md").read_text())
        # The agent loads it: vigil replay checks the card and the golden vectors through
        # tract before it judges a drive, and names the model in its summary.
        replay = subprocess.run([str(self.vigil), "replay", "--model", str(out / "forecaster.card.json"),
                                 "--out", str(self.tmp / "alerts.jsonl"),
                                 "--input", str(self.fleet / f"vehicle-{FIRST_SEED}.csv")],
                                capture_output=True, text=True, check=False)
        self.assertEqual(replay.returncode, 0, replay.stdout + replay.stderr)
        self.assertIn("model:fleet-forecaster/1.0.0", replay.stdout + replay.stderr)

    def test_a_fleet_whose_coolant_never_moves_is_refused(self):
        data = self.copy_of_fleet("constant")
        for path in data.glob("*.csv"):
            rewrite(path, lambda header, i, row: row.__setitem__(header.index(COOLANT), "85"))
        result = train(data, self.tmp / "constant-out")
        self.assertRefused(result, f"{COOLANT}: constant, 85 in all {VEHICLES * int(HOURS * 3600)} readings")

    def test_a_speed_missing_from_most_of_a_file_is_refused(self):
        data = self.copy_of_fleet("gaps")
        path = data / f"vehicle-{FIRST_SEED + 1}.csv"

        def blank_speed(header, i, row):
            if i % 10 < 7:
                row[header.index(SPEED)] = ""
        rewrite(path, blank_speed)
        result = train(data, self.tmp / "gaps-out")
        self.assertRefused(result, f"{SPEED}: missing in 70% of the ticks of {path.name}")

    def test_one_vehicle_is_too_few_hours(self):
        data = self.tmp / "one"
        data.mkdir()
        shutil.copy(self.fleet / f"vehicle-{FIRST_SEED}.csv", data)
        result = train(data, self.tmp / "one-out", "--signals", COOLANT)
        self.assertRefused(result, "2.500 vehicle-hours in 1 file(s) (1.250 h to train, 1.250 h to calibrate)",
                           f"{COOLANT}: 1.2", "needs at least 2.2",
                           "calibration: 1.250 vehicle-hours; needs at least 10 h")

    def test_a_signal_the_data_lacks_is_named(self):
        result = train(self.fleet, self.tmp / "lacks-out", "--signals", f"{COOLANT},{FUEL}")
        self.assertRefused(result, f"{FUEL}: not a column of the data")


if __name__ == "__main__":
    unittest.main(verbosity=2)
