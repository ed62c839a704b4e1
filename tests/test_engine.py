"""The live engine in-process, in real time, with the bundled model and a scripted player.

The player is a thread that sends a real chorale melody's note messages at their times, as a
keyboard's callback would; the output is captured raw. Ports and JACK are tested in
test_play_jack.py.
"""

from __future__ import annotations

import threading
import time
from collections import Counter

import numpy as np
import pytest

from neuralband.demo import ScriptedPlayer, top_voice
from neuralband.engine import Engine, PlaySettings
from neuralband.modelfile import bundled_model
from neuralband.runtime import Stepper
from neuralband.sampling import Rules
from tests.conftest import CHORALES


def melody(seconds: float, offset: float = 0.2) -> list[tuple[float, list[int]]]:
    """The top voice of a real chorale as (time, raw message), its first ``seconds``."""
    msgs = []
    for s, e, p, v in zip(*top_voice(CHORALES[0]), strict=True):
        if s < seconds:
            msgs.append((offset + s, [0x90, int(p), int(v)]))
            msgs.append((offset + min(e, seconds) - 0.005, [0x80, int(p), 0]))
    return sorted(msgs, key=lambda m: m[0])


class Capture:
    """A raw sender that remembers what went out, and when."""

    def __init__(self) -> None:
        self.sent: list[tuple[float, list[int]]] = []
        self.fail = False

    def __call__(self, data: list[int]) -> None:
        if self.fail:
            raise OSError("port gone")
        self.sent.append((time.perf_counter(), list(data)))


def session(mode: str, messages, seconds: float, rules: Rules | None = None, model=None, **kw):
    out = Capture()
    engine = Engine(Stepper.load(model or bundled_model()), out, PlaySettings(mode=mode, **kw),
                    rules,
                    seed=3, keep_tokens=True)
    player = ScriptedPlayer(messages, lambda data: engine.receive(time.perf_counter(), data))
    threading.Timer(0.05, player.start).start()
    engine.run(seconds)
    player.join()
    engine.close()
    engine.player = player
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


def test_call_mode_answers_after_the_phrase_and_not_during_it():
    phrase = melody(3.0)
    end_of_phrase = phrase[-1][0] + 0.05
    engine, out = session("call", phrase, seconds=7.0, wait_s=0.8, answer_s=2.5)
    band_on = [t - engine.player.t0 for t, d in out.sent if d[0] == 0x90 and d[2] > 0]
    assert band_on, "the band never answered"
    assert min(band_on) >= end_of_phrase + 0.8 - 0.05, "the band played before the pause"
    assert max(band_on) - min(band_on) <= 2.5 + 0.05, "the answer outlasted --answer"
    assert balanced(out.sent)
    assert engine.stats.absorbed == len(phrase)
    assert engine.stats.received == len(phrase)


def test_solo_interrupted_waits_leave_the_model_exactly_on_the_stream():
    """Player events cut proposed waits short; the state must equal a fresh model fed the
    committed stream (so every take-back restored the snapshot exactly)."""
    engine, out = session("solo", melody(4.0), seconds=5.0)
    assert engine.stats.taken_back > 0
    assert engine.stats.band_events > 0
    fresh = Stepper.load(bundled_model())
    for tok in engine.tokens:
        fresh.feed(tok)
    np.testing.assert_allclose(fresh.h, engine.stepper.h, atol=1e-5)
    assert balanced(out.sent)


def test_duet_plays_only_while_the_player_plays():
    phrase = melody(2.5)
    engine, out = session("duet", phrase, seconds=6.0, wait_s=0.5)
    band_on = [t - engine.t0 for t, d in out.sent if d[0] == 0x90 and d[2] > 0]
    assert band_on
    last_player = engine.turns.last_player_s - engine.t0
    assert max(band_on) <= last_player + 0.5 + 0.05
    assert balanced(out.sent)


def test_no_band_note_is_longer_than_the_limit():
    engine, out = session("solo", [], seconds=6.0, rules=Rules(max_note_s=0.5))
    starts: dict[int, float] = {}
    lengths = []
    for t, d in out.sent:
        if d[0] == 0x90 and d[2] > 0:
            starts[d[1]] = t
        elif d[1] in starts:
            lengths.append(t - starts.pop(d[1]))
    assert lengths and max(lengths) <= 0.5 + 0.05
    assert balanced(out.sent)


def test_feedback_guard_ignores_our_own_echo():
    out = Capture()
    engine = Engine(Stepper.load(bundled_model()), out,
                    PlaySettings(mode="solo", feedback_guard_s=0.03), seed=1)

    def echo(data: list[int]) -> None:  # a synth that sends our notes straight back
        out(data)
        engine.receive(time.perf_counter() + 0.002, data)

    engine.out.send = echo
    engine.run(2.0)
    engine.close()
    assert engine.stats.echoes > 0
    assert engine.stats.absorbed == 0


def test_a_dead_output_stops_the_band_and_close_does_not_raise():
    out = Capture()
    engine = Engine(Stepper.load(bundled_model()), out, PlaySettings(mode="solo"), seed=2)
    threading.Timer(1.0, lambda: setattr(out, "fail", True)).start()
    engine.run(2.0)
    assert not engine.output_ok
    assert engine.close() == 0
    assert engine.out.sounding == 0


@pytest.mark.parametrize("mode", ["call", "duet"])
def test_silence_in_listening_modes_plays_nothing(mode):
    engine, out = session(mode, [], seconds=1.5)
    assert out.sent == []
