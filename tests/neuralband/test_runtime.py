"""The numpy step runtime computes what the torch model computes, without importing torch."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes, arrays

from neuralband.encoders.schemes import EventScheme
from neuralband.model import PRESETS, EventLSTM, ModelConfig, save_model
from neuralband.modelfile import ModelFileError, bundled_model
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
    save_model(tmp_path / "m", model, EventScheme(), dtype="float32")
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
    save_model(tmp_path / "m", model, EventScheme(), dtype="float32")
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
    from neuralband.model import load_model

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
    from neuralband.encoders import encode
    from tests.helpers.data import CHORALES

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

    # What the int8 Stepper quantizes: W_hh of every layer and W_ih of the layers above (one
    # scale per row of each), the head; the embedding and W_ih of layer 0 make the fp32 table.
    dequantized = dict(weights, **{"lstm.weight_hh_l0": rounded(weights["lstm.weight_hh_l0"]),
                                   "head.weight": rounded(weights["head.weight"])})
    for k in (1, 2):
        for part in ("ih", "hh"):
            name = f"lstm.weight_{part}_l{k}"
            dequantized[name] = rounded(weights[name])
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


@settings(max_examples=60, deadline=None)
@given(rows=st.integers(1, 23), cols=st.integers(1, 70), batch=st.integers(1, 4),
       seed=st.integers(0, 2**31))
def test_the_int8_kernel_is_x_times_its_reconstruction_for_any_shape(rows, cols, batch, seed):
    """Four rows at a time and the rest one by one: every row, every stream, whatever the
    shape (rows not a multiple of four included)."""
    rng = np.random.default_rng(seed)
    dense = int8.Int8Dense(rng.standard_normal((rows, cols)).astype(np.float32))
    x = rng.standard_normal((batch, cols)).astype(np.float32)
    out = np.full((batch, rows), np.nan, np.float32)
    dense(x, out)
    want = x.astype(np.float64) @ (dense.q.astype(np.float64) * dense.scale[:, None]).T
    assert np.allclose(out, want, rtol=1e-5, atol=1e-5 * np.abs(dense.scale).max() * cols)


def test_the_kernel_asks_for_wide_vectors_only_where_the_cpu_has_them_and_the_user_did_not():
    """numba's features are the host's less prefer-256-bit on an AVX-512 CPU; a user's own
    NUMBA_CPU_FEATURES is kept as it is."""
    import llvmlite.binding as llvm

    code = ("import os, neuralband.int8, numba; "
            "print(os.environ.get('NUMBA_CPU_FEATURES', '')); print(numba.config.CPU_FEATURES)")

    def features(**env: str) -> list[str]:
        clean = {k: v for k, v in os.environ.items() if k != "NUMBA_CPU_FEATURES"}
        return subprocess.run([sys.executable, "-c", code], env={**clean, **env}, check=True,
                              capture_output=True, text=True).stdout.splitlines()

    try:
        host = llvm.get_host_cpu_features().flatten()
    except RuntimeError:  # no host information: nothing is asked
        host = ""
    asked, numba_sees = features()
    if "+avx512f" in host.split(","):
        assert asked == numba_sees == host + ",-prefer-256-bit"
    else:
        assert asked == "" and numba_sees == "None"
    assert features(NUMBA_CPU_FEATURES="+avx2") == ["+avx2", "+avx2"]


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

    from neuralband.live.session import live_precision

    assert live_precision("fp32") == "fp32" and live_precision("int8") == "int8"
    pytest.importorskip("numba")
    assert live_precision("auto") == "int8"
    monkeypatch.delitem(sys.modules, "neuralband.int8", raising=False)
    monkeypatch.setitem(sys.modules, "numba", None)  # as if it were not installed
    assert live_precision("auto") == "fp32"


# --- the GRU (config.cell = "gru") ------------------------------------------------------------

GRU_CONFIGS = [ModelConfig(embed_dim=32, hidden=64, layers=1, cell="gru"),
               ModelConfig(embed_dim=64, hidden=96, layers=3, cell="gru"),
               ModelConfig(embed_dim=16, hidden=48, layers=2, controls=5, cell="gru"),
               ModelConfig(vocab_size=4 * 6, embed_dim=16, hidden=32, layers=2, out_size=10,
                           fields=(4, 6), cell="gru")]


@pytest.mark.parametrize("config", GRU_CONFIGS, ids=["1x64", "3x96", "controls", "grid"])
def test_a_gru_s_logits_match_torch_over_1000_steps(tmp_path, config):
    torch.manual_seed(3)
    model = EventLSTM(config).eval()
    assert isinstance(model.gru, torch.nn.GRU) and not hasattr(model, "lstm")
    weights = {k: v.numpy() for k, v in model.state_dict().items()}
    if not (config.controls or config.fields):  # through a model file, its JSON naming the cell
        save_model(tmp_path / "m", model, EventScheme(), dtype="float32")
        assert Stepper.load(tmp_path / "m").config.cell == "gru"
    rng = np.random.default_rng(3)
    tokens = rng.integers(0, config.vocab_size, 1000)
    controls = rng.random((1000, config.controls)).astype(np.float32)
    with torch.no_grad():
        want = model(torch.from_numpy(tokens)[None],
                     controls=torch.from_numpy(controls)[None] if config.controls else None
                     )[0][0].numpy()
    stepper = Stepper(weights, config)
    assert stepper.c.size == 0  # a GRU keeps no cell state
    got = np.empty_like(want)
    for t, tok in enumerate(tokens):
        if config.controls:
            stepper.set_controls(controls[t])
        stepper.feed(int(tok))
        got[t] = stepper.logits()[0]
    assert np.abs(got - want).max() < 1e-4
    # A batch of three streams, a snapshot taken back, and int8 weights close to fp32.
    batched = Stepper(weights, config, batch=3)
    snap = None
    for t in range(60):
        batched.feed(np.array([tokens[t], tokens[t + 1], tokens[t]]))
        if t == 29:
            snap = batched.snapshot()
    assert np.array_equal(batched.logits()[0], batched.logits()[2])
    batched.restore(snap)
    batched.feed(np.array([tokens[30]] * 3))
    if not config.controls:  # (the streams above read no controls)
        assert np.abs(batched.logits()[0] - got[30]).max() < 1e-4


def test_a_gru_step_reads_three_quarters_of_an_lstm_s_recurrent_bytes(tmp_path):
    sizes = {}
    for cell in ("lstm", "gru"):
        config = ModelConfig(embed_dim=64, hidden=128, layers=3, cell=cell)
        weights = {k: v.numpy() for k, v in EventLSTM(config).state_dict().items()}
        stepper = Stepper(weights, config, precision="int8")
        sizes[cell] = stepper.weight_bytes - stepper.head.nbytes - stepper.table[0].nbytes
    assert sizes["gru"] == pytest.approx(0.75 * sizes["lstm"], rel=0.02)  # + row scales


def test_int8_gru_scores_like_fp32(tmp_path):
    torch.manual_seed(4)
    config = ModelConfig(embed_dim=32, hidden=80, layers=3, cell="gru")
    weights = {k: v.numpy() for k, v in EventLSTM(config).eval().state_dict().items()}
    fp32, q8 = Stepper(weights, config), Stepper(weights, config, precision="int8")
    for tok in np.random.default_rng(5).integers(0, 388, 300).tolist():
        fp32.feed(tok)
        q8.feed(tok)
    p, q = (np.exp(s.logits()[0] - s.logits()[0].max()) for s in (fp32, q8))
    assert np.abs(p / p.sum() - q / q.sum()).max() < 0.01


def test_an_unknown_cell_is_one_error():
    with pytest.raises(ValueError, match="cell must be one of lstm, gru"):
        ModelConfig(cell="rnn")
    assert ModelConfig.from_dict({"hidden": 64}).cell == "lstm"  # model files before the GRU


def test_a_gru_model_plays_live_and_leaves_nothing_sounding(tmp_path):
    """The engine knows no cell: a GRU model file plays as an LSTM's does."""
    from tests.helpers.live import balanced, band_ons, run_live, tune

    torch.manual_seed(6)
    save_model(tmp_path / "gru", EventLSTM(ModelConfig(embed_dim=32, hidden=64, layers=2,
                                                       cell="gru")).eval(),
               EventScheme(), dtype="float32")
    engine, out = run_live(tune(3.0), 3.0, mode="solo", model=str(tmp_path / "gru"))
    assert engine.stepper.config.cell == "gru"
    assert band_ons(engine, out) and balanced(out.sent)


# --- computing ahead: prepare and speculate ------------------------------------------------------

AHEAD_CONFIGS = [ModelConfig(embed_dim=16, hidden=40, layers=2),
                 ModelConfig(embed_dim=16, hidden=40, layers=3, cell="gru"),
                 ModelConfig(embed_dim=16, hidden=40, layers=2, controls=3)]

# One live session's calls: ("feed", tok), ("prepare",), ("speculate", tok, from_the_snapshot),
# ("snapshot",), ("restore",), ("controls", value).
ops = st.lists(st.one_of(
    st.tuples(st.just("feed"), st.integers(0, 12)),
    st.tuples(st.just("prepare")),
    st.tuples(st.just("speculate"), st.integers(0, 12), st.booleans()),
    st.tuples(st.just("snapshot")),
    st.tuples(st.just("restore")),
    st.tuples(st.just("controls"), st.floats(-1, 1, width=32))), max_size=40)


@pytest.mark.parametrize("config", AHEAD_CONFIGS, ids=["lstm", "gru", "controls"])
@pytest.mark.parametrize("precision", ["fp32", "int8"])
@settings(max_examples=40, deadline=None)
@given(script=ops)
def test_prepared_and_speculated_steps_are_exactly_the_plain_ones(config, precision, script):
    """Whatever is computed ahead, every state and every logit is bit for bit what plain feeds
    give; a guess is used only from its own state, for its own token, under its controls."""
    torch.manual_seed(3)
    weights = {k: v.numpy() for k, v in EventLSTM(config).state_dict().items()}
    ahead = Stepper(weights, config, precision=precision)
    plain = Stepper(weights, config, precision=precision)
    snaps = [ahead.snapshot(), plain.snapshot()]
    for op in script:
        if op[0] == "feed":
            ahead.feed(op[1])
            plain.feed(op[1])
        elif op[0] == "prepare":
            ahead.prepare()
        elif op[0] == "speculate":
            ahead.speculate(op[1], snaps[0] if op[2] else None)
        elif op[0] == "snapshot":
            snaps = [ahead.snapshot(), plain.snapshot()]
        elif op[0] == "restore":
            ahead.restore(snaps[0])
            plain.restore(snaps[1])
        elif config.controls:
            for s in (ahead, plain):
                s.set_controls(np.full(config.controls, op[1], np.float32))
        for a, b in ((ahead.h, plain.h), (ahead.c, plain.c), (ahead.logits(), plain.logits())):
            assert np.array_equal(a, b)


def test_a_speculated_feed_is_a_copy_and_leaves_the_state_where_it_was():
    stepper = Stepper.load(bundled_model(), precision="fp32")
    for tok in (375, 60, 280):
        stepper.feed(tok)
    snap = stepper.snapshot()
    stepper.feed(300)  # elsewhere now: a proposal on trial, say
    here = stepper.snapshot()
    live = (stepper.h, stepper.c)
    for array in live:  # the live view reads these from another thread: never written
        array.flags.writeable = False
    after = stepper.speculate(260, base=snap)  # the player's time shift, from before the proposal
    stepper.speculate(130, base=after)  # and a release after it
    stepper.speculate(131)  # and one from where it is now
    for array in live:
        array.flags.writeable = True
    assert stepper.h is live[0] and np.array_equal(stepper.h, here.h)
    assert np.array_equal(stepper.c, here.c)
    calls = []
    stepper.hh0 = lambda *a: calls.append(a)  # any matmul now would be seen
    stepper.restore(snap)
    stepper.feed(260)
    assert calls == []
    reference = Stepper.load(bundled_model(), precision="fp32")
    for tok in (375, 60, 280, 260):
        reference.feed(tok)
    assert np.array_equal(stepper.h, reference.h)


def test_a_model_is_named_by_its_file_its_run_folder_or_a_bundled_name(tmp_path):
    import shutil

    from neuralband.modelfile import ModelFileError, bundled_model, read_info

    run = tmp_path / "run"
    run.mkdir()
    for suffix in (".json", ".safetensors"):
        shutil.copy(str(bundled_model("duet")) + suffix, run / f"model{suffix}")
    assert read_info(run).sha256 == read_info("duet").sha256  # the run folder's best model
    with pytest.raises(ModelFileError, match="one of the bundled: pop, pop-duet"):
        read_info(tmp_path / "nosuch")
