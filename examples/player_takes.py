"""Render MIDI files as one player's takes: what `neuralband tune` learns from, when no one has
played yet.

A score file (music21's chorales, say) is exact: every chord on the beat, every note as loud as
the next. A pianist playing it is not. Each take here gets the player's own tempo (one per take,
drifting a few per cent and slowing at the end), chords spread a few milliseconds with the top
voice first, the top voice louder than the inner ones and phrases that swell and fall, and a
finger lifted before the next note. The result is written as `play` writes a take: one MIDI file,
track ``player`` (and an empty ``band``), 960 ticks a second. It is a stand-in for a player, not
a recording of one; the seed fixes it::

    python examples/player_takes.py tests/data/chorales_train -o data/chorale-takes
    neuralband tune pop data/chorale-takes -o data/pop-chorales
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import mido
import numpy as np
import pretty_midi

TICKS_PER_SECOND = 960  # as live/takes.py writes a take: 480 ticks a beat at 120 BPM


def player_times(score_s: np.ndarray, end_s: float, rng: np.random.Generator,
                 bpm: tuple[float, float]) -> np.ndarray:
    """Score seconds (at the file's own tempo) -> the player's seconds: a tempo of its own,
    drifting slowly and slowing over the last two seconds of the score."""
    grid = np.linspace(0.0, end_s + 1.0, 256)
    drift = np.cumsum(rng.normal(0.0, 0.01, len(grid)))
    drift = np.convolve(drift - drift.mean(), np.ones(16) / 16, mode="same")
    ritard = 1.0 + 0.25 * np.clip((grid - (end_s - 2.0)) / 2.0, 0.0, 1.0)
    scale = 120.0 / rng.uniform(*bpm)  # the file says 120 BPM; the player takes another tempo
    local = scale * (1.0 + np.clip(drift, -0.05, 0.05)) * ritard  # player s per score s
    elapsed = np.concatenate([[0.0], np.cumsum(np.diff(grid) * local[:-1])])
    return np.interp(score_s, grid, elapsed)


def render(source: Path, rng: np.random.Generator, bpm: tuple[float, float]) -> mido.MidiFile:
    """One score file as a take: the player's timing, touch and dynamics."""
    pm = pretty_midi.PrettyMIDI(str(source))
    notes = [(n.start, n.end, n.pitch, i) for i, inst in enumerate(pm.instruments)
             if not inst.is_drum for n in inst.notes]
    if not notes:
        raise ValueError(f"{source}: no notes")
    start, end, pitch, part = (np.array(column) for column in zip(*notes, strict=True))
    top = np.zeros(len(start), bool)  # the highest note of each chord carries the tune
    for t in np.unique(start):
        at = np.flatnonzero(start == t)
        top[at[np.argmax(pitch[at])]] = True
    chord_lag = {t: rng.normal(0.0, 0.010) for t in np.unique(start)}
    onset = player_times(start, pm.get_end_time(), rng, bpm)
    release = player_times(end, pm.get_end_time(), rng, bpm)
    onset = (onset + np.array([chord_lag[t] for t in start])
             + np.where(top, -0.008, rng.normal(0.006, 0.004, len(start))))
    onset = np.maximum(onset - onset.min(), 0.0)
    lifted = release - 0.04 + rng.normal(0.0, 0.012, len(start))  # the finger lifts early
    release = np.maximum(lifted, onset + 0.6 * np.maximum(release - onset, 0.05))
    phrase = 8.0 * np.sin(2 * np.pi * start / 16.0 + rng.uniform(0, 2 * np.pi))
    velocity = np.clip(np.where(top, 80, 58) + phrase + rng.normal(0, 5, len(start)), 20, 120)

    events = sorted([(t, 1, int(p), int(v)) for t, p, v in zip(onset, pitch, velocity,
                                                                 strict=True)]
                    + [(t, 0, int(p), 0) for t, p in zip(release, pitch, strict=True)])
    player = mido.MidiTrack([mido.MetaMessage("track_name", name="player", time=0),
                             mido.MetaMessage("set_tempo", tempo=500_000, time=0)])
    last = 0
    for t, on, p, v in events:
        tick = round(t * TICKS_PER_SECOND)
        kind = "note_on" if on else "note_off"
        player.append(mido.Message(kind, note=p, velocity=v, time=tick - last))
        last = tick
    player.append(mido.MetaMessage("end_of_track", time=0))
    band = mido.MidiTrack([mido.MetaMessage("track_name", name="band", time=0),
                           mido.MetaMessage("end_of_track", time=0)])
    return mido.MidiFile(type=1, ticks_per_beat=480, tracks=[player, band])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sources", nargs="+", help="MIDI files or folders of them")
    parser.add_argument("-o", "--out", required=True, help="folder for the takes (made)")
    parser.add_argument("--bpm", type=float, nargs=2, default=(66.0, 84.0),
                        metavar=("LOW", "HIGH"),
                        help="the range each take's tempo is drawn from (default: 66 84)")
    parser.add_argument("--seed", type=int, default=0, help="the player's seed (default: 0)")
    args = parser.parse_args(argv)
    files = sorted({p for s in map(Path, args.sources)
                    for p in ([s] if s.is_file() else s.rglob("*.mid"))})
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    seconds = 0.0
    for path in files:
        try:
            take = render(path, rng, tuple(args.bpm))
        except (OSError, ValueError, EOFError) as err:
            print(f"{path}: skipped ({err})", file=sys.stderr)
            continue
        take.save(str(out / path.name))
        seconds += take.length
    print(f"{len(files)} takes, {seconds / 60:.1f} minutes, in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
