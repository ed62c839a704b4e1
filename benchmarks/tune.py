"""Does `neuralband tune` learn a player, and keep what the model knew?

The player: Bach chorales (the 39 in tests/data, music21's export) rendered as one pianist's
takes by examples/player_takes.py (own tempo per take, spread chords, a louder top voice, phrase
dynamics): a style the bundled pop model never heard. The first takes in name order that add up
to 10 minutes are the ones tuned on; the rest are held out.

For the base model and each way of tuning it (rows):

- ``NLL takes``: nats/event on the held-out takes (`neuralband score`, running free);
- ``NLL POP909``: the same on 12 POP909 songs of the test split, none trained on (what it knew);
- ``tune s``: the wall time of the whole tune (encoding, replay, training, choosing the step),
  torch on every core (the scoring and generating here run on one thread, as `play` does);
- ``pc``, ``ioi``, ``length``: continuing each held-out take's 10 s opening for 30 s, the
  distance (`neuralband evaluate`: Jensen-Shannon, bits) of the continuations' pitch-class,
  inter-onset and note-length histograms to the held-out takes' own 10-40 s;
- ``the opening``: each held-out take's first 10 s played again to 40 s, measured as the
  continuations are: what the opening alone says of the piece;
- beneath the table, each distance above the takes' own (each held-out take's 10-40 s against
  the others): no continuation of this player's can be expected to come nearer than the player's
  own takes do, so what tuning can halve is the part of the base's distance above that.

The ways: ``plain`` (the naive way: fine-tune on the takes alone, ``--replay-minutes 0``),
``replay`` (the default: the base's own music mixed in), ``mix POP909`` (the peer with the most
help: the model's real training data mixed in, ``--mix``; only where data/pop-dataset exists).

Run from the repository root (about 15 minutes on 2 cores)::

    python benchmarks/tune.py --roll docs/tune.png

With ``--seeds 3`` every model continues the openings with three seeds (one seed's
continuations move a distance by as much as tuning does): the distances are their means, and a
95% bootstrap interval over the openings says how far each way's change from the base could be
chance. ``--way "steps 240=steps:240"`` (repeatable) adds a way of tuning with other
`TuneSettings` (``steps``, ``lr``, ``mix_share``, ``replay_minutes``, ...).

A table, then a last line of JSON with every number.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import tempfile
import time
from dataclasses import fields, replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.pop_music import (  # noqa: E402
    POP909,
    held_out,
    interval,
    primer_of,
    song_table,
    tokens_table,
)
from neuralband.encoders.beats import find_beats  # noqa: E402
from neuralband.encoders.note_table import NoteTable  # noqa: E402
from neuralband.evaluate import mean_metrics, solo_rows  # noqa: E402
from neuralband.generate import generate  # noqa: E402
from neuralband.loaded import LoadedModel  # noqa: E402
from neuralband.sampling import model_rules  # noqa: E402
from neuralband.score import mean_nll, score_files  # noqa: E402
from neuralband.training.config import TuneSettings  # noqa: E402
from neuralband.training.tune import tune  # noqa: E402

OPENING_S, CONTINUE_S = 10.0, 30.0
TUNE_MINUTES = 10.0
DISTANCES = ("pc_distance", "ioi_distance", "length_distance")


def render_takes(folder: Path) -> list[Path]:
    """The chorales of tests/data as one player's takes (examples/player_takes.py, seed 0)."""
    spec = importlib.util.spec_from_file_location("player_takes",
                                                  ROOT / "examples" / "player_takes.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    data = ROOT / "tests" / "data"
    module.main([str(data / "chorales_train"), str(data / "chorales"), "-o", str(folder)])
    return sorted(folder.glob("*.mid"))


def split_takes(takes: list[Path], enc) -> tuple[list[Path], list[Path]]:
    """The first takes up to TUNE_MINUTES to tune on, the rest held out."""
    total, cut = 0.0, len(takes)
    for i, path in enumerate(takes):
        total += float(song_table(path, enc).end_s.max())
        if total >= TUNE_MINUTES * 60:
            cut = i + 1
            break
    return takes[:cut], takes[cut:]


def opening_again(take: NoteTable) -> NoteTable:
    """A take's first OPENING_S played again and again to OPENING_S + CONTINUE_S (each note cut
    at the opening's end): all that a continuation knows of the piece, as music to measure."""
    head = take.select(take.start_s < OPENING_S)
    times = int(np.ceil((OPENING_S + CONTINUE_S) / OPENING_S))
    shift = np.repeat(np.arange(times) * OPENING_S, len(head))

    def again(values: np.ndarray) -> np.ndarray:
        return np.tile(values, times)

    return NoteTable(again(head.start_s) + shift, again(np.minimum(head.end_s, OPENING_S)) + shift,
                     again(head.pitch), again(head.velocity), again(head.group),
                     again(head.is_drum), head.pedal_time_s, head.pedal_value, head.pedal_group)


def parse_way(text: str) -> tuple[str, dict]:
    """``"NAME=key:value,key:value"`` -> (NAME, TuneSettings changes)."""
    name, _, spec = text.partition("=")
    kinds = {f.name: f.type for f in fields(TuneSettings)}
    changes = {}
    for item in filter(None, spec.split(",")):
        key, _, value = item.partition(":")
        if key not in kinds:
            raise SystemExit(f"--way: no setting {key!r}; the settings are {', '.join(kinds)}")
        kind = str(kinds[key])  # the annotation's text: "int", "float", "str | None", ...
        changes[key] = int(value) if kind in ("int", "<class 'int'>") else \
            float(value) if kind in ("float", "<class 'float'>") else value
    return name.strip(), changes


def continuations(model: LoadedModel, takes: list[Path], seed: int, out: Path | None = None):
    """Each take's 10 s opening continued for 30 s (its beats tracked, as generate --primer
    finds a take's); the continuations' notes (and, with ``out``, the first as MIDI)."""
    enc = model.info.encoder
    rules = model_rules(model.info, None, top_p=0.95)
    tables = []
    for k, path in enumerate(takes):
        song = song_table(path, enc)
        head = song.select(song.start_s < OPENING_S)
        beats = find_beats(head.start_s, head.pitch, head.velocity)
        beats = None if beats is None else beats.carried_on(OPENING_S + CONTINUE_S + 5)
        piece = generate(model, primer_of(song, OPENING_S, enc), CONTINUE_S, 1, rules,
                         seed + k, beats=beats)[0]
        tables.append(tokens_table(piece.tokens, enc))
        if out is not None and k == 0:
            model.scheme.decode_midi(piece.tokens).write(str(out))
    return tables


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="pop", help="the base model (default: pop)")
    parser.add_argument("--mix", default=str(ROOT / "data" / "pop-dataset"),
                        help="the base's training dataset, for the mix POP909 row (default: "
                             "data/pop-dataset; left out where missing)")
    parser.add_argument("--songs", type=int, default=12, help="POP909 test songs scored")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--seeds", type=int, default=1,
                        help="continuations per opening, each with its own seed (default 1)")
    parser.add_argument("--way", action="append", default=[], metavar="NAME=KEY:VALUE,...",
                        help="another way of tuning, e.g. 'steps 240=steps:240' (repeatable)")
    parser.add_argument("--roll", metavar="PNG",
                        help="draw base and replay-tuned continuing the first held-out opening")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="tune-bench-"))
    base = LoadedModel.open(args.model)
    takes = render_takes(work / "takes")
    tune_on, held = split_takes(takes, base.info.encoder)
    songs = held_out(POP909)[:args.songs] if POP909.exists() else []
    minutes = sum(float(song_table(p, base.info.encoder).end_s.max()) for p in tune_on) / 60
    print(f"{len(tune_on)} takes ({minutes:.1f} min) tuned on, {len(held)} held out, "
          f"{len(songs)} POP909 songs; {os.cpu_count()} cores")

    ways = {"plain": TuneSettings(replay_minutes=0), "replay": TuneSettings()}
    if Path(args.mix).exists():
        ways["mix POP909"] = TuneSettings(mix=args.mix)
    for text in args.way:
        name, changes = parse_way(text)
        ways[name] = TuneSettings(**changes)
    models = {"base": (base, None)}
    for name, settings in ways.items():
        out = work / name.replace(" ", "-")
        t0 = time.perf_counter()
        tune(args.model, [str(p) for p in tune_on], str(out),
             replace(settings, seed=args.seed, progress=False, threads=os.cpu_count()),
             argv=["benchmarks/tune.py", name])
        models[name] = (LoadedModel.open(str(out)), time.perf_counter() - t0)

    reference = [song_table(p, base.info.encoder) for p in held]
    rows, per_opening = {}, {}
    for name, (model, seconds) in models.items():
        first = work / f"{name.replace(' ', '-')}-first.mid"
        runs = [solo_rows(continuations(model, held, args.seed + 100 * k, first if k == 0
                                        else None), OPENING_S, CONTINUE_S, reference=reference)
                for k in range(args.seeds)]
        distances = {d: float(np.mean([mean_metrics(r, [d])[d] for r in runs]))
                     for d in DISTANCES}
        distances["pc_by_seed"] = [mean_metrics(r, ["pc_distance"])["pc_distance"] for r in runs]
        per_opening[name] = np.nanmean([[row["pc_distance"] for row in r] for r in runs], axis=0)
        rows[name] = {"nll_takes": mean_nll(score_files(model, held)[0]),
                      "nll_pop909": (mean_nll(score_files(model, songs)[0]) if songs
                                     else float("nan")),
                      "tune_s": seconds, **distances}
    own = mean_metrics(solo_rows(reference, OPENING_S, CONTINUE_S), DISTANCES)
    again = mean_metrics(solo_rows([opening_again(t) for t in reference], OPENING_S, CONTINUE_S,
                                   reference=reference), DISTANCES)

    b = rows["base"]
    print(f"\n{'':12s}{'NLL takes':>11s}{'change':>8s}{'NLL POP909':>12s}{'change':>8s}"
          f"{'tune s':>8s}{'pc':>8s}{'ioi':>8s}{'length':>8s}")
    for name, r in rows.items():
        takes, pop = r["nll_takes"], r["nll_pop909"]
        print(f"{name:12s}{takes:11.3f}{100 * (takes / b['nll_takes'] - 1):+7.0f}%"
              f"{pop:12.3f}{100 * (pop / b['nll_pop909'] - 1):+7.1f}%"
              f"{r['tune_s'] or 0:8.0f}" + "".join(f"{r[d]:8.3f}" for d in DISTANCES))
    print(f"{'the takes':12s}{'':47s}" + "".join(f"{own[d]:8.3f}" for d in DISTANCES)
          + "   (each held-out take against the others)")
    print(f"{'the opening':12s}{'':47s}" + "".join(f"{again[d]:8.3f}" for d in DISTANCES)
          + "   (each take's first 10 s played again to 40 s)")
    print("\nabove the takes' own (what a continuation as near as the player's own takes gives "
          "is 0; the base's, halved, is the target):")
    for name, r in rows.items():
        r["above_takes"] = {d: r[d] - own[d] for d in DISTANCES}
        print(f"  {name:12s}" + "".join(f"{r['above_takes'][d]:+8.3f}" for d in DISTANCES)
              + ("" if name == "base" else "   (" + ", ".join(
                  f"{r['above_takes'][d] / b['above_takes'][d]:.0%}" for d in DISTANCES)
                  + " of the base's)"))
    rng = np.random.default_rng(args.seed)
    print(f"\npc over {args.seeds} seed(s) per opening, the change from the base with its 95% "
          "bootstrap interval over the openings:")
    for name, r in rows.items():
        change = per_opening[name] - per_opening["base"]
        lo, hi = interval(change, rng) if name != "base" else (0.0, 0.0)
        r["pc_change"], r["pc_change_interval"] = float(np.nanmean(change)), [lo, hi]
        seeds = " / ".join(f"{x:.3f}" for x in r["pc_by_seed"])
        print(f"  {name:12s} {seeds}   mean {r['pc_distance']:.3f}   change "
              f"{r['pc_change']:+.3f} ({lo:+.3f} .. {hi:+.3f})")
    if args.roll:
        from neuralband.audition import draw_pianoroll

        draw_pianoroll([held[0], work / "base-first.mid", work / "replay-first.mid"], args.roll,
                       titles=[f"the player: {held[0].stem}", f"{args.model}, continuing its "
                               "first 10 s", f"{args.model} tuned on 10 minutes of takes"],
                       end_s=OPENING_S + CONTINUE_S)
        print(f"piano roll: {args.roll}")
    print(json.dumps({"takes_tuned": len(tune_on), "minutes_tuned": round(minutes, 2),
                      "seeds": args.seeds,
                      "held_out": len(held), "pop909_songs": len(songs), "rows": rows,
                      "takes_own": own, "opening_again": again, "cores": os.cpu_count()}))


if __name__ == "__main__":
    main()
