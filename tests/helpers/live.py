"""The in-process harness: a real chorale melody as a player's messages, a raw capture of
what the band sends, sessions of the event engine on the fake clock, and checks on the take."""

from __future__ import annotations

import threading
import time
from collections import Counter
from types import SimpleNamespace

from neuralband.demo import ScriptedPlayer, top_voice
from neuralband.live.engine import Engine
from neuralband.live.grid_engine import GridEngine
from neuralband.live.midimap import parse_map
from neuralband.live.session import live_precision
from neuralband.live.turns import PlaySettings
from neuralband.modelfile import bundled_model
from neuralband.runtime import Stepper
from neuralband.sampling import Rules, model_rules
from tests.helpers.data import CHORALES
from tests.helpers.fake_clock import ClockedCapture, FakeClock, drive


def melody(seconds: float, offset: float = 0.2) -> list[tuple[float, list[int]]]:
    """The top voice of a real chorale as (time, raw message), its first ``seconds``."""
    msgs = []
    for s, e, p, v in zip(*top_voice(CHORALES[0]), strict=True):
        if s < seconds:
            msgs.append((offset + s, [0x90, int(p), int(v)]))
            msgs.append((offset + min(e, seconds) - 0.005, [0x80, int(p), 0]))
    return sorted(msgs, key=lambda m: m[0])


class Capture:
    """A raw sender that remembers what went out, and when (on ``clock``)."""

    def __init__(self, clock=time.perf_counter) -> None:
        self.sent: list[tuple[float, list[int]]] = []
        self.fail = False
        self.clock = clock

    def __call__(self, data: list[int]) -> None:
        if self.fail:
            raise OSError("port gone")
        self.sent.append((self.clock(), list(data)))


def session(mode: str, messages, seconds: float, rules: Rules | None = None, model=None, **kw):
    """A take of ``seconds`` on the fake clock (`tests.helpers.fake_clock`), the player's
    ``messages`` arriving at their times from the start; ``engine.player.t0`` is the start."""
    clock = FakeClock()
    out = Capture(clock)
    engine = Engine(Stepper.load(model or bundled_model()), out, PlaySettings(mode=mode, **kw),
                    rules, seed=3, keep_tokens=True, clock=clock)
    start = drive(engine, clock, seconds, messages)
    engine.player = SimpleNamespace(t0=start)
    return engine, out


def balanced(sent: list[tuple[float, list[int]]]) -> bool:
    """Every NOTE_ON has its NOTE_OFF (per channel and pitch), none left open."""
    open_ = Counter()
    for _, d in sent:
        key = (d[0] & 0x0F, d[1])
        if d[0] & 0xF0 == 0x90 and d[2] > 0:
            open_[key] += 1
        elif open_[key]:
            open_[key] -= 1
    return not +open_


def tune(seconds: float, offset: float = 0.2, channel: int = 0):
    """The chorale's top voice, looped for ``seconds``."""
    phrase = melody(8.0, offset=0.0)
    msgs = []
    for k in range(int(seconds // 8.0) + 1):
        msgs += [(offset + 8.0 * k + t, [d[0] | channel, d[1], d[2]]) for t, d in phrase
                 if 8.0 * k + t < seconds]
    return sorted(msgs, key=lambda m: m[0])


def run_live(messages, seconds: float, mode: str = "solo", model: str | None = None,
             actions=(), midi_map=(), grid: bool = False, **kw):
    """Play ``messages`` to an engine for ``seconds``; ``actions``: (time, f(engine)) run at
    those times after the player's start (a hand on the panel). The event engine runs on a fake
    clock (`tests.helpers.fake_clock`); the grid band in real time, by a second thread."""
    stepper = Stepper.load(model or bundled_model(), precision=live_precision("auto"))
    settings = PlaySettings(mode=mode, **kw)
    rules = model_rules(stepper.info)
    done: dict[str, float] = {}

    def timed(at, act):
        def run(engine):
            done[act.__name__ if hasattr(act, "__name__") else str(at)] = engine.clock()
            act(engine)
        return at, run

    if not grid:
        clock = FakeClock()
        out = ClockedCapture(clock)
        engine = Engine(stepper, out, settings, rules, seed=5, clock=clock)
        engine.map_midi(parse_map(list(midi_map)))
        start = drive(engine, clock, seconds, messages, [timed(at, a) for at, a in actions])
        engine.player, engine.done = SimpleNamespace(t0=start), done
        return engine, out
    out = Capture()
    engine = GridEngine(stepper, out, settings, rules, seed=5)
    engine.map_midi(parse_map(list(midi_map)))
    player = ScriptedPlayer(messages, lambda data: engine.receive(time.perf_counter(), data))

    def hand() -> None:
        for at, act in [timed(at, a) for at, a in actions]:
            while time.perf_counter() < player.t0 + at:
                time.sleep(0.001)
            act(engine)

    def begin() -> None:
        player.start()
        while player.t0 is None:
            time.sleep(0.001)
        threading.Thread(target=hand, daemon=True).start()

    threading.Timer(0.05, begin).start()
    engine.run(seconds)
    player.join()
    engine.close()
    engine.player, engine.done = player, done
    return engine, out


def band_ons(engine, out, channels=None):
    """(time since the player's start, pitch) of every band NOTE_ON."""
    t0 = engine.player.t0
    return [(t - t0, d[1]) for t, d in out.sent if d[0] & 0xF0 == 0x90 and d[2] > 0
            and (channels is None or d[0] & 0x0F in channels)]
