"""Whole-process decode: the release `vigil decode` against cantools' decode loop, CPU seconds.

    python3 agent/benches/decode_process.py [--repeat N] [--runs N] [--vigil PATH]

Both read the same log and the same DBC (deploy/dbc/vigil-j1939.dbc): the real truck log
(tests/data/j1939-truck-css.candump.log, 57,849 frames) written N times one after the other
into a temporary file, each copy's timestamps moved on by the log's length so time only
goes forward (default 20 copies, 1.16 M frames: long enough that start-up is a small part of
either figure). Each side runs as its own process, alternately, `--runs` times (default 5);
its CPU time (user + sys, from wait4) is the figure, the median run is reported, as frames
per CPU-second.

- vigil: `vigil decode --dbc DBC --input LOG` with its CSV rows going to /dev/null. It
  parses every line, decodes every DBC signal, reassembles transport sessions and DM1 and
  formats every row. The binary is `target/release/vigil`, built first with
  `cargo build --release --locked -p vigil` (a no-op when fresh), or the one `--vigil` names.
- cantools: this file run with `--cantools DBC LOG` by cantools' own interpreter. It is the
  decode loop of cantools_decode.py: each line split, its id and data parsed, the message
  looked up in a dict built once and decoded with `decode(data, decode_choices=False)`,
  the fastest path cantools offers; it formats and writes nothing, which only favours it.

cantools is run from `$VIGIL_CANTOOLS_PYTHON`, else from target/cantools-venv, created with
`python3 -m venv` and `pip install cantools==45.1.0` on first run.

Prints each figure with its target beside it and exits 1 when the ratio misses the target
(10x), 2 when a side cannot run.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile

TARGET_RATIO = 10.0
CANTOOLS_VERSION = "45.1.0"


def cantools_loop(dbc, log):
    """The cantools side, run in its own process: one pass over the log, each line parsed
    and its frame decoded as it is read."""
    import cantools

    db = cantools.database.load_file(dbc)
    by_id = {m.frame_id: m for m in db.messages}
    frames = decoded = 0
    with open(log) as f:
        for line in f:
            parts = line.split()
            if len(parts) != 3 or "#" not in parts[2]:
                continue
            ident, data = parts[2].split("#", 1)
            frames += 1
            message = by_id.get(int(ident, 16))
            if message is not None:
                message.decode(bytes.fromhex(data), decode_choices=False)
                decoded += 1
    print(f"{frames} frames, {decoded} decoded by cantools {cantools.__version__}", file=sys.stderr)


def repeated_log(source, copies, out):
    """Writes `copies` of the candump -l log `source` to `out`, each one's seconds moved on
    by the log's span (plus one second); returns the frames written."""
    with open(source) as f:
        lines = [line.rstrip("\n") for line in f if line.strip()]
    stamps = [line[1 : line.index(".")] for line in lines]
    span = int(stamps[-1]) - int(stamps[0]) + 1
    frames = 0
    with open(out, "w") as f:
        for copy in range(copies):
            shift = copy * span
            for line, secs in zip(lines, stamps):
                f.write(f"({int(secs) + shift}{line[1 + len(secs):]}\n")
                frames += 1
    return frames


def cpu_seconds(command):
    """Runs `command` with its stdout to /dev/null; its user + sys CPU seconds."""
    with open(os.devnull, "wb") as devnull:
        child = subprocess.Popen(command, stdout=devnull, stderr=subprocess.PIPE)
        stderr = child.stderr.read()
        _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        print(f"{command[0]} failed ({child.returncode}): {stderr.decode(errors='replace')}")
        sys.exit(2)
    return usage.ru_utime + usage.ru_stime, stderr.decode(errors="replace").strip()


def cantools_python(root):
    python = os.environ.get("VIGIL_CANTOOLS_PYTHON")
    if python:
        return python
    venv = os.path.join(root, "target", "cantools-venv")
    python = os.path.join(venv, "bin", "python")
    if not os.path.exists(python):
        print(f"creating {venv} and installing cantools {CANTOOLS_VERSION}", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", venv], check=True)
        pip = os.path.join(venv, "bin", "pip")
        subprocess.run([pip, "install", "--quiet", f"cantools=={CANTOOLS_VERSION}"], check=True)
    return python


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "--cantools":
        cantools_loop(sys.argv[2], sys.argv[3])
        return
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("--repeat", type=int, default=20, help="copies of the truck log")
    args.add_argument("--runs", type=int, default=5, help="runs of each side")
    args.add_argument("--vigil", help="the vigil binary (default: build target/release/vigil)")
    args = args.parse_args()

    root = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
    dbc = os.path.join(root, "deploy", "dbc", "vigil-j1939.dbc")
    source = os.path.join(root, "tests", "data", "j1939-truck-css.candump.log")
    vigil = args.vigil
    if vigil is None:
        build = ["cargo", "build", "--release", "--locked", "-p", "vigil", "--bin", "vigil"]
        subprocess.run(build, cwd=root, check=True)
        vigil = os.path.join(root, "target", "release", "vigil")
    python = cantools_python(root)

    with tempfile.TemporaryDirectory() as tmp:
        log = os.path.join(tmp, "truck.log")
        frames = repeated_log(source, args.repeat, log)
        sides = {
            "vigil": [vigil, "decode", "--dbc", dbc, "--input", log],
            "cantools": [python, os.path.abspath(__file__), "--cantools", dbc, log],
        }
        print(
            f"decode, whole process: {frames} frames ({args.repeat} copies of {source}), "
            f"DBC {dbc}; CPU seconds (user + sys), median of {args.runs} alternating runs"
        )
        times = {name: [] for name in sides}
        notes = {}
        for _ in range(args.runs):
            for name, command in sides.items():
                seconds, note = cpu_seconds(command)
                times[name].append(seconds)
                notes[name] = note.splitlines()[-1] if note else ""
        rates = {}
        for name, runs in times.items():
            median = statistics.median(runs)
            rates[name] = frames / median
            spread = ", ".join(f"{t:.3f}" for t in runs)
            print(f"  {name:<8} {rates[name] / 1e6:6.2f} M frames per CPU-second "
                  f"(median {median:.3f} s of {spread})")
            print(f"           {notes[name]}")
    ratio = rates["vigil"] / rates["cantools"]
    verdict = "met" if ratio >= TARGET_RATIO else "NOT MET"
    print(f"decode ratio {ratio:.1f}x (target >= {TARGET_RATIO:g}x): {verdict}")
    sys.exit(0 if ratio >= TARGET_RATIO else 1)


if __name__ == "__main__":
    main()
