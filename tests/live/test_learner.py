"""`play --learn`: a learnt version takes the model's place at a pause, exactly where the
stream is, and the learner process teaches the band while it plays."""

from __future__ import annotations

import time
from types import SimpleNamespace

import numpy as np
import pytest

from neuralband.live.engine import Engine
from neuralband.live.learner import Learner
from neuralband.live.learnt import Offer, replay
from neuralband.live.turns import PlaySettings
from neuralband.loaded import LoadedModel
from neuralband.runtime import Stepper
from tests.helpers.fake_clock import FakeClock, drive
from tests.helpers.live import Capture, balanced, melody


@pytest.fixture(scope="module")
def pop() -> LoadedModel:
    return LoadedModel.open("pop")


def other_weights(model: LoadedModel, seed: int = 1) -> dict[str, np.ndarray]:
    """The model's weights a little moved: a stand-in for a version that learnt something."""
    rng = np.random.default_rng(seed)
    return {k: (v + rng.normal(0, 0.02, v.shape)).astype(v.dtype)
            for k, v in model.weights.items()}


def test_a_stepper_that_adopts_another_steps_as_that_one_does(pop):
    new = Stepper(other_weights(pop), pop.info.config, 1, pop.info)
    live = pop.stepper()
    controls = np.zeros(pop.info.config.controls, np.float32)
    controls[3] = 1.0
    for s in (live, new):
        s.set_controls(controls)
        s.place_beat(0.5, 0.6, 4)
    stream = [388 - 100 + 9, 60, 256 + 20, 388 - 100 + 30, 188, 64]
    for tok in stream[:3]:
        live.feed(tok)
        new.feed(tok)
    live.speculate(stream[3])  # a guess computed with the old weights must not be taken
    live.adopt(new)
    np.testing.assert_allclose(live.logits(), new.logits(), atol=1e-5)
    for tok in stream[3:]:
        live.feed(tok)
        new.feed(tok)
    np.testing.assert_allclose(live.logits(), new.logits(), atol=1e-5)
    np.testing.assert_allclose(live.h, new.h, atol=1e-6)
    with pytest.raises(ValueError, match="cannot take"):
        live.adopt(pop.stepper(batch=2))


def test_a_learnt_version_comes_in_at_a_pause_exactly_on_the_stream(pop):
    """Offered mid-answer, the version waits for a pause, is fed the events it missed, and the
    band plays on from exactly the state the version reaches on the whole stream."""
    clock = FakeClock()
    out = Capture(clock)
    engine = Engine(pop.stepper(), out, PlaySettings(mode="call"), pop.rules(), seed=3,
                    keep_tokens=True, clock=clock)
    weights = other_weights(pop)
    offered = {}

    def offer(engine: Engine) -> None:
        stepper = Stepper(weights, pop.info.config, 1, pop.info)
        fed = replay(stepper, engine.tokens[:-5], engine.control_changes, engine.beat_changes)
        engine.learnt = Offer(stepper, fed, 1)  # five events behind, as a learner's would be
        offered["at"] = len(engine.tokens)

    calls = [(9.0 * k + t, m) for k in range(3) for t, m in melody(5.0)]  # answered at 5, 14 s
    drive(engine, clock, 25.0, calls, actions=[(6.0, offer)])  # offered during the answer
    assert engine.version == 1 and engine.learnt is None
    assert len(engine.tokens) > offered["at"] + 50  # and the band played on with it
    fresh = Stepper(weights, pop.info.config, 1, pop.info)
    replay(fresh, engine.tokens, engine.control_changes, engine.beat_changes)
    np.testing.assert_allclose(fresh.h, engine.stepper.h, atol=1e-5)
    assert balanced(out.sent)


def test_a_version_far_behind_waits_to_be_caught_up(pop):
    engine = SimpleNamespace(tokens=list(range(100)), control_changes=[], beat_changes=[])
    offer = Offer(pop.stepper(), 10, 1)
    assert offer.behind(engine) == 90
    with offer.lock:  # a thread is feeding it: the engine leaves it alone
        assert offer.behind(engine) > 1000 and not offer.bring_up(engine)


def test_a_learner_whose_process_dies_says_so_once_and_the_band_plays_on(pop, tmp_path):
    """The session hears the news by polling: one line, once; the status line keeps saying it."""
    engine = Engine(pop.stepper(), Capture(), PlaySettings(mode="solo"), pop.rules(), seed=3,
                    keep_tokens=True, record=True)
    learner = Learner(pop, engine, tmp_path / "kept")
    learner.start()
    learner._process.kill()
    learner._process.join()
    news = learner.poll()
    assert news == ("learning stopped: the learner process ended; the band plays on with "
                    "version 0")
    assert learner.poll() is None and learner.describe() == "learning stopped (v0)"
    assert learner.close() is None and not (tmp_path / "kept").exists()


@pytest.mark.slow
def test_the_learner_teaches_the_band_while_it_plays(pop, tmp_path):
    """A real learner process on an engine played in real time: a version comes back, takes
    the band's place at a pause, and is kept as a model that loads; nothing is left sounding."""
    out = Capture()
    engine = Engine(pop.stepper(), out, PlaySettings(mode="call", wait_s=0.6), pop.rules(),
                    seed=3, keep_tokens=True, record=True)
    learner = Learner(pop, engine, tmp_path / "kept", steps=3, replay_minutes=0.3,
                      every_notes=20)
    learner.start()
    phrases = melody(6.0)
    engine.start()
    t0 = time.perf_counter()
    k = 0
    deadline = t0 + 150.0
    while engine.version == 0 and time.perf_counter() < deadline and not learner.failed:
        now = time.perf_counter()
        period = 9.0
        while k < len(phrases) * 100 and t0 + (k // len(phrases)) * period + \
                phrases[k % len(phrases)][0] <= now:
            engine.receive(now, phrases[k % len(phrases)][1])
            k += 1
        engine.turn(now)
        learner.poll()
        time.sleep(0.002)
    engine.close()
    assert learner.failed is None, learner.failed
    assert engine.version >= 1, learner.describe()
    assert f"v{engine.version} learnt on" in learner.describe()
    scratch = learner.folder
    kept = learner.close()
    assert kept == tmp_path / "kept" and not scratch.exists()
    model = LoadedModel.open(str(kept))
    assert model.info.summary["tuned"]["base"] == str(pop.path)
    assert balanced(out.sent)


@pytest.mark.parametrize("options, said", [
    (["--model", "grid", "--learn-me"], "--learn-me teaches event models"),
    (["--learn-from", "takes"], "give --learn-me too"),
    (["--learn-me", "--learn-every", "0"], "--learn-every and --learn-steps must be"),
    (["--learn-me", "--learn-from", "nosuch-takes"], "no such file or folder: nosuch-takes"),
])
def test_play_refuses_learning_it_cannot_do_in_one_line(capfd, options, said):
    from neuralband.cli import main

    assert main(["play", "--in", "nosuch", "--out", "nosuch", *options]) == 2
    err = capfd.readouterr().err
    assert said in err and len(err.strip().splitlines()) == 1, err
