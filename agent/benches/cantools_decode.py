"""The cantools side of `cargo bench -p vigil-agent --bench decode`: the same candump log, the same DBC.

Prints one JSON object: frames/s decoding pre-parsed frames (the figure compared with
Vigil's decoder), frames/s including parsing the log lines, and the number of messages
decoded. Frames are looked up by id in a dict built once and decoded with
`Message.decode(data, decode_choices=False)`, the fastest path cantools offers, so the
comparison is fair to cantools.

Usage: python cantools_decode.py DBC LOG [MIN_SECONDS]
"""

import json
import sys
import time

import cantools


def parse(lines):
    frames = []
    for line in lines:
        parts = line.split()
        if len(parts) != 3 or "#" not in parts[2]:
            continue
        ident, data = parts[2].split("#", 1)
        frames.append((int(ident, 16), bytes.fromhex(data)))
    return frames


def decode(by_id, frames):
    decoded = 0
    for frame_id, data in frames:
        message = by_id.get(frame_id)
        if message is not None:
            message.decode(data, decode_choices=False)
            decoded += 1
    return decoded


def main():
    dbc, log = sys.argv[1], sys.argv[2]
    min_seconds = float(sys.argv[3]) if len(sys.argv) > 3 else 2.0
    db = cantools.database.load_file(dbc)
    by_id = {m.frame_id: m for m in db.messages}
    with open(log) as f:
        lines = f.read().splitlines()

    frames = parse(lines)
    rounds, decoded, start = 0, 0, time.perf_counter()
    while True:
        decoded = decode(by_id, frames)
        rounds += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            break
    decode_fps = rounds * len(frames) / elapsed

    rounds, start = 0, time.perf_counter()
    while True:
        decode(by_id, parse(lines))
        rounds += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            break
    parse_decode_fps = rounds * len(frames) / elapsed

    print(json.dumps({
        "cantools": cantools.__version__,
        "frames": len(frames),
        "decoded_messages": decoded,
        "decode_frames_per_s": decode_fps,
        "parse_decode_frames_per_s": parse_decode_fps,
    }))


if __name__ == "__main__":
    main()
