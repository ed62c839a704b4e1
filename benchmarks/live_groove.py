"""Does the live band keep the player's beat? The engine fed a real melody at its own timing.

What is measured, on POP909 songs the models never trained on (the test split by content hash):
each song's MELODY, its first ``--seconds`` (40 s) from the first sung note, is played into the
live engine (`neuralband.live.engine.Engine`, what `play` runs) as a keyboard's messages at the
melody's own times, on a fake clock (`tests.helpers.fake_clock`: time moves only when the harness
moves it, so the numbers do not depend on how busy this machine is; the model's every step is
computed for real). The band's *own* onsets (those not within 50 ms of one of the player's) from
the song's fifth beat on are set against the song's annotated eighth-note grid
(``beat_midi.txt``, 40 ms): the share on it, beside random onsets (chance).

Rows (``--duet``, default pop-duet, ``--mode duet``, the command line's defaults):

1. no clock: the band follows the player's beat with the beat tracker (`neuralband.live.beat`);
   and the same with ``--tight 0`` (the model's own timing, no pull onto the lines);
2. an outside MIDI clock (``--clock midi``): 24 pulses a beat, laid on the song's own annotated
   beats, Start on the first downbeat, as a drummer's clock would run; and with ``--tight 0``;
3. ``--beat free``: the same model with no beat;
4. ``--peer`` models (the model before it read beats), no beat to read;
5. the real band (the song's PIANO + BRIDGE), its own onsets measured the same way: what a
   band that plays as the record did would score.

And **solo after the player stops** (``--solo``, default pop, ``--mode solo``): the player plays
the melody's first 20 s and stops; the band's onsets of the next 20 s against the song's grid of
those 20 s carried on at its tempo: whether it keeps the tempo it had.

Each share comes with a 95% bootstrap interval over the songs: they vary far more than anything
else here (one song's own onsets 0.26 on the grid, another's 0.94), so the default is every song
of the test split (48): the first 8 alone gave the real band 0.85 where all 48 give 0.77.

Run from the repository root (about 15 minutes for the defaults on one core)::

    python benchmarks/live_groove.py --peer data/base/pop-duet

The output is a table and a last line of JSON.
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

from benchmarks.groove import own, rules_of, song_beats, within  # noqa: E402
from benchmarks.pop_duet import cut  # noqa: E402
from benchmarks.pop_music import POP909, held_out, interval, moved  # noqa: E402
from neuralband.encoders.beats import Beats, chance_on_grid, on_grid  # noqa: E402
from neuralband.evaluate import load_parts  # noqa: E402
from neuralband.live.beat import CLICK_CHANNEL, LiveBeat  # noqa: E402
from neuralband.live.engine import Engine  # noqa: E402
from neuralband.live.sync import CLOCK, PPQN, START  # noqa: E402
from neuralband.live.turns import PlaySettings  # noqa: E402
from neuralband.modelfile import read_info  # noqa: E402
from neuralband.runtime import Stepper  # noqa: E402
from neuralband.steering import ControlChoice  # noqa: E402
from tests.helpers.fake_clock import ClockedCapture, FakeClock, drive  # noqa: E402

LEAD_IN_S = 0.5  # the melody starts this long after the band does


def melody_messages(melody) -> list[tuple[float, list[int]]]:
    """The melody's notes as a keyboard's messages, at their own times."""
    msgs = []
    for s, e, p, v in zip(melody.start_s, melody.end_s, melody.pitch, melody.velocity,
                          strict=True):
        msgs.append((LEAD_IN_S + float(s), [0x90, int(p), int(v)]))
        msgs.append((LEAD_IN_S + float(e) - 0.005, [0x80, int(p), 0]))
    return sorted(msgs, key=lambda m: (m[0], m[1][0] == 0x90))


def clock_messages(beats: Beats, until_s: float) -> list[tuple[float, list[int]]]:
    """An outside MIDI clock on the song's beats: Start at its first downbeat once the take has
    begun, then 24 pulses a beat, each beat's pulses spread evenly over it."""
    begun = beats.downbeats & (beats.times_s + LEAD_IN_S > 0.05)
    first = int(np.argmax(begun)) if begun.any() else 0
    t = beats.times_s[first:]
    msgs = [(LEAD_IN_S + float(t[0]) - 0.001, [START])]
    for a, b in zip(t[:-1], t[1:], strict=True):
        if a > until_s:
            break
        msgs.extend((LEAD_IN_S + float(a + (b - a) * k / PPQN), [CLOCK]) for k in range(PPQN))
    return msgs


def band_onsets(out: ClockedCapture, start: float) -> np.ndarray:
    """The band's NOTE_ONs (not the click), in the song's seconds."""
    return np.array(sorted(t - start - LEAD_IN_S for t, d in out.sent
                           if d[0] & 0xF0 == 0x90 and d[2] > 0
                           and d[0] & 0x0F != CLICK_CHANNEL))


def take(model: str, mode: str, messages, seconds: float, seed: int, sync: str = "internal",
         follow: bool = True, tight: float | None = None) -> tuple[ClockedCapture, float]:
    """One take on the fake clock, as `play` would run it with the command line's defaults."""
    info = read_info(model)
    clock = FakeClock()
    out = ClockedCapture(clock)
    stepper = Stepper.load(model)
    beat = LiveBeat(follow=follow) if stepper.reads_beat else None
    engine = Engine(stepper, out, PlaySettings(mode=mode), rules_of(info, tight),
                    seed, clock=clock, controls=ControlChoice.parse(None, None)
                    if info.controls is not None else None, sync=sync, beat=beat)
    start = drive(engine, clock, seconds + LEAD_IN_S, messages)
    return out, start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--duet", default="pop-duet", help="the duet model (default pop-duet)")
    p.add_argument("--solo", default="pop", help="the solo model (default pop)")
    p.add_argument("--peer", action="append", default=[], help="another duet model beside it")
    p.add_argument("--data", default=str(POP909), help="the POP909 folder")
    p.add_argument("--songs", type=int, default=None,
                   help="the first N held-out songs (default: all 48 of the test split)")
    p.add_argument("--seconds", type=float, default=40.0, help="of each melody (default 40)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    paths = held_out(Path(args.data))[:args.songs]
    if not paths:
        sys.exit(f"no POP909 songs under {args.data}")
    info = read_info(args.duet)
    reads = info.controls is not None and info.controls.beat
    conditions = ([("no clock: the tracker", args.duet, "internal", True, None),
                   ("the tracker, --tight 0", args.duet, "internal", True, 0.0),
                   ("an outside MIDI clock", args.duet, "midi", True, None),
                   ("a MIDI clock, --tight 0", args.duet, "midi", True, 0.0),
                   ("--beat free", args.duet, "internal", False, None)] if reads
                  else [("no beat", args.duet, "internal", True, None)])
    conditions += [(f"{peer} (no beat)", peer, "internal", True, None) for peer in args.peer]
    shares: dict[str, list[float]] = {name: [] for name, *_ in conditions}
    shares["random onsets"] = []
    shares["the real band (PIANO + BRIDGE)"] = []
    solo_kept, solo_chance = [], []
    for k, path in enumerate(paths):
        melody, real = load_parts(path, sustain=False)
        first = float(melody.start_s.min())
        melody = cut(moved(melody, -first), args.seconds)
        real = cut(moved(real, -first), args.seconds)
        grid = song_beats(path, first)
        # from the fifth beat after the melody comes in
        fifth = float(grid.times_s[min(int(np.searchsorted(grid.times_s, 0.0)) + 4,
                                       len(grid) - 1)])
        span = within(grid, -1.0, args.seconds + 1.0)
        player = np.sort(melody.start_s)
        notes = melody_messages(melody)
        for name, model, sync, follow, tight in conditions:
            messages = notes + (clock_messages(grid, args.seconds) if sync == "midi" else [])
            out, start = take(model, "duet", sorted(messages, key=lambda m: m[0]),
                              args.seconds, args.seed + k, sync, follow, tight)
            band = own(band_onsets(out, start), player)
            band = band[(band >= fifth) & (band < args.seconds)]
            shares[name].append(on_grid(band, span) if len(band) else float("nan"))
        shares["random onsets"].append(chance_on_grid(span))
        theirs = own(np.unique(real.start_s), player)
        theirs = theirs[(theirs >= fifth) & (theirs < args.seconds)]
        shares["the real band (PIANO + BRIDGE)"].append(on_grid(theirs, span))
        # solo: the player's first 20 s, then the band alone for 20 s
        half = min(20.0, args.seconds / 2)
        opening = within(grid, -1.0, half)
        if opening is None:
            continue
        played = [m for m in notes if m[0] < LEAD_IN_S + half]
        played += [(LEAD_IN_S + half, [0x80, pitch, 0]) for pitch in range(128)
                   if any(m[1][1] == pitch for m in played)]  # every key up as it stops
        out, start = take(args.solo, "solo", played, 2 * half, args.seed + k)
        after = band_onsets(out, start)
        after = after[(after >= half + 0.5) & (after < 2 * half)]
        carried = opening.carried_on(2 * half + 1.0)
        solo_kept.append(on_grid(after, carried) if len(after) else float("nan"))
        solo_chance.append(chance_on_grid(within(carried, half, 2 * half) or carried))
    print(f"\nLive duet ({args.duet}): {len(paths)} held-out POP909 melodies played at their own "
          f"timing for {args.seconds:g} s; the band's own onsets from the fifth beat on the "
          "song's eighth grid")
    result = {"songs": len(paths), "seconds": args.seconds}
    rng = np.random.default_rng(args.seed)
    print(f"  {'':34s} {'share':>6s}  95% over songs")
    for name, values in shares.items():
        mean = float(np.nanmean(values)) if values else float("nan")
        lo, hi = interval(np.array(values, np.float64), rng)
        print(f"  {name:34s} {mean:6.3f}  {lo:.3f}-{hi:.3f}")
        result[name] = mean
        result[f"{name} 95%"] = [lo, hi]
    kept = float(np.nanmean(solo_kept)) if solo_kept else float("nan")
    chance = float(np.nanmean(solo_chance)) if solo_chance else float("nan")
    print(f"\nSolo ({args.solo}) after the player stops (20 s played, 20 s alone): the band's "
          f"onsets on the player's grid carried on: {kept:.3f} (random {chance:.3f})")
    result["solo_after_stop"] = kept
    result["solo_after_stop_chance"] = chance
    print(json.dumps(result))


if __name__ == "__main__":
    main()
