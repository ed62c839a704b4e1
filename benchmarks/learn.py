"""Does the band learn its player while it plays (`play --learn-me`)?

A scripted player (a real JACK client in its own process, as `neuralband demo`'s) plays phrases
of a style the bundled pop model never heard: Bach chorales, all four voices, as one pianist's
takes (examples/player_takes.py), each phrase from the next chorale in turn (so every minute
brings music of the same kind that the band has not heard). Each phrase is 6 s, then 4 s of
rest in which the band answers (call mode), for ``--minutes``. The engine runs in this process
on JACK ports with the learner attached, as `play --learn-me` runs it. Measured:

- ``nll``: each phrase's NLL per event (nats, its notes scored from a fresh state) under the
  version the band played when the phrase began; the first minute's mean against the last's,
  and the last minute's against the same phrases under the model it started with (the
  chorales differ from phrase to phrase: this holds the material fixed);
- ``step p99`` and ``timing p99`` (ms): the engine's model step and its band events' lateness
  against their scheduled times, in the learning run and in a run as long without the learner
  (the baseline, first);
- stuck notes (a NOTE_ON the band sent without its NOTE_OFF) and whether the kept model loads
  and plays.

Run from the repository root with a JACK server running (about 2 x ``--minutes`` + 2 minutes)::

    jackd --no-realtime -d dummy -r 48000 -p 128 &
    python benchmarks/learn.py --minutes 5

A table, then a last line of JSON with every number.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pretty_midi  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.tune import render_takes  # noqa: E402
from neuralband.demo import _JackPlayer  # noqa: E402
from neuralband.live.engine import Engine  # noqa: E402
from neuralband.live.learner import Learner  # noqa: E402
from neuralband.live.ports import MidiInput, MidiOutput  # noqa: E402
from neuralband.live.turns import PlaySettings  # noqa: E402
from neuralband.loaded import LoadedModel  # noqa: E402
from neuralband.score import mean_nll, score_files  # noqa: E402

PHRASE_S, REST_S = 6.0, 4.0


def phrases(takes: list[Path], minutes: float) -> list[list[tuple[float, int, int, float]]]:
    """6 s phrases (notes begun in it, cut at its end), each from the next take in turn (the
    k-th phrase from take k mod N, its (k // N)-th 6 s): every minute the player plays the same
    kind of material, new to the band, as a player of one style does; as many as fit."""
    notes = [[n for inst in pretty_midi.PrettyMIDI(str(p)).instruments for n in inst.notes]
             for p in takes]
    out = []
    for k in range(int(minutes * 60 // (PHRASE_S + REST_S))):
        take = notes[k % len(takes)]
        lo = (k // len(takes)) * PHRASE_S
        hi = lo + PHRASE_S
        out.append([(n.start - lo, n.pitch, n.velocity, max(min(n.end, hi - 0.01),
                                                             n.start + 0.005) - lo)
                    for n in take if lo <= n.start < hi - 0.01])
    return out


def messages(cut: list[list[tuple[float, int, int, float]]]) -> list[tuple[float, list[int]]]:
    """The phrases one after another, each followed by the rest the band answers in."""
    msgs = []
    for k, phrase in enumerate(cut):
        at = 1.0 + k * (PHRASE_S + REST_S)
        for start, pitch, velocity, end in phrase:
            msgs += [(at + start, [0x90, pitch, velocity]), (at + end, [0x80, pitch, 0])]
    return sorted(msgs, key=lambda m: m[0])


def session(model: LoadedModel, msgs, seconds: float, folder: Path | None):
    """One run on JACK: the player's process, the engine here (with a learner where ``folder``
    is given); returns the engine, the learner, what the band sent and the versions' times."""
    player = _JackPlayer(msgs)
    sent: list[list[int]] = []
    engine = Engine(model.stepper(), sent.append, PlaySettings(mode="call", wait_s=0.8,
                                                               answer_s=REST_S - 1.0),
                    model.rules(), seed=1, record=True, keep_tokens=folder is not None)
    inp = MidiInput(engine.receive, name=player.port, api="jack", client="nb-learn-bench")
    out = MidiOutput(virtual=True, api="jack", client="nb-learn-bench")

    def send(data: list[int]) -> None:
        sent.append(list(data))
        out.send(data)

    engine.out.send = send
    learner = None
    swaps = [(0.0, 0)]
    if folder is not None:
        learner = Learner(model, engine, folder.parent / "kept", folder=folder)
        learner.start()

    def poll() -> None:
        if learner is not None:
            news = learner.poll()
            if news is not None:
                print(news)
            if engine.version != swaps[-1][1]:
                swaps.append((time.perf_counter() - t0, engine.version))

    t0 = time.perf_counter()
    player.start()
    try:
        for _ in engine.running(seconds, every_s=0.25):
            poll()
    finally:
        engine.close()
        inp.close()
        out.close()
        player.close()
    return engine, learner, sent, swaps, t0


def left_sounding(sent: list[list[int]]) -> int:
    held: dict[tuple[int, int], int] = {}
    for d in sent:
        key = (d[0] & 0x0F, d[1])
        if d[0] & 0xF0 == 0x90 and d[2] > 0:
            held[key] = held.get(key, 0) + 1
        elif d[0] & 0xF0 in (0x80, 0x90) and held.get(key):
            held[key] -= 1
    return sum(held.values())


def phrase_nll(cut, swaps, folders: dict[int, str], base: LoadedModel, work: Path
               ) -> tuple[list[float], list[float]]:
    """Each phrase's NLL under the version the band played when it began, and under the model
    it started with (the same phrases: what the material alone makes of the NLL)."""
    out, before = [], []
    loaded = {0: base}
    for k, phrase in enumerate(cut):
        at = 1.0 + k * (PHRASE_S + REST_S)
        version = max(v for t, v in swaps if t <= at)
        if version not in loaded:
            loaded[version] = LoadedModel.open(folders[version])
        pm = pretty_midi.PrettyMIDI()
        inst = pretty_midi.Instrument(0)
        inst.notes = [pretty_midi.Note(v, p, s, e) for s, p, v, e in phrase]
        pm.instruments.append(inst)
        path = work / f"phrase-{k:03d}.mid"
        pm.write(str(path))
        out.append(mean_nll(score_files(loaded[version], [path])[0]))
        before.append(mean_nll(score_files(base, [path])[0]))
    return out, before


def ms(ring) -> float:
    return ring.percentile(99) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--model", default="pop")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="learn-bench-"))
    model = LoadedModel.open(args.model)
    cut = phrases(render_takes(work / "takes"), args.minutes)
    msgs = messages(cut)
    seconds = msgs[-1][0] + REST_S
    print(f"{len(cut)} phrases of {PHRASE_S:g} s, {seconds / 60:.1f} min a run; "
          f"{os.cpu_count()} cores", flush=True)

    base_engine, _, base_sent, _, _ = session(model, msgs, seconds, None)
    engine, learner, sent, swaps, _ = session(model, msgs, seconds, work / "learning")
    folders = dict(learner.versions)
    kept = learner.close()
    nll, base_nll = phrase_nll(cut, swaps, folders, model, work)
    per_minute = int(60 // (PHRASE_S + REST_S))
    first, last = float(np.mean(nll[:per_minute])), float(np.mean(nll[-per_minute:]))
    last_base = float(np.mean(base_nll[-per_minute:]))
    plays = LoadedModel.open(str(kept)).stepper() is not None if kept else False

    rows = {"without the learner": base_engine, "learning": engine}
    print(f"\n{'':22s}{'band notes':>11s}{'step p99':>10s}{'timing p99':>12s}{'stuck':>7s}")
    for (name, e), out in zip(rows.items(), (base_sent, sent), strict=True):
        notes = sum(1 for d in out if d[0] & 0xF0 == 0x90 and d[2] > 0)
        print(f"{name:22s}{notes:11d}{ms(e.stats.step_s):10.2f}{ms(e.stats.timing_s):12.2f}"
              f"{left_sounding(out):7d}")
    print(f"\nversions: {', '.join(f'v{v} at {t:.0f} s' for t, v in swaps[1:]) or 'none'}")
    print(f"phrase NLL, first minute {first:.3f}, last minute {last:.3f} "
          f"({100 * (last / first - 1):+.0f}%); the last minute's phrases under the model it "
          f"started with {last_base:.3f} (learnt: {100 * (last / last_base - 1):+.0f}%); "
          f"kept model plays: {plays}")
    print(json.dumps({
        "phrases": len(cut), "seconds": seconds, "swaps": swaps, "nll": nll,
        "nll_base": base_nll, "nll_first_minute": first, "nll_last_minute": last,
        "nll_last_minute_base": last_base,
        "step_p99_ms": [ms(base_engine.stats.step_s), ms(engine.stats.step_s)],
        "timing_p99_ms": [ms(base_engine.stats.timing_s), ms(engine.stats.timing_s)],
        "late_dropped": [base_engine.stats.late, engine.stats.late],
        "stuck": [left_sounding(base_sent), left_sounding(sent)], "kept_plays": plays,
        "cores": os.cpu_count()}))


if __name__ == "__main__":
    main()
