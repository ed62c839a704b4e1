"""Steering a conditioned model: fixed, free, or following the music heard (primer or player)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from neuralband.encoders.controls import ControlSettings, token_controls
from neuralband.encoders.keys import estimate_key
from neuralband.encoders.performance import EncoderSettings
from neuralband.encoders.schemes import EventScheme
from neuralband.generate import generate
from neuralband.live.engine import Engine
from neuralband.live.turns import PlaySettings
from neuralband.model import EventLSTM, ModelConfig, save_model
from neuralband.modelfile import bundled_model
from neuralband.runtime import Stepper
from neuralband.sampling import Rules, model_rules
from neuralband.steering import ControlChoice, Steering

CS = ControlSettings()
D_MAJOR = [62, 64, 66, 67, 69, 71, 73, 74]


@pytest.fixture(scope="module")
def conditioned(tmp_path_factory):
    """An untrained model that reads controls, with a note-length limit in its summary."""
    torch.manual_seed(0)
    model = EventLSTM(ModelConfig(embed_dim=16, hidden=32, layers=1, controls=CS.size)).eval()
    path = tmp_path_factory.mktemp("m") / "cond"
    save_model(path, model, EventScheme(), {"max_note_s": 2.5}, dtype="float32",
               controls=CS)
    return path


def test_choices_parse_or_say_why():
    assert ControlChoice.parse(None, None) == ControlChoice("follow", "follow")
    assert ControlChoice.parse("Eb major", "6") == ControlChoice("Eb major", 6.0)
    assert ControlChoice.parse("free", "free").fixed
    with pytest.raises(ValueError, match="key"):
        ControlChoice.parse("H major", None)
    with pytest.raises(ValueError, match="density"):
        ControlChoice.parse(None, "lots")
    with pytest.raises(ValueError, match="0..100"):
        ControlChoice.parse(None, "-2")


def test_following_takes_the_key_and_pace_of_recent_notes():
    s = Steering(CS)
    assert not s.vector.any()  # nothing heard yet: free
    for i, p in enumerate(D_MAJOR * 3):  # 4 notes a second
        v = s.heard(i * 0.25, p)
    assert v[CS.key_flag] == 1 and estimate_key(v[:12]) == (2, "major")
    k = int(np.argmax(v[CS.density_start:CS.density_flag]))
    assert k == CS.density_bin(4.0)
    # 30 s later the player plays in F: the last 20 s say F, the D major notes are forgotten.
    for i, p in enumerate([65, 67, 69, 70, 72, 74, 76, 77] * 2):
        v = s.heard(40 + i * 0.5, p)
    assert estimate_key(v[:12]) in ((5, "major"), (2, "minor"))
    assert not v[6] and not v[1]  # F# and C# are gone


def test_fixed_choices_ignore_what_is_heard():
    s = Steering(CS, ControlChoice("Eb major", 6.0))
    before = s.vector.copy()
    for i, p in enumerate(D_MAJOR):
        s.heard(i * 0.1, p)
    np.testing.assert_array_equal(s.vector, before)
    assert estimate_key(before[:12]) == (3, "major")
    free = Steering(CS, ControlChoice("free", "free"))
    free.heard(0.0, 60)
    assert not free.vector.any()


def test_generate_keeps_the_controls_and_the_models_note_limit(conditioned):
    primer = np.array([370, 62, 280, 66, 280, 69, 280, 190, 194, 197], np.int64)
    pieces = generate(conditioned, primer, 2.0, variations=2, seed=1,
                      controls=ControlChoice(density=8.0))
    assert len(pieces) == 2 and all(len(p.tokens) > len(primer) for p in pieces)
    assert model_rules(Stepper.load(conditioned).info).max_note_s == 2.5
    assert model_rules(Stepper.load(conditioned).info, max_note_s=1.0).max_note_s == 1.0
    assert model_rules(None, Rules(max_note_s=3.0)).max_note_s == 3.0


def test_a_model_without_controls_refuses_a_fixed_choice():
    with pytest.raises(ValueError, match="no key or density"):
        generate(bundled_model("chorale-folk"), None, 1.0, controls=ControlChoice("C major"))
    generate(bundled_model("chorale-folk"), None, 1.0, controls=ControlChoice())  # follow


def test_the_live_engine_follows_the_players_key(conditioned):
    clock = [100.0]
    engine = Engine(Stepper.load(conditioned), lambda data: None,
                    PlaySettings(mode="call"), seed=0, clock=lambda: clock[0])
    engine.start()
    assert not engine.stepper.controls.any()
    for p in D_MAJOR * 2:
        clock[0] += 0.2
        engine._absorb(clock[0], [0x90, p, 80])
        clock[0] += 0.1
        engine._absorb(clock[0], [0x80, p, 0])
    v = engine.stepper.controls[0]
    assert v[CS.key_flag] == 1 and estimate_key(v[:12]) == (2, "major")
    # The model's own control rows are what set_controls computed: the next step reads them.
    np.testing.assert_allclose(engine.stepper._control_rows[0], v @ engine.stepper.control_w,
                               rtol=1e-5, atol=1e-6)
    assert engine.rules.max_note_s == 5.0  # an Engine takes the rules it is given


def test_controls_of_a_real_piece_say_its_key(pop909):
    from neuralband.encoders.performance import encode

    song = pop909 / "001" / "001.mid"
    tokens = encode(song, EncoderSettings(sustain=False))
    c = token_controls(tokens, CS)
    key = estimate_key(c[c[:, CS.key_flag] > 0, :12].mean(axis=0))
    annotated = (pop909 / "001" / "key_audio.txt").read_text().split()[2]
    from neuralband.encoders.keys import parse_key

    assert key == parse_key(annotated)


def test_the_choice_reads_as_a_player_would_say_it():
    assert ControlChoice().words() == "key: follows yours; pace: follows yours"
    assert ControlChoice("Eb major", 6.0).words() == "key: Eb major; pace: 6 notes/s"
    assert "free" in ControlChoice("free", "free").words()
