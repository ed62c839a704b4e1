"""Encoding throughput on one CPU core: MIDI bytes -> tokens, parsing included.

What is measured: the time to turn every file of a set, already read into memory, into
Performance-RNN tokens (or MidiTok's tokens for the MidiTok row), by five encoders run in the same
process on the same files:

1. neuralband                  ``encode(bytes)``: symusic parse + numpy (pretty_midi fallback)
2. neuralband, pretty_midi     ``encode(bytes, parser="pretty_midi")``: our reference parse path
3. note_seq 0.0.5              midi_to_note_sequence -> apply_sustain_control_changes ->
                               quantize_note_sequence_absolute(100) -> Performance(32 bins) ->
                               PerformanceOneHotEncoding(32).encode_event per event
4. MidiTok MIDILike            ``symusic.Score.from_midi(bytes)`` + ``tokenizer.encode(score)``,
                               32 velocities, sustain pedal tokens, other settings default
5. naive                       pretty_midi objects and plain Python lists, one note at a time
                               (``naive_encode`` below)

Our rows run with ``include_drums=True``, the setting that does the same work as note_seq (which
keeps drum tracks); the note_seq tokens are checked against ours file by file, outside timing.

Method: one process pinned to one CPU (``sched_setaffinity``) with BLAS/OpenMP thread pools
limited to one thread before numpy is imported; each encoder is warmed up on the first file,
then the whole set is encoded ``repeats`` times and the best pass is kept. note_seq and the naive
encoder are ~100x slower and get ``--slow-repeats`` passes (default 1). Notes are counted once,
as our NOTE_ON tokens, and the same count is used for every row, so notes/s compares the rows'
times directly.

Files: MidiTok 3.1.0's test MIDI files (``tests.helpers.realdata.fetch_miditok_tests``,
downloaded from PyPI once and cached). ``--set maestro`` (default): the 10 MAESTRO piano
performances with pedal;
``--set all``: every file in MIDIs_one_track and MIDIs_multitrack except empty.mid;
``--files GLOB``: any files instead.

Run from the repository root::

    python benchmarks/encode.py                 # the 10 MAESTRO files
    python benchmarks/encode.py --set all --repeats 5
    python benchmarks/encode.py --files 'my_midi/**/*.mid'

The output is a table, a line describing the machine, the goals (ours >= 10x note_seq's notes/s,
ours faster than MidiTok MIDILike) with PASS/FAIL, and a last line of JSON with all the numbers.
"""

from __future__ import annotations

import argparse
import gc
import glob
import io
import json
import math
import os
import platform
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

# One core: thread pools are sized when numpy (and what it loads) is imported, so this comes first.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS",
             "VECLIB_MAXIMUM_THREADS", "BLIS_NUM_THREADS"):
    os.environ[_var] = "1"
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
warnings.filterwarnings("ignore")  # pydub, pkg_resources and pretty_midi chatter on import/parse

import numpy as np  # noqa: E402
import pretty_midi  # noqa: E402

from benchmarks.machine import cpu_model, version  # noqa: E402
from neuralband.encoders.performance import EncoderSettings, encode  # noqa: E402
from tests.helpers.realdata import fetch_miditok_tests  # noqa: E402

WITH_DRUMS = EncoderSettings(include_drums=True)  # the same work as note_seq
ENCODE_ALL = Callable[[list[bytes]], list]


# --- the encoders -------------------------------------------------------------------------------


def ours(parser: str) -> ENCODE_ALL:
    return lambda datas: [encode(d, WITH_DRUMS, parser=parser) for d in datas]


def note_seq_encoder() -> ENCODE_ALL:
    import note_seq
    from note_seq import performance_lib, sequences_lib
    from note_seq.performance_encoder_decoder import PerformanceOneHotEncoding

    encoding = PerformanceOneHotEncoding(num_velocity_bins=32)

    def one(data: bytes) -> list[int]:
        ns = note_seq.midi_to_note_sequence(data)
        ns = sequences_lib.apply_sustain_control_changes(ns)
        quantized = sequences_lib.quantize_note_sequence_absolute(ns, 100)
        performance = performance_lib.Performance(quantized, num_velocity_bins=32)
        return [encoding.encode_event(e) for e in performance]

    return lambda datas: [one(d) for d in datas]


def miditok_encoder() -> ENCODE_ALL:
    import miditok
    from symusic import Score

    config = miditok.TokenizerConfig(num_velocities=32, use_sustain_pedals=True)
    tokenizer = miditok.MIDILike(config)
    return lambda datas: [tokenizer.encode(Score.from_midi(d)) for d in datas]


def naive_encode(data: bytes) -> list[int]:
    """Performance tokens the straightforward way: pretty_midi objects and Python lists, one note
    at a time: sustain pedal as note_seq applies it, quantise to 10 ms, then the event loop."""
    pm = pretty_midi.PrettyMIDI(io.BytesIO(data))
    notes = [[n.start, n.end, n.pitch, n.velocity] for inst in pm.instruments for n in inst.notes]
    # (time, kind, instrument, note); kind 0 pedal down, 1 pedal up, 2 note on, 3 note off
    events, k = [], 0
    for i, inst in enumerate(pm.instruments):
        events += [(cc.time, 0 if cc.value >= 64 else 1, i, -1)
                   for cc in inst.control_changes if cc.number == 64]
        for n in inst.notes:
            if not inst.is_drum:
                events += [(n.start, 2, i, k), (n.end, 3, i, k)]
            k += 1
    events.sort(key=lambda e: (e[0], e[1]))
    pedal = [False] * len(pm.instruments)
    active: list[list[int]] = [[] for _ in pm.instruments]  # sounding notes, per instrument
    t = 0.0
    for t, kind, i, k in events:
        if kind == 0:
            pedal[i] = True
        elif kind == 1:  # pedal up: the notes it was holding end here
            pedal[i] = False
            for j in active[i]:
                notes[j][1] = max(notes[j][1], t)
            active[i] = [j for j in active[i] if notes[j][1] > t]
        elif kind == 2:
            if pedal[i]:  # a key struck again under the pedal ends its sounding note
                for j in active[i]:
                    if notes[j][2] == notes[k][2]:
                        notes[j][1] = t
                        notes[j][3] = 0 if notes[j][0] == t else notes[j][3]  # 0: deleted
                active[i] = [j for j in active[i] if notes[j][2] != notes[k][2]]
            active[i].append(k)
        elif not pedal[i] and k in active[i]:
            active[i].remove(k)
    for still in active:  # held by the pedal to the end
        for j in still:
            notes[j][1] = t
    notes = sorted((n for n in notes if n[3] > 0), key=lambda n: (n[0], n[2]))
    timeline = []
    for idx, (start, end, _, _) in enumerate(notes):
        q_start, q_end = int(start * 100 + 0.5), int(end * 100 + 0.5)
        timeline += [(q_start, idx, 0), (q_end if q_end > q_start else q_start + 1, idx, 1)]
    timeline.sort()
    tokens, step, vel_bin = [], 0, 0
    for when, idx, is_off in timeline:
        while when > step:
            shift = min(when - step, 100)
            tokens.append(255 + shift)
            step += shift
        pitch, velocity = notes[idx][2], notes[idx][3]
        if is_off:
            tokens.append(128 + pitch)
            continue
        if (velocity - 1) // 4 + 1 != vel_bin:
            vel_bin = (velocity - 1) // 4 + 1
            tokens.append(355 + vel_bin)
        tokens.append(pitch)
    return tokens


# --- timing -------------------------------------------------------------------------------------


@dataclass
class Row:
    key: str
    name: str
    make: Callable[[], ENCODE_ALL]  # may raise ImportError: the row is then skipped
    slow: bool = False


ROWS = [
    Row("neuralband", "neuralband", lambda: ours("auto")),
    Row("neuralband_pretty_midi", "neuralband, pretty_midi parser", lambda: ours("pretty_midi")),
    Row("note_seq", "note_seq 0.0.5", note_seq_encoder, slow=True),
    Row("miditok_midilike", "MidiTok MIDILike", miditok_encoder),
    Row("naive", "naive (pretty_midi + Python)", lambda: (lambda ds: [naive_encode(d) for d in ds]),
        slow=True),
]


def best_time(encode_all: ENCODE_ALL, datas: list[bytes], repeats: int) -> tuple[float, list]:
    """Warm up on the first file, then the best of ``repeats`` passes over all files (seconds)."""
    encode_all(datas[:1])
    best, outputs = math.inf, []
    for _ in range(repeats):
        gc.collect()
        start = time.perf_counter()
        outputs = encode_all(datas)
        best = min(best, time.perf_counter() - start)
    return best, outputs


def pin_to_one_cpu() -> int | None:
    """Pin this process to the first CPU it may run on; that CPU's number, or None."""
    if not hasattr(os, "sched_setaffinity"):
        return None
    cpu = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})
    return cpu


# --- files and machine --------------------------------------------------------------------------


def select_files(file_set: str, pattern: str | None) -> list[Path]:
    if pattern:
        return sorted(Path(p) for p in glob.glob(pattern, recursive=True) if Path(p).is_file())
    root = fetch_miditok_tests()
    if root is None:
        sys.exit("MidiTok's test files could not be downloaded from PyPI (offline?)")
    if file_set == "maestro":
        return sorted(root.glob("MIDIs_one_track/Maestro_*.mid"),
                      key=lambda p: int(p.stem.split("_")[1]))
    files = sorted(root.glob("MIDIs_one_track/*.mid")) + sorted(root.glob("MIDIs_multitrack/*.mid"))
    return [p for p in files if p.name != "empty.mid"]


def machine(cpu: int | None) -> dict:
    model = cpu_model()
    return {
        "processor": platform.processor() or platform.machine(),
        "cpu_model": model,
        "pinned_cpu": cpu,
        "cpus_available": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": version("numpy"),
        "symusic": version("symusic"),
        "pretty_midi": version("pretty_midi"),
        "miditok": version("miditok"),
        "note_seq": version("note-seq"),
    }


# --- main ---------------------------------------------------------------------------------------


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a and b else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--set", dest="file_set", choices=["maestro", "all"], default="maestro")
    parser.add_argument("--files", metavar="GLOB", help="encode these files instead of a --set")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes, best kept")
    parser.add_argument("--slow-repeats", type=int, default=1,
                        help="timed passes for note_seq and the naive encoder")
    args = parser.parse_args()

    cpu = pin_to_one_cpu()
    paths = select_files(args.file_set, args.files)
    if not paths:
        sys.exit("no MIDI files found")
    datas = [p.read_bytes() for p in paths]
    label = f"--files {args.files}" if args.files else f"--set {args.file_set}"

    results: dict[str, dict] = {}
    outputs: dict[str, list] = {}
    for row in ROWS:
        try:
            encode_all = row.make()
        except ImportError as err:
            print(f"skipped {row.name}: not installed ({err})")
            continue
        repeats = args.slow_repeats if row.slow else args.repeats
        seconds, outputs[row.key] = best_time(encode_all, datas, repeats)
        results[row.key] = {"name": row.name, "seconds": seconds, "repeats": repeats}

    notes = sum(int((tokens < 128).sum()) for tokens in outputs["neuralband"])
    base = results.get("note_seq", {}).get("seconds")
    for r in results.values():
        r.update(files_per_s=len(datas) / r["seconds"], notes_per_s=notes / r["seconds"],
                 total_ms=r["seconds"] * 1000, vs_note_seq=ratio(base, r["seconds"]))

    print(f"\nEncoding throughput, one core, {len(datas)} files ({label}), {notes:,} notes, "
          f"best of reps passes, parsing included")
    header = (f"{'encoder':<32}{'reps':>5}{'files/s':>11}{'notes/s':>13}{'total ms':>12}"
              f"{'vs note_seq':>13}")
    print(header)
    print("-" * len(header))
    for r in results.values():
        vs = f"{r['vs_note_seq']:.1f}x" if r["vs_note_seq"] else "-"
        print(f"{r['name']:<32}{r['repeats']:>5}{r['files_per_s']:>11.1f}{r['notes_per_s']:>13,.0f}"
              f"{r['total_ms']:>12.1f}{vs:>13}")

    info = machine(cpu)
    print(f"\nmachine: {info['processor']}, {info['cpu_model']}, pinned to cpu {cpu} of "
          f"{info['cpus_available']}; python {info['python']}, numpy {info['numpy']}, symusic "
          f"{info['symusic']}, pretty_midi {info['pretty_midi']}, miditok {info['miditok']}, "
          f"note_seq {info['note_seq']}")

    # Parity, outside timing: the tokens each Performance encoder produced in its timed pass.
    parity = {}
    for key in ("note_seq", "neuralband_pretty_midi", "naive"):
        if key in outputs:
            same = sum(np.array_equal(np.asarray(theirs, np.int64), mine)
                       for theirs, mine in zip(outputs[key], outputs["neuralband"], strict=True))
            parity[key] = {"identical": same, "files": len(datas)}
    if "note_seq" in parity:
        print(f"parity: {parity['note_seq']['identical']}/{len(datas)} files identical "
              f"(note_seq 0.0.5 tokens vs ours, include_drums=True)")
    for key in ("neuralband_pretty_midi", "naive"):
        if key in parity:
            print(f"  {results[key]['name']} vs ours: {parity[key]['identical']}/{len(datas)} "
                  f"files identical")

    ours_speed = results["neuralband"]["notes_per_s"]
    vs_note_seq = ratio(ours_speed, results.get("note_seq", {}).get("notes_per_s"))
    vs_miditok = ratio(ours_speed, results.get("miditok_midilike", {}).get("notes_per_s"))
    goals = {
        "ours_ge_10x_note_seq": None if vs_note_seq is None else vs_note_seq >= 10,
        "ours_gt_miditok_midilike": None if vs_miditok is None else vs_miditok > 1,
    }
    for text, goal, value in (("ours >= 10x note_seq notes/s", "ours_ge_10x_note_seq", vs_note_seq),
                              ("ours > MidiTok MIDILike notes/s", "ours_gt_miditok_midilike",
                               vs_miditok)):
        verdict = {True: "PASS", False: "FAIL", None: "SKIP"}[goals[goal]]
        shown = f"{value:.1f}x" if value is not None else "row skipped"
        print(f"goal {text}: {verdict} ({shown})")

    print(json.dumps({
        "benchmark": "encode", "files_selected": label, "files": len(datas), "notes": notes,
        "settings": "include_drums=True", "machine": info, "rows": results, "parity": parity,
        "ratios": {"ours_over_note_seq": vs_note_seq, "ours_over_miditok": vs_miditok},
        "goals": goals,
    }))


if __name__ == "__main__":
    main()
