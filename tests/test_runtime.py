"""The numpy step runtime computes what the torch model computes, without importing torch."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes, arrays

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


# --- int8 weights (neuralband.int8) ---------------------------------------------------------------

from neuralband import int8  # noqa: E402 (numba: in the dev extra, as in neuralband[fast])


def stream_nll(stepper: Stepper, tokens: np.ndarray) -> float:
    """Mean NLL (nats) of tokens[1:] given what came before, teacher-forced."""
    total = 0.0
    for t in range(len(tokens) - 1):
        stepper.feed(int(tokens[t]))
        z = stepper.logits()[0].astype(np.float64)
        total += np.log(np.exp(z - z.max()).sum()) + z.max() - z[tokens[t + 1]]
    return total / (len(tokens) - 1)


def test_int8_weights_score_real_music_within_one_percent_of_fp32():
    from encoders import encode
    from tests.conftest import CHORALES

    tokens = np.concatenate([encode(path) for path in CHORALES])
    fp32 = stream_nll(Stepper.load(bundled_model()), tokens)
    q = Stepper.load(bundled_model(), precision="int8")
    assert q.weight_bytes < Stepper.load(bundled_model()).weight_bytes / 3
    assert abs(stream_nll(q, tokens) - fp32) / fp32 < 0.01


def test_int8_matches_its_fp32_reconstruction_and_batches(tmp_path):
    """The kernel computes x @ (q * scale).T exactly up to fp32 rounding, for B streams."""
    torch.manual_seed(1)
    model = EventLSTM(ModelConfig(embed_dim=32, hidden=80, layers=3)).eval()
    weights = {k: v.numpy() for k, v in model.state_dict().items()}
    def rounded(w: np.ndarray) -> np.ndarray:
        q, scale = int8.quantize_rows(w)
        return q.astype(np.float32) * scale[:, None]

    # What the int8 Stepper quantizes: W_hh of layer 0, [W_ih | W_hh] of the layers above (one
    # scale per fused row), the head; the embedding and W_ih of layer 0 make the fp32 table.
    dequantized = dict(weights, **{"lstm.weight_hh_l0": rounded(weights["lstm.weight_hh_l0"]),
                                   "head.weight": rounded(weights["head.weight"])})
    for k in (1, 2):
        ih, hh = weights[f"lstm.weight_ih_l{k}"], weights[f"lstm.weight_hh_l{k}"]
        both = rounded(np.concatenate([ih, hh], axis=1))
        dequantized[f"lstm.weight_ih_l{k}"] = both[:, :ih.shape[1]]
        dequantized[f"lstm.weight_hh_l{k}"] = both[:, ih.shape[1]:]
    tokens = np.random.default_rng(2).integers(0, 388, (3, 200))
    q8 = Stepper(weights, model.config, batch=3, precision="int8")
    ref = Stepper(dequantized, model.config, batch=3)
    for t in range(tokens.shape[1]):
        q8.feed(tokens[:, t])
        ref.feed(tokens[:, t])
        assert np.abs(q8.logits() - ref.logits()).max() < 1e-4
    one = Stepper(weights, model.config, precision="int8")
    for t in range(tokens.shape[1]):
        one.feed(int(tokens[1, t]))
    assert np.abs(one.logits()[0] - q8.logits()[1]).max() < 1e-5


@settings(max_examples=60, deadline=None)
@given(arrays(np.float32, array_shapes(min_dims=2, max_dims=2, max_side=40),
              elements=st.floats(-1e4, 1e4, width=32)))
@example(np.array([[7.7e-44]], np.float32))  # CI found it: peak / 127 underflowed to scale 0
@example(np.array([[1.2e-35, -3e-38], [0.0, 0.0]], np.float32))  # a normal scale, and a zero row
def test_quantize_rows_rounds_each_weight_to_half_a_step(w):
    q, scale = int8.quantize_rows(w)
    assert q.dtype == np.int8 and np.abs(q.astype(int)).max(initial=0) <= 127
    assert np.all(scale > 0)
    err = np.abs(q.astype(np.float64) * scale[:, None] - w)
    assert np.all(err <= scale[:, None] * 0.5 + 1e-6 * np.abs(w))


def test_the_int8_kernel_is_ready_at_import_not_at_the_first_step():
    assert len(int8._matmul.signatures) == 1  # loaded (or compiled) once, for the Stepper's types
    stepper = Stepper.load(bundled_model(), batch=2, precision="int8")
    stepper.feed(np.array([60, 61]))
    stepper.logits()
    assert len(int8._matmul.signatures) == 1  # and no other specialisation was needed


def test_an_unknown_precision_is_one_error():
    with pytest.raises(ValueError, match="precision must be one of fp32, int8"):
        Stepper.load(bundled_model(), precision="fp8")


def test_int8_without_numba_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "numba", None)  # import numba raises ImportError
    monkeypatch.delitem(sys.modules, "neuralband.int8")
    with pytest.raises(ValueError, match=r"pip install 'neuralband\[fast\]'"):
        Stepper.load(bundled_model(), precision="int8")


def test_play_takes_int8_where_numba_is_installed(monkeypatch):
    """`play --precision auto` (the default): int8 with numba, fp32 without it."""
    import sys

    from neuralband.play import live_precision

    assert live_precision("fp32") == "fp32" and live_precision("int8") == "int8"
    pytest.importorskip("numba")
    assert live_precision("auto") == "int8"
    monkeypatch.delitem(sys.modules, "neuralband.int8", raising=False)
    monkeypatch.setitem(sys.modules, "numba", None)  # as if it were not installed
    assert live_precision("auto") == "fp32"
