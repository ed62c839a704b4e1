"""Is it music? A model continuing real pop-piano openings, measured against the songs themselves.

What is measured, on POP909 songs the model never trained on (those whose content hash puts them
in the test split, `training.dataset.split_of`, the split `neuralband encode` gives them):

1. **Continuations**: each song's first 10 s (from its first note; notes cut there) is the primer,
   the model continues it for 30 s, 3 variations, with the command line's default sampling
   (temperature 1, top-p 0.95, the model's own longest note). The 30 s it plays are set beside
   the song's own next 30 s: share of notes in the opening's key (estimated from the primer's
   notes, Krumhansl-Kessler), notes per second, polyphony (time-weighted, while anything
   sounds), median note length, share of notes ended by the cap, velocity spread
   (`neuralband.evaluate`). Songs are read as the model's encoder reads them (for the pop models,
   key presses without the sustain pedal folded in).
   Rows: the real songs; the model following the primer's key and density (the default); the
   same model running free (no controls); and any ``--peer`` model (the previous default).
2. **Key over a minute**: 60 s continuations, the in-key share of their first and second 30 s.
3. **--key from silence**: 20 s from silence with the key fixed, 6 keys x 2 variations: share of
   notes in that key.
4. **--density from silence**: 20 s at D = 2, 4, 6, 8, 10, 12 notes/s (2 variations each): the
   notes/s played, and their correlation with D.

Run from the repository root (about 5 minutes for the default 24 songs on 2 cores)::

    python benchmarks/pop_music.py                        # the bundled pop model
    python benchmarks/pop_music.py --model data/pop-run/model --peer chorale-folk --songs 48

The output is one table per part and a last line of JSON with every number.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")  # a batch-3 step is faster on one BLAS thread
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from neuralband.encoders.keys import parse_key  # noqa: E402
from neuralband.encoders.midi_io import NoteTable, read_notes, table_from_pretty_midi  # noqa: E402
from neuralband.encoders.performance import (  # noqa: E402
    EncoderSettings,
    decode,
    prepare_notes,
    tokens_from_notes,  # noqa: E402
)
from neuralband.evaluate import in_key_share, piece_metrics, table_key  # noqa: E402
from neuralband.generate import generate  # noqa: E402
from neuralband.modelfile import read_info  # noqa: E402
from neuralband.sampling import model_rules  # noqa: E402
from neuralband.steering import ControlChoice  # noqa: E402
from neuralband.training.dataset import duration_s, split_of  # noqa: E402

POP909 = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "pop909"
METRICS = ("in_key_share", "notes_per_s", "polyphony", "median_length_s", "capped_share",
           "velocity_sd")
KEYS = ("C major", "Eb major", "E minor", "G major", "Bb major", "F# minor")
DENSITIES = (2, 4, 6, 8, 10, 12)


def held_out(root: Path, split: str = "test") -> list[Path]:
    """The songs whose content hash puts them in ``split`` (never trained on)."""
    songs = sorted(root.glob("*/*.mid"))
    return [p for p in songs if split_of(hashlib.sha256(p.read_bytes()).hexdigest()) == split]


def interval(values: np.ndarray, rng: np.random.Generator) -> tuple[float, float]:
    """A 95% bootstrap interval of the mean of per-song (or per-opening) values: how far
    another draw of songs could move it."""
    values = np.asarray(values, np.float64)
    values = values[~np.isnan(values)]
    if not len(values):  # no song gave a value (a row that played nothing anywhere)
        return float("nan"), float("nan")
    means = [np.mean(rng.choice(values, len(values))) for _ in range(2000)]
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def moved(t: NoteTable, seconds: float) -> NoteTable:
    """The same notes and pedals, ``seconds`` later."""
    return NoteTable(t.start_s + seconds, t.end_s + seconds, t.pitch, t.velocity, t.group,
                     t.is_drum, t.pedal_time_s + seconds, t.pedal_value, t.pedal_group)


def song_table(path: Path, enc: EncoderSettings) -> NoteTable:
    """A song's notes as the model's encoder reads them, moved so that its first note is at 0."""
    table = prepare_notes(read_notes(path), enc)
    return moved(table, -float(table.start_s.min()))


def primer_of(table: NoteTable, seconds: float, enc: EncoderSettings) -> np.ndarray:
    """The tokens of a song's first ``seconds``: the notes begun by then, cut there."""
    head = table.select(table.start_s < seconds)
    head = head.with_end(np.minimum(head.end_s, seconds))
    return tokens_from_notes(head, enc)


def tokens_table(tokens: np.ndarray, enc: EncoderSettings) -> NoteTable:
    """Generated tokens -> their notes, in seconds."""
    return table_from_pretty_midi(decode(tokens, enc))


def mean_rows(rows: list[dict]) -> dict:
    return {m: float(np.nanmean([r[m] for r in rows])) for m in METRICS}


def continuations(model: str, songs: list[NoteTable], enc: EncoderSettings, choice,
                  seconds: float, variations: int, seed: int) -> list[dict]:
    """Metrics of the model's continuations of every song's 10 s opening."""
    info = read_info(model)
    rules = model_rules(info, None, top_p=0.95)
    rows = []
    for k, song in enumerate(songs):
        primer = primer_of(song, 10.0, info.encoder)
        key = table_key(song, 0.0, 10.0)
        start = duration_s(primer, info.encoder)
        kwargs = {"controls": choice} if info.controls is not None else {}
        for piece in generate(model, primer, seconds, variations, rules, seed + k, **kwargs):
            table = tokens_table(piece.tokens, info.encoder)
            row = piece_metrics(table, start, start + seconds, rules.max_note_s, key)
            if seconds >= 60:
                half = start + seconds / 2
                row["first_half_in_key"] = piece_metrics(table, start, half, key=key)[
                    "in_key_share"]
                row["second_half_in_key"] = piece_metrics(table, half, start + seconds,
                                                          key=key)["in_key_share"]
            rows.append(row)
    return rows


def from_silence(model: str, choice: ControlChoice, variations: int, seed: int
                 ) -> list[NoteTable]:
    info = read_info(model)
    rules = model_rules(info, None, top_p=0.95)
    return [tokens_table(p.tokens, info.encoder)
            for p in generate(model, None, 20.0, variations, rules, seed, controls=choice)]


def table(title: str, header: list[str], rows: list[list]) -> None:
    print(f"\n{title}")
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=True)]
    for line in [header, *rows]:
        print("  ".join(str(x).ljust(w) for x, w in zip(line, widths, strict=True)))


def fmt(x: float) -> str:
    return f"{x:.3f}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="pop", help="the model measured (default: bundled pop)")
    p.add_argument("--peer", action="append", default=[],
                   help="another model measured beside it (repeatable; e.g. chorale-folk)")
    p.add_argument("--data", default=str(POP909), help="the POP909 folder")
    p.add_argument("--songs", type=int, default=24, help="held-out songs used (default 24)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    info = read_info(args.model)
    enc = info.encoder
    paths = held_out(Path(args.data))[:args.songs]
    if not paths:
        sys.exit(f"no POP909 songs under {args.data}")
    songs = [song_table(path, enc) for path in paths]
    result: dict = {"model": args.model, "songs": len(songs), "encoder": enc.to_dict()}

    # 1. continuations beside the songs' own next 30 s
    real = [piece_metrics(s, 10.0, 40.0, 5.0, table_key(s, 0.0, 10.0)) for s in songs]
    rows = {"real songs (next 30 s)": mean_rows(real)}
    conditioned = info.controls is not None
    rows[f"{args.model}" + (" (following the primer)" if conditioned else "")] = mean_rows(
        continuations(args.model, songs, enc, ControlChoice(), 30.0, 3, args.seed))
    if conditioned:
        rows[f"{args.model} (free: no controls)"] = mean_rows(continuations(
            args.model, songs, enc, ControlChoice("free", "free"), 30.0, 3, args.seed))
    for peer in args.peer:
        rows[peer] = mean_rows(continuations(peer, songs, enc, None, 30.0, 3, args.seed))
    base = rows["real songs (next 30 s)"]
    table(f"Continuing {len(songs)} held-out POP909 openings (10 s) for 30 s, 3 variations each",
          ["", *METRICS, "density/real", "polyphony/real", "length/real"],
          [[name, *(fmt(r[m]) for m in METRICS), fmt(r["notes_per_s"] / base["notes_per_s"]),
            fmt(r["polyphony"] / base["polyphony"]),
            fmt(r["median_length_s"] / base["median_length_s"])] for name, r in rows.items()])
    result["continuations"] = rows

    # 2. the key over a minute
    minute = {}
    choices = [("following the primer", ControlChoice())] if conditioned else [("", None)]
    if conditioned:
        choices.append(("free", ControlChoice("free", "free")))
    for name, choice in choices:
        got = continuations(args.model, songs, enc, choice, 60.0, 1, args.seed + 100)
        minute[name] = {h: float(np.nanmean([r[h] for r in got]))
                        for h in ("first_half_in_key", "second_half_in_key")}
    table("In key over a 60 s continuation (1 variation per song)",
          ["", "first 30 s", "second 30 s"],
          [[n, fmt(v["first_half_in_key"]), fmt(v["second_half_in_key"])]
           for n, v in minute.items()])
    result["minute"] = minute

    if conditioned:
        # 3. --key from silence
        keys = {}
        for i, name in enumerate(KEYS):
            tables = from_silence(args.model, ControlChoice(name, "free"), 2, args.seed + i)
            keys[name] = float(np.mean([in_key_share(t.pitch, parse_key(name))
                                        for t in tables if len(t)]))
        table("--key K from silence (20 s, 2 variations): share of notes in K",
              ["key", "in K"], [[k, fmt(v)] for k, v in keys.items()] +
              [["mean", fmt(float(np.mean(list(keys.values()))))]])
        result["key_from_silence"] = keys

        # 4. --density from silence
        played = {}
        for d in DENSITIES:
            tables = from_silence(args.model, ControlChoice("free", float(d)), 2,
                                  args.seed + d)
            played[d] = float(np.mean([len(t) / 20.0 for t in tables]))
        r = float(np.corrcoef(list(played), list(played.values()))[0, 1])
        table("--density D from silence (20 s, 2 variations): notes/s played",
              ["D", "played"], [[d, fmt(v)] for d, v in played.items()] +
              [["correlation", fmt(r)]])
        result["density_from_silence"] = {"played": played, "correlation": r}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
