"""The numpy step runtime computes what the torch model computes, without importing torch."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from encoders import EncoderSettings
from neuralband.model import PRESETS, EventLSTM, ModelConfig
from neuralband.modelfile import ModelFileError, bundled_model, save_model
from neuralband.runtime import Stepper


def torch_logits(model: EventLSTM, tokens: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        logits, _ = model(torch.from_numpy(tokens)[None])
    return logits[0].numpy()


@pytest.mark.parametrize("config", [PRESETS["tiny"], ModelConfig(embed_dim=64, hidden=96,
                                                                 layers=3)])
def test_logits_match_torch_over_1000_steps(tmp_path, config):
    torch.manual_seed(0)
    model = EventLSTM(config).eval()
    save_model(tmp_path / "m", model, EncoderSettings(), dtype="float32")
    tokens = np.random.default_rng(0).integers(0, config.vocab_size, 1000)
    want = torch_logits(model, tokens)
    stepper = Stepper.load(tmp_path / "m")
    got = np.empty_like(want)
    for t, tok in enumerate(tokens):
        stepper.feed(int(tok))
        got[t] = stepper.logits()[0]
    assert np.abs(got - want).max() < 1e-4


def test_batched_streams_are_independent(tmp_path):
    torch.manual_seed(1)
    model = EventLSTM(PRESETS["tiny"]).eval()
    save_model(tmp_path / "m", model, EncoderSettings(), dtype="float32")
    rng = np.random.default_rng(1)
    seqs = rng.integers(0, 388, (3, 50))
    batched = Stepper.load(tmp_path / "m", batch=3)
    for t in range(50):
        batched.feed(seqs[:, t])
    for b in range(3):
        assert np.abs(batched.logits()[b] - torch_logits(model, seqs[b])[-1]).max() < 1e-4


def test_snapshot_restore_and_reset(tmp_path):
    stepper = Stepper.load(bundled_model())
    for tok in (375, 60, 280, 188):
        stepper.feed(tok)
    snap = stepper.snapshot()
    before = stepper.logits().copy()
    for tok in (64, 290, 192):
        stepper.feed(tok)
    assert not np.allclose(stepper.logits(), before)
    stepper.restore(snap)
    assert np.array_equal(stepper.logits(), before)
    stepper.feed(64)
    again = stepper.snapshot(into=snap)
    assert again is snap and not np.array_equal(snap.logits, before)
    stepper.reset()
    fresh = Stepper.load(bundled_model())
    stepper.feed(60)
    fresh.feed(60)
    assert np.array_equal(stepper.logits(), fresh.logits())


def test_fp16_bundled_model_matches_torch_at_fp16_rounding():
    from neuralband.modelfile import load_model

    model, _ = load_model(bundled_model())
    tokens = np.random.default_rng(2).integers(0, 388, 300)
    want = torch_logits(model, tokens)
    stepper = Stepper.load(bundled_model())
    for tok in tokens:
        stepper.feed(int(tok))
    assert np.abs(stepper.logits()[0] - want[-1]).max() < 1e-3


def test_the_play_path_never_imports_torch():
    code = ("import sys; from neuralband.runtime import Stepper; "
            "from neuralband.modelfile import bundled_model; s = Stepper.load(bundled_model()); "
            "s.feed(60); s.logits(); print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False", out.stderr


def test_missing_weights_are_one_error(tmp_path):
    with pytest.raises(ModelFileError, match="no such model file"):
        Stepper.load(tmp_path / "nothing")
