"""Dataset-encoding throughput: a folder of real files -> token files on disk, end to end.

What is measured: the wall time of one whole dataset build, files read from disk and tokens
written back, process pool start-up included:

1. neuralband, ``build_dataset(files, fresh_dir, workers=W)`` (what ``neuralband encode`` runs):
   find, read, hash, parse, encode, write the shards, errors.jsonl and manifest.jsonl
2. MidiTok 3.1 MIDILike, ``tokenizer.tokenize_dataset(files, fresh_dir,
   parallel_workers_size=W)``: parse, encode, one JSON file of ids per MIDI file;
   ``TokenizerConfig(num_velocities=32, use_sustain_pedals=True)``, other settings default

each with W = 1 and 2 worker processes (and every core, when the machine has more than two),
on the same MIDI files, every run into a new temporary folder. Ours runs with
``include_drums=True`` because MidiTok keeps drum tracks too. Notes are counted once, as the
NOTE_ON tokens in our manifest, and the same count is used for every MIDI row, so notes/s
compares the rows' wall times directly. Each row is timed ``--repeats`` times, best kept.
One extra row: ours on the folk ABC collections (every X: tune rendered by abc2midi, then
encoded), if they are there; MidiTok has no ABC path here, so that row has no comparison.

Files: the Bach chorales exported by ``examples/music21_corpus.py`` (``DATA/bach_chorales``,
exported there first if missing; needs music21) or ``--folder PATH``, plus MidiTok 3.1.0's test
MIDI files (``tests.helpers.realdata.fetch_miditok_tests``: MIDIs_one_track and
MIDIs_multitrack except empty.mid). The ABC row uses ``DATA/folk``
(``music21_corpus.py DATA --folk``).

Run from the repository root::

    python benchmarks/dataset.py                        # data/music21
    python benchmarks/dataset.py --data /tmp/music21 --repeats 3

The output is a table, a line describing the machine, the goal (ours on every core >= 2x the
notes/s of MidiTok's fastest row) with PASS/FAIL, and a last line of JSON with all the numbers.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

# One thread per process (pools are sized when numpy is imported), and no progress bars.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS",
             "VECLIB_MAXIMUM_THREADS", "BLIS_NUM_THREADS"):
    os.environ[_var] = "1"
os.environ["TQDM_DISABLE"] = "1"  # MidiTok's tokenize_dataset always draws one
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
warnings.filterwarnings("ignore")

from benchmarks.machine import cpu_model, usable_cpus, version  # noqa: E402
from neuralband.encoders.performance import EncoderSettings  # noqa: E402
from neuralband.training.dataset import Summary, build_dataset  # noqa: E402
from tests.helpers.realdata import fetch_miditok_tests  # noqa: E402

SETTINGS = EncoderSettings(include_drums=True)  # MidiTok keeps drum tracks as well


@dataclass
class Run:
    """The best of the timed passes of one row."""

    key: str
    name: str
    workers: int
    files: int
    seconds: float
    pieces: int | None = None  # encoded files (MidiTok: token files written); ABC row: tunes
    notes: int | None = None  # ours: NOTE_ON tokens in the manifest


def best_of(repeats: int, once: Callable[[Path], object],
            check: Callable[[Path], object] = lambda out: None) -> tuple[float, object, object]:
    """Best wall time of ``repeats`` calls of once(fresh_empty_dir).

    Also returns the last call's result and check(its folder), run after the timer stops.
    """
    best, result, checked = float("inf"), None, None
    for _ in range(repeats):
        with tempfile.TemporaryDirectory(prefix="nb-bench-") as tmp:
            out = Path(tmp) / "out"
            start = time.perf_counter()
            result = once(out)
            best = min(best, time.perf_counter() - start)
            checked = check(out)
    return best, result, checked


def run_ours(sources: list[Path], workers: int, repeats: int) -> tuple[float, Summary, int]:
    """Time build_dataset; also return its summary and the NOTE_ON count from its manifest."""

    def once(out: Path) -> Summary:
        return build_dataset(sources, out, SETTINGS, workers=workers)

    def notes(out: Path) -> int:
        manifest = (out / "manifest.jsonl").read_text().splitlines()
        return sum(json.loads(line)["notes"] for line in manifest if line.strip())

    return best_of(repeats, once, notes)


def run_miditok(files: list[Path], workers: int, repeats: int) -> tuple[float, int]:
    """Time tokenize_dataset; also return how many token files it wrote."""
    import miditok

    config = miditok.TokenizerConfig(num_velocities=32, use_sustain_pedals=True)
    tokenizer = miditok.MIDILike(config)

    def once(out: Path) -> None:
        tokenizer.tokenize_dataset(files, out, verbose=False, parallel_workers_size=workers)

    def token_files(out: Path) -> int:
        return sum(1 for p in out.rglob("*.json") if p.name != "tokenizer.json")

    seconds, _, written = best_of(repeats, once, token_files)
    return seconds, written


# --- files and machine --------------------------------------------------------------------------


def export_chorales(data: Path) -> None:
    """Run examples/music21_corpus.py's export into data/bach_chorales (needs music21)."""
    path = REPO / "examples" / "music21_corpus.py"
    spec = importlib.util.spec_from_file_location("music21_corpus", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    print(f"exporting the Bach chorales into {data / 'bach_chorales'} (once, ~1 minute) ...")
    module.export_chorales(data, progress=False)


def midi_files(folder: Path) -> tuple[list[Path], list[Path]]:
    """The folder's MIDI files, and MidiTok's test MIDI files (but empty.mid)."""
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in (".mid", ".midi")
                   and p.is_file())
    root = fetch_miditok_tests()
    if root is None:
        sys.exit("MidiTok's test files could not be downloaded from PyPI (offline?)")
    tests = sorted(root.glob("MIDIs_one_track/*.mid")) + sorted(root.glob("MIDIs_multitrack/*.mid"))
    return files, [p for p in tests if p.name != "empty.mid"]


def machine() -> dict:
    model = cpu_model()
    usable = usable_cpus()
    return {
        "cpu_model": model, "cpus": os.cpu_count(), "cpus_usable": usable,
        "python": platform.python_version(), "numpy": version("numpy"),
        "symusic": version("symusic"), "miditok": version("miditok"),
        "neuralband": version("neuralband"),
    }


# --- main ---------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=REPO / "data" / "music21",
                        help="music21_corpus.py's output folder (default: data/music21)")
    parser.add_argument("--folder", type=Path,
                        help="MIDI folder instead of DATA/bach_chorales (not exported)")
    parser.add_argument("--repeats", type=int, default=2, help="timed passes per row, best kept")
    args = parser.parse_args()

    folder = args.folder or args.data / "bach_chorales"
    if args.folder is None and not any(folder.glob("*.mid")):
        export_chorales(args.data)
    if not folder.is_dir():
        sys.exit(f"no such folder: {folder}")
    own, tests = midi_files(folder)
    files = own + tests
    info = machine()
    counts = sorted({1, 2, info["cpus_usable"] or 1})
    all_cores = counts[-1]

    runs: list[Run] = []
    for w in counts:
        seconds, summary, notes = run_ours(files, w, args.repeats)
        skipped = f"{summary.duplicates} exact duplicates, {summary.failed} failed"
        runs.append(Run(f"ours_w{w}", "neuralband build_dataset", w, len(files), seconds,
                        summary.encoded, notes))
    notes, encoded = runs[0].notes, runs[0].pieces
    miditok_written = 0
    for w in counts:
        seconds, miditok_written = run_miditok(files, w, args.repeats)
        runs.append(Run(f"miditok_w{w}", "MidiTok 3.1 MIDILike", w, len(files), seconds,
                        miditok_written))

    folk = args.data / "folk"
    abc = sorted(folk.rglob("*.abc")) if folk.is_dir() else []
    if abc:
        seconds, summary, abc_notes = run_ours([folk], all_cores, args.repeats)
        tunes = summary.encoded + summary.failed + summary.duplicates
        runs.append(Run(f"ours_abc_w{all_cores}", "neuralband, folk ABC", all_cores, len(abc),
                        seconds, tunes, abc_notes))

    miditok_best = max(notes / r.seconds for r in runs if r.key.startswith("miditok"))
    rows = {}
    for r in runs:
        n = r.notes if r.notes is not None else notes
        is_abc = r.key.startswith("ours_abc")
        rows[r.key] = {
            "name": r.name, "workers": r.workers, "files": r.files, "pieces": r.pieces,
            "seconds": r.seconds, "files_per_s": r.files / r.seconds, "notes": n,
            "notes_per_s": n / r.seconds,
            "tunes_per_s": r.pieces / r.seconds if is_abc else None,
            "vs_miditok_best": None if is_abc else n / r.seconds / miditok_best,
        }

    print(f"\nDataset encoding, {len(files)} MIDI files ({len(own)} in {folder} + {len(tests)} "
          f"MidiTok test files), {notes:,} notes, best of {args.repeats}, whole build timed")
    header = (f"{'row':<28}{'workers':>8}{'files':>7}{'files/s':>10}{'notes/s':>12}{'wall s':>9}"
              f"{'vs MidiTok':>12}")
    print(header)
    print("-" * len(header))
    for row in rows.values():
        vs = f"{row['vs_miditok_best']:.2f}x" if row["vs_miditok_best"] is not None else "-"
        print(f"{row['name']:<28}{row['workers']:>8}{row['files']:>7}{row['files_per_s']:>10.1f}"
              f"{row['notes_per_s']:>12,.0f}{row['seconds']:>9.2f}{vs:>12}")
        if row["tunes_per_s"] is not None:
            print(f"{'':<28}{'':>8}{'':>7}  ({row['pieces']:,} tunes, "
                  f"{row['tunes_per_s']:,.0f} tunes/s; no MidiTok row: MIDI only)")
    print("vs MidiTok: notes/s over MidiTok's fastest row. MidiTok's tokenize_dataset does take "
          "workers (parallel_workers_size).")
    print(f"files written: ours {encoded}/{len(files)} encoded ({skipped}), MidiTok "
          f"{miditok_written}/{len(files)} token files")

    print(f"\nmachine: {info['cpu_model']}, {info['cpus']} cpus ({info['cpus_usable']} usable); "
          f"python {info['python']}, numpy {info['numpy']}, symusic {info['symusic']}, "
          f"miditok {info['miditok']}, neuralband {info['neuralband']}")

    ratio = rows[f"ours_w{all_cores}"]["notes_per_s"] / miditok_best
    goal = ratio >= 2.0
    print(f"goal ours (all {all_cores} cores) >= 2x MidiTok notes/s: "
          f"{'PASS' if goal else 'FAIL'} ({ratio:.2f}x)")
    print(json.dumps({
        "benchmark": "dataset", "folder": str(folder), "midi_files": len(files), "notes": notes,
        "settings": "include_drums=True", "repeats": args.repeats, "machine": info, "rows": rows,
        "ratio_ours_all_cores_over_miditok_best": ratio, "goals": {"ours_ge_2x_miditok": goal},
    }))


if __name__ == "__main__":
    main()
