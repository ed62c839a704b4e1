"""Does the band keep the beat? Its onsets against the beat annotations of real POP909 songs.

Measured on POP909 songs the models never trained on (the test split by content hash,
`training.dataset.split_of`), each song moved so its first note is at 0 s and read as key presses
(as the pop models were trained); the songs' own beats are their annotations (``beat_midi.txt``).
A share "on the grid" is the share of onsets within 40 ms of an eighth-note line
(`neuralband.evaluate.groove_metrics`); "tempo held" the same on a steady grid at the reference
tempo at its best phase; "random" puts as many onsets as the real music has uniformly in the same
seconds (the naive way: what no sense of beat gives).

1. **Continuing 10 s openings** (an event model, ``--model``, default pop): the model continues
   each opening for 30 s, 3 variations, with generate's defaults: the opening's beats found as
   `generate --primer` finds them in a file cut from a song (no annotations beside it, the tempo
   map of a cut file says nothing: the tracker over the primer's notes), carried on at their
   tempo. Measured against the opening's *annotated* beats carried on at their tempo
   (`Beats.carried_on`), with key, notes/s, polyphony and median length beside the songs' own next
   30 s; ``on_given``: the same against the tracker's grid carried on, the one the band was
   given (for the songs themselves: how well that grid fits what they really played next). Rows:
   the songs, random, the model following the primer's beat, the model with ``--beat free``, and
   ``--peer`` models (the model before it read beats).
2. **--bpm B from silence** for B in 70..140: 20 s, 2 variations, on the steady grid --bpm sets.
3. **Accompanying a melody** (``--duet``, default pop-duet): each song's MELODY, its first 60 s
   from the first sung note, accompanied as `generate --lead` does (2 variations); the beats
   from the melody's file (annotations, found beside a POP909 file) and, apart, tracked from the
   melody's notes alone (any melody file); the band's onsets against the song's annotated grid,
   beside the real PIANO + BRIDGE, random, and ``--duet-peer``.

Every table gives, beside the on-grid share, a 95% bootstrap interval of it over the songs: the
songs vary far more than the variations do (the first 16 held-out openings, continued, gave 0.54
where all 48 gave 0.68), so the default is every song of the test split (48).

Run from the repository root (about an hour for the defaults on 2 free cores; ``--songs 16``
about 20 minutes)::

    python benchmarks/groove.py --peer data/base/pop --duet-peer data/base/pop-duet

The output is a table per part and a last line of JSON with every number.
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

from benchmarks.pop_duet import cut  # noqa: E402
from benchmarks.pop_music import (  # noqa: E402
    POP909,
    held_out,
    interval,
    moved,
    primer_of,
    song_table,
    tokens_table,
)
from neuralband.encoders.beats import (  # noqa: E402
    Beats,
    find_beats,
    fitted_tempo_map,
    read_annotations,
    steady_beats,
    tempo_map_beats,
)
from neuralband.encoders.performance import encode_notes  # noqa: E402
from neuralband.evaluate import (  # noqa: E402
    accompaniment_metrics,
    groove_metrics,
    load_parts,
    piece_metrics,
    table_key,
)
from neuralband.generate import accompany, generate  # noqa: E402
from neuralband.modelfile import read_info  # noqa: E402
from neuralband.sampling import model_rules  # noqa: E402
from neuralband.training.dataset import duration_s  # noqa: E402

OPENING_S, CONTINUE_S = 10.0, 30.0
TOGETHER_S = 0.05  # a band onset this close to a melody onset is played together with it
TEMPI = (70, 85, 100, 120, 140)
SOLO = ("on_grid", "on_given", "tempo_held", "in_key_share", "notes_per_s", "polyphony",
        "median_length_s")
DUET = ("on_grid", "band_in_key_share", "band_below_share", "band_consonant_share",
        "band_notes_per_s", "own_on_grid")


def song_beats(path: Path, offset_s: float) -> Beats:
    """A song's annotated beats, moved as its notes were (``offset_s`` earlier)."""
    return read_annotations(path.parent / "beat_midi.txt").shifted(-offset_s)


def within(beats: Beats, lo: float, hi: float) -> Beats | None:
    """The beats in ``[lo, hi]`` (None where under two)."""
    keep = (beats.times_s >= lo) & (beats.times_s <= hi)
    return None if keep.sum() < 2 else Beats(beats.times_s[keep], beats.downbeats[keep],
                                              beats.source)


def own(onsets: np.ndarray, player: np.ndarray) -> np.ndarray:
    """The onsets not played together with one of the player's."""
    if not len(onsets) or not len(player):
        return onsets
    i = np.clip(np.searchsorted(player, onsets), 1, len(player) - 1)
    near = np.minimum(np.abs(onsets - player[i - 1]), np.abs(player[i] - onsets))
    return onsets[near > TOGETHER_S]


def random_onsets(rng: np.random.Generator, count: int, lo: float, hi: float) -> np.ndarray:
    return np.sort(rng.uniform(lo, hi, max(count, 1)))


def mean(rows: list[dict], names: tuple[str, ...]) -> dict:
    """The mean of each metric over the rows that have it (NaN where none has); where rows
    name their song, ``on_grid_95``: a 95% bootstrap interval of the on-grid share over songs
    (each song's variations averaged first), as the songs, not the variations, vary most."""
    out = {}
    for m in names:
        values = np.array([r.get(m, np.nan) for r in rows], np.float64)
        out[m] = float(np.mean(values[~np.isnan(values)])) if (~np.isnan(values)).any() \
            else float("nan")
    if rows and "song" in rows[0]:
        songs = sorted({r["song"] for r in rows})
        per_song = [np.nanmean([r.get("on_grid", np.nan) for r in rows if r["song"] == k])
                    for k in songs]
        out["on_grid_95"] = interval(np.array(per_song), np.random.default_rng(0))
    return out


def table(title: str, names: tuple[str, ...], rows: dict[str, dict]) -> None:
    print(f"\n{title}")
    width = max(len(n) for n in rows) + 2
    cols = [max(len(m) + 2, 10) for m in names]
    print("".ljust(width) + "".join(m.rjust(c) for m, c in zip(names, cols, strict=True))
          + ("  on_grid 95% (songs)" if any("on_grid_95" in r for r in rows.values()) else ""))
    for name, r in rows.items():
        ci = r.get("on_grid_95")
        print(name.ljust(width) + "".join(f"{r.get(m, np.nan):{c}.3f}"
                                          for m, c in zip(names, cols, strict=True))
              + (f"  {ci[0]:.3f}-{ci[1]:.3f}" if ci else ""))


def primer_beats(song, path: Path, first: float, how: str) -> Beats | None:
    """The opening's beats as `generate --primer` finds them in a file cut from the song:
    ``how`` "tracker" (a cut that kept no tempo map: the tracker over the opening's notes) or
    "tempo map" (a cut that kept the song's tempo map: `encoders.beats.fitted_tempo_map` over
    the opening's notes, else the tracker), carried on past the continuation."""
    head = song.select(song.start_s < OPENING_S)
    found = None
    if how == "tempo map":
        import pretty_midi

        mapped = tempo_map_beats(pretty_midi.PrettyMIDI(str(path)))
        mapped = None if mapped is None else within(mapped.shifted(-first), -1.0, OPENING_S)
        found = None if mapped is None else fitted_tempo_map(head.start_s, mapped)
    if found is None:
        found = find_beats(head.start_s, head.pitch, head.velocity)
    return None if found is None else found.carried_on(OPENING_S + CONTINUE_S + 5)


def rules_of(info, tight: float | None):
    """generate's default rules (top-p 0.95), with ``tight`` where given (None: its default)."""
    return model_rules(info, None, top_p=0.95, **({} if tight is None else {"tight": tight}))


def continuations(model: str, songs, grids, primers, follow: bool, variations: int, seed: int,
                  tight: float | None = None) -> list[dict]:
    """Each opening continued for 30 s: groove against the opening's annotated grid carried
    on, and the solo metrics; ``primers``: the beats the model is given (`primer_beats`)."""
    info = read_info(model)
    rules = rules_of(info, tight)
    reads_beat = info.controls is not None and info.controls.beat
    rows = []
    for k, (song, grid, given) in enumerate(zip(songs, grids, primers, strict=True)):
        primer = primer_of(song, OPENING_S, info.encoder)
        start = duration_s(primer, info.encoder)
        key = table_key(song, 0.0, OPENING_S)
        beats = given if follow and reads_beat else None
        for piece in generate(model, primer, CONTINUE_S, variations, rules, seed + k,
                              beats=beats):
            notes = tokens_table(piece.tokens, info.encoder)
            row = piece_metrics(notes, start, start + CONTINUE_S, rules.max_note_s, key)
            row.update(groove_metrics(notes.start_s, grid, start, start + CONTINUE_S))
            row["on_given"] = groove_metrics(notes.start_s, given, start,
                                             start + CONTINUE_S)["on_grid"]
            row["song"] = k
            rows.append(row)
    return rows


def from_silence(model: str, variations: int, seed: int, tight: float | None = None
                 ) -> dict[int, dict]:
    info = read_info(model)
    rules = rules_of(info, tight)
    out = {}
    for bpm in TEMPI:
        grid = steady_beats(bpm, 0.1, 25.0)
        rows = []
        for piece in generate(model, None, 20.0, variations, rules, seed + bpm, beats=grid):
            notes = tokens_table(piece.tokens, info.encoder)
            rows.append(groove_metrics(notes.start_s, grid, 0.1, 20.1) |
                        {"notes_per_s": len(notes) / 20.0})
        out[bpm] = mean(rows, ("on_grid", "tempo_held", "chance", "notes_per_s"))
    return out


def accompaniments(model: str, paths: list[Path], seconds: float, how: str, seed: int,
                   tight: float | None = None) -> list[dict]:
    """Band parts under each melody; ``how``: "annotations" (the melody file's beats as
    generate --lead finds them), "tracker" (tracked from the melody alone) or "free"."""
    info = read_info(model)
    rules = rules_of(info, tight)
    rows = []
    for k, path in enumerate(paths):
        melody, band = load_parts(path, sustain=False)
        start = float(melody.start_s.min())
        melody, band = cut(moved(melody, -start), seconds), cut(moved(band, -start), seconds)
        grid = song_beats(path, start)
        key = table_key(melody)
        if how == "annotations":
            beats = grid
        elif how == "tracker":
            beats = find_beats(melody.start_s, melody.pitch, melody.velocity)
            beats = None if beats is None else beats.carried_on(seconds + 5)
        else:
            beats = None
        back = -10 / info.encoder.steps_per_second  # accompany starts with 10 steps of silence
        lead = encode_notes(melody, info.encoder)
        for piece in accompany(model, lead, 2, rules, seed + k, tail_s=0.0, beats=beats):
            notes = moved(table_from(piece.tokens, info), back)
            played = notes.select(notes.group > 0)
            row = accompaniment_metrics(notes.select(notes.group == 0), played, 0.0, seconds,
                                        key)
            row.update(groove_metrics(played.start_s, grid, 0.0, seconds))
            row["own_on_grid"] = groove_metrics(own(played.start_s, np.sort(melody.start_s)),
                                                grid, 0.0, seconds)["on_grid"]
            row["song"] = k
            rows.append(row)
    return rows


def table_from(tokens: np.ndarray, info):
    from neuralband.encoders.midi_io import table_from_pretty_midi

    return table_from_pretty_midi(info.scheme.decode_midi(tokens))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="pop", help="an event model (default: bundled pop)")
    p.add_argument("--peer", action="append", default=[],
                   help="another event model beside it (repeatable), e.g. the model before")
    p.add_argument("--duet", default="pop-duet", help="a voice-packed model (default pop-duet)")
    p.add_argument("--duet-peer", action="append", default=[], help="another duet model")
    p.add_argument("--data", default=str(POP909), help="the POP909 folder")
    p.add_argument("--songs", type=int, default=None,
                   help="the first N held-out songs (default: all 48 of the test split)")
    p.add_argument("--duet-seconds", type=float, default=60.0)
    p.add_argument("--parts", default="1,2,3", help="which parts to run (default 1,2,3)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    parts = {int(x) for x in args.parts.split(",")}
    paths = held_out(Path(args.data))[:args.songs]
    if not paths:
        sys.exit(f"no POP909 songs under {args.data}")
    result: dict = {"songs": len(paths)}
    rng = np.random.default_rng(args.seed)

    if 1 in parts:
        enc = read_info(args.model).encoder
        songs, grids, tracked, mapped = [], [], [], []
        for path in paths:
            song = song_table(path, enc)
            first = float(prepare_first(path, enc))
            opening = within(song_beats(path, first), -1.0, OPENING_S)
            songs.append(song)
            grids.append(None if opening is None else opening.carried_on(OPENING_S + 35))
            tracked.append(primer_beats(song, path, first, "tracker"))
            mapped.append(primer_beats(song, path, first, "tempo map"))
        real, chance = [], []
        for k, (song, grid, given) in enumerate(zip(songs, grids, tracked, strict=True)):
            row = piece_metrics(song, OPENING_S, OPENING_S + CONTINUE_S, 5.0,
                                table_key(song, 0.0, OPENING_S))
            row.update(groove_metrics(song.start_s, grid, OPENING_S, OPENING_S + CONTINUE_S))
            row["on_given"] = groove_metrics(song.start_s, given, OPENING_S,
                                             OPENING_S + CONTINUE_S)["on_grid"]
            real.append(row | {"song": k})
            count = int(np.sum((song.start_s >= OPENING_S) &
                               (song.start_s < OPENING_S + CONTINUE_S)))
            chance.append(groove_metrics(random_onsets(rng, count, OPENING_S,
                                                       OPENING_S + CONTINUE_S),
                                         grid, OPENING_S, OPENING_S + CONTINUE_S)
                          | {"song": k})
        rows = {"real songs (next 30 s)": mean(real, SOLO), "random onsets": mean(chance, SOLO)}
        rows[f"{args.model} (primer cut, no tempo map)"] = mean(
            continuations(args.model, songs, grids, tracked, True, 3, args.seed), SOLO)
        rows[f"{args.model} (primer cut, --tight 0)"] = mean(
            continuations(args.model, songs, grids, tracked, True, 3, args.seed, 0.0), SOLO)
        rows[f"{args.model} (primer with its tempo map)"] = mean(
            continuations(args.model, songs, grids, mapped, True, 3, args.seed), SOLO)
        rows[f"{args.model} (--beat free)"] = mean(
            continuations(args.model, songs, grids, tracked, False, 3, args.seed), SOLO)
        for peer in args.peer:
            rows[peer] = mean(continuations(peer, songs, grids, tracked, True, 3, args.seed),
                              SOLO)
        table(f"1. Continuing {len(paths)} held-out POP909 openings (10 s) for 30 s, "
              f"3 variations: onsets on the opening's eighth grid carried on", SOLO, rows)
        result["continuations"] = rows

    if 2 in parts:
        info = read_info(args.model)
        if info.controls is not None and info.controls.beat:
            tempi = from_silence(args.model, 2, args.seed)
            loose = from_silence(args.model, 2, args.seed, 0.0)
            for bpm, row in tempi.items():
                row["on_grid_tight_0"] = loose[bpm]["on_grid"]
                row["notes_per_s_tight_0"] = loose[bpm]["notes_per_s"]
            table("2. --bpm B from silence (20 s, 2 variations): onsets on B's eighth grid "
                  "(default --tight, and 0)",
                  ("on_grid", "tempo_held", "chance", "notes_per_s", "on_grid_tight_0",
                   "notes_per_s_tight_0"), {f"{b} BPM": r for b, r in tempi.items()})
            result["bpm"] = {str(b): r for b, r in tempi.items()}

    if 3 in parts:
        real, chance = [], []
        for k, path in enumerate(paths):
            melody, band = load_parts(path, sustain=False)
            start = float(melody.start_s.min())
            melody = cut(moved(melody, -start), args.duet_seconds)
            band = cut(moved(band, -start), args.duet_seconds)
            grid = song_beats(path, start)
            row = accompaniment_metrics(melody, band, 0.0, args.duet_seconds, table_key(melody))
            row.update(groove_metrics(band.start_s, grid, 0.0, args.duet_seconds))
            row["own_on_grid"] = groove_metrics(own(band.start_s, np.sort(melody.start_s)),
                                                grid, 0.0, args.duet_seconds)["on_grid"]
            real.append(row | {"song": k})
            chance.append(groove_metrics(random_onsets(rng, len(band), 0.0, args.duet_seconds),
                                         grid, 0.0, args.duet_seconds) | {"song": k})
        rows = {"real PIANO + BRIDGE": mean(real, DUET), "random onsets": mean(chance, DUET)}
        info = read_info(args.duet)
        hows = ("annotations", "tracker", "free") if info.controls and info.controls.beat \
            else ("free",)
        for how in hows:
            rows[f"{args.duet} (beats: {how})"] = mean(
                accompaniments(args.duet, paths, args.duet_seconds, how, args.seed), DUET)
            if how == "annotations":
                rows[f"{args.duet} (beats: {how}, --tight 0)"] = mean(
                    accompaniments(args.duet, paths, args.duet_seconds, how, args.seed, 0.0),
                    DUET)
        for peer in args.duet_peer:
            rows[peer] = mean(accompaniments(peer, paths, args.duet_seconds, "annotations",
                                             args.seed), DUET)
        table(f"3. Accompanying {len(paths)} held-out melodies ({args.duet_seconds:g} s, "
              "2 variations): band onsets on the song's eighth grid", DUET, rows)
        result["accompaniment"] = rows
    print(json.dumps(result))


def prepare_first(path: Path, enc) -> float:
    """The time of a song's first note as the encoder reads it (where `song_table` puts 0)."""
    from neuralband.encoders.midi_io import read_notes
    from neuralband.encoders.performance import prepare_notes

    return float(prepare_notes(read_notes(path), enc).start_s.min())


if __name__ == "__main__":
    main()
