"""Does the duet model accompany? Its band under held-out POP909 melodies, beside the real band.

What is measured, on POP909 songs the model never trained on (the test split by content hash,
`training.dataset.split_of`): each song's MELODY track, its first ``--seconds`` (60 s) from its
first sung note, is the lead; the duet model accompanies it (`neuralband.generate.accompany`: the
melody heard event by event at its own times, the band sampled between, the command line's default
steering and sampling: the melody's key and the data's arrangement density told, the song file's
beats (its annotations, as `generate --lead` finds them beside a POP909 file), top-p 0.95, the
model's own longest note and per-voice polyphony, the band kept under the melody and out of its way
by `Rules.under_melody` and `Rules.clash`; 0 and 0 measure the model alone), 2 variations. The band
it plays is set beside the song's real PIANO and BRIDGE tracks over the same seconds
(`neuralband.evaluate.accompaniment_metrics`): band notes per second, band notes in the song's key
(estimated from all of the song's real notes in those seconds, so both bands are judged by one
key), band onsets below the melody note sounding then, consonant with it, and melody onsets met by
a band onset within 50 ms. Notes are read as key presses, as the model was trained.

Run from the repository root (about a minute for 16 songs on 2 cores)::

    python benchmarks/pop_duet.py --model pop-duet

The output is a table (real, model, model/real) and a last line of JSON with every number.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.pop_music import POP909, held_out, moved  # noqa: E402
from neuralband.encoders.beats import beats_of_file  # noqa: E402
from neuralband.encoders.midi_io import NoteTable, table_from_pretty_midi  # noqa: E402
from neuralband.encoders.performance import encode_notes  # noqa: E402
from neuralband.evaluate import (  # noqa: E402
    ACCOMPANIMENT_METRICS,
    accompaniment_metrics,
    load_parts,
    table_key,
)
from neuralband.generate import accompany  # noqa: E402
from neuralband.modelfile import read_info  # noqa: E402
from neuralband.sampling import model_rules  # noqa: E402
from neuralband.steering import ControlChoice  # noqa: E402


def cut(table: NoteTable, seconds: float) -> NoteTable:
    """The notes begun in ``[0, seconds)``, ended there at the latest."""
    head = table.select((table.start_s >= 0) & (table.start_s < seconds))
    return head.with_end(np.minimum(head.end_s, seconds))


def merged(a: NoteTable, b: NoteTable) -> NoteTable:
    return NoteTable(*(np.concatenate([getattr(a, f), getattr(b, f)]) for f in (
        "start_s", "end_s", "pitch", "velocity", "group", "is_drum", "pedal_time_s",
        "pedal_value", "pedal_group")))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="pop-duet", help="a voice-packed model (default pop-duet)")
    p.add_argument("--data", default=str(POP909), help="the POP909 folder")
    p.add_argument("--songs", type=int, default=16, help="held-out songs used (default 16)")
    p.add_argument("--seconds", type=float, default=60.0, help="of each melody (default 60)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--top-p", type=float, default=0.95, help="nucleus of the draw (default 0.95)")
    p.add_argument("--density", default=None, help="the band's density control (default: the "
                   "model's own choice when accompanying)")
    p.add_argument("--under-melody", type=float, default=None,
                   help="nats off a band note above the melody (default: the command line's)")
    p.add_argument("--clash", type=float, default=None,
                   help="nats off a band note clashing with it (default: the command line's)")
    args = p.parse_args()
    info = read_info(args.model)
    if not info.scheme.voiced:
        sys.exit(f"{args.model} is not a voice-packed model")
    listen = {name: value for name, value in (("under_melody", args.under_melody),
                                              ("clash", args.clash)) if value is not None}
    rules = model_rules(info, None, top_p=args.top_p, **listen)
    controls = ControlChoice.parse(None, args.density) if args.density else None
    paths = held_out(Path(args.data))[:args.songs]
    real_rows, model_rows = [], []
    for k, path in enumerate(paths):
        melody, band = load_parts(path, sustain=False)
        start = float(melody.start_s.min())  # from the first sung note (intros have none)
        melody = cut(moved(melody, -start), args.seconds)
        band = cut(moved(band, -start), args.seconds)
        key = table_key(merged(melody, band))
        real_rows.append(accompaniment_metrics(melody, band, 0.0, args.seconds, key))
        lead = encode_notes(melody, info.encoder)
        back = -10 / info.encoder.steps_per_second  # accompany starts with 10 steps of silence
        # the beats generate --lead finds for the song's file (its annotations), moved as the
        # melody was; a model that reads no beat ignores them
        found = beats_of_file(path)
        beats = None if found is None else found.shifted(-start)
        for piece in accompany(args.model, lead, 2, rules, args.seed + k, tail_s=0.0,
                               controls=controls, beats=beats):
            notes = moved(table_from_pretty_midi(info.scheme.decode_midi(piece.tokens)), back)
            model_rows.append(accompaniment_metrics(  # group 0 is the lead, the rest the band
                notes.select(notes.group == 0), notes.select(notes.group > 0), 0.0,
                args.seconds, key))
    real = {m: float(np.nanmean([r[m] for r in real_rows])) for m in ACCOMPANIMENT_METRICS}
    ours = {m: float(np.nanmean([r[m] for r in model_rows])) for m in ACCOMPANIMENT_METRICS}
    print(f"\nAccompanying the first {args.seconds:g} s of {len(paths)} held-out POP909 melodies "
          f"(2 variations each), against the songs' own PIANO + BRIDGE")
    print(f"{'metric':24s}{'real':>10s}{args.model:>12s}{'model/real':>12s}")
    for m in ACCOMPANIMENT_METRICS:
        print(f"{m:24s}{real[m]:10.3f}{ours[m]:12.3f}{ours[m] / real[m]:12.3f}")
    print(f"(seed {args.seed}, top-p {rules.top_p:g}, under the melody {rules.under_melody:g} "
          f"nats, clash {rules.clash:g} nats)")
    print(json.dumps({"model": args.model, "songs": len(paths), "seconds": args.seconds,
                      "seed": args.seed, "under_melody": rules.under_melody,
                      "clash": rules.clash,
                      "real": real, "model_metrics": ours}))


if __name__ == "__main__":
    main()
