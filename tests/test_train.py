"""Training: loss falls on real music, resume is exact (also after kill -9), checkpoints and model
files are never unpickled and refuse damage, and DDP ranks agree."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from encoders import EncoderSettings
from neuralband.modelfile import ModelFileError, load_model, read_info
from tests.conftest import TRAIN_CHORALES
from training import checkpoint as checkpoint_module
from training import train as train_module
from training.config import TrainConfig
from training.dataset import build_dataset
from training.train import train

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def chorale_dataset(tmp_path_factory) -> Path:
    """36 real chorales, split by hand (every 6th valid) whatever the hashes say."""
    out = tmp_path_factory.mktemp("chorales") / "ds"
    build_dataset(TRAIN_CHORALES, out, workers=1, fractions=(1.0, 0.0, 0.0))
    rows = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    for row in rows[::6]:
        row["split"] = "valid"
    (out / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return out


def tiny(dataset: Path, out: Path, **kw) -> TrainConfig:
    base = TrainConfig(str(dataset), str(out), preset="tiny", steps=40, batch=8, window=32,
                       lr=5e-3, warmup=5, eval_every=10, eval_windows=16, threads=1,
                       dropout=0.2, progress=False)
    return replace(base, **kw)


def weights(run: Path) -> dict[str, torch.Tensor]:
    state = json.loads((run / "state.json").read_text())
    return load_file(run / state["tensors"])


def assert_same_weights(a: Path, b: Path) -> None:
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for key in wa:
        assert torch.equal(wa[key], wb[key]), key


def test_loss_falls_below_the_baselines(chorale_dataset, tmp_path):
    result = train(tiny(chorale_dataset, tmp_path / "run", steps=300, eval_every=100,
                        dropout=0.0, lr=1e-2))
    metrics = (tmp_path / "run" / "metrics.csv").read_text().splitlines()
    valid = [float(line.split(",")[2]) for line in metrics[1:]]
    assert valid[-1] < valid[0] - 0.2  # still falling after the first evaluation
    assert result["best_valid_nll"] < result["baselines"]["bigram_nll"]
    model, info = load_model(tmp_path / "run" / "model")
    assert info.summary["valid_nll"] == pytest.approx(result["best_valid_nll"], abs=1e-4)
    assert info.dtype == "float16"


def test_resume_ends_with_the_same_weights(chorale_dataset, tmp_path, monkeypatch):
    train(tiny(chorale_dataset, tmp_path / "whole"))
    real = checkpoint_module.save_checkpoint

    def save_then_stop(run_dir, step, *args, **kwargs):  # Ctrl-C right after step 20's save
        real(run_dir, step, *args, **kwargs)
        if step == 20:
            raise KeyboardInterrupt

    monkeypatch.setattr(train_module, "save_checkpoint", save_then_stop)
    with pytest.raises(KeyboardInterrupt):
        train(tiny(chorale_dataset, tmp_path / "parts"))
    monkeypatch.undo()
    train(tiny(chorale_dataset, tmp_path / "parts", resume=True))
    assert_same_weights(tmp_path / "whole", tmp_path / "parts")


def test_resume_after_kill_9(chorale_dataset, tmp_path):
    run = tmp_path / "killed"
    cfg = tiny(chorale_dataset, run)
    script = f"""
import os, signal
from training import checkpoint, train as t
from training.config import TrainConfig
real = checkpoint.save_checkpoint
def save_then_die(run_dir, step, *a, **k):
    path = real(run_dir, step, *a, **k)
    if step == 20:
        os.kill(os.getpid(), signal.SIGKILL)
    return path
t.save_checkpoint = save_then_die
t.train(TrainConfig(**{cfg.__dict__!r}))
"""
    proc = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True,
                          timeout=300)
    assert proc.returncode == -9, proc.stderr.decode()[-2000:]
    assert json.loads((run / "state.json").read_text())["step"] == 20
    train(replace(cfg, resume=True))
    train(tiny(chorale_dataset, tmp_path / "whole"))
    assert_same_weights(tmp_path / "whole", run)


def test_damaged_model_and_checkpoint_files_are_refused(chorale_dataset, tmp_path):
    run = tmp_path / "run"
    train(tiny(chorale_dataset, run, steps=10))
    model = run / "model.safetensors"
    data = bytearray(model.read_bytes())
    data[-3] ^= 0xFF  # one flipped bit in the weights
    model.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="damaged or modified") as info:
        load_model(run / "model")
    assert "\n" not in str(info.value)
    ckpt = run / json.loads((run / "state.json").read_text())["tensors"]
    ckpt.write_bytes(ckpt.read_bytes()[:100])
    with pytest.raises(ModelFileError, match="damaged or modified"):
        train(tiny(chorale_dataset, run, steps=20, resume=True))


def test_a_pickle_in_place_of_weights_runs_no_code(chorale_dataset, tmp_path):
    """A torch.save file (a pickle) renamed to .safetensors, even with a matching hash: refused,
    and the code inside it never runs."""
    run = tmp_path / "run"
    train(tiny(chorale_dataset, run, steps=10))
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    torch.save({"x": Evil()}, run / "model.safetensors")
    meta = json.loads((run / "model.json").read_text())
    import hashlib

    meta["sha256"] = hashlib.sha256((run / "model.safetensors").read_bytes()).hexdigest()
    (run / "model.json").write_text(json.dumps(meta))
    assert read_info(run / "model").sha256 == meta["sha256"]
    with pytest.raises(ModelFileError, match="not a readable safetensors file"):
        load_model(run / "model")
    assert not marker.exists()


def test_train_refuses_a_missing_dataset(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "neuralband", "train", str(tmp_path / "nope"),
                           "-o", str(tmp_path / "run")], capture_output=True, text=True,
                          cwd=REPO, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr


@pytest.mark.skipif(shutil.which("torchrun") is None and not (
    Path(sys.executable).parent / "torchrun").exists(), reason="torchrun not installed")
def test_ddp_two_cpu_processes_end_with_identical_weights(chorale_dataset, tmp_path):
    script = tmp_path / "ddp_run.py"
    script.write_text(f"""
import os
from safetensors.torch import save_file
from training.config import TrainConfig
from training import checkpoint as checkpoint_module
from training import train as train_module
from training.train import train
cfg = TrainConfig({str(chorale_dataset)!r}, {str(tmp_path / "ddp")!r}, preset="tiny", steps=12,
                  batch=8, window=32, eval_every=6, eval_windows=8, threads=1, dropout=0.2,
                  progress=False)
result = train(cfg)
state = {{k: v.contiguous() for k, v in result["module"].state_dict().items()}}
save_file(state, {str(tmp_path)!r} + f"/rank{{os.environ['RANK']}}.safetensors")
""")
    torchrun = Path(sys.executable).parent / "torchrun"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    proc = subprocess.run([str(torchrun), "--standalone", "--nproc_per_node", "2", str(script)],
                          capture_output=True, text=True, cwd=REPO, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r0, r1 = load_file(tmp_path / "rank0.safetensors"), load_file(tmp_path / "rank1.safetensors")
    assert r0.keys() == r1.keys()
    for key in r0:
        assert torch.equal(r0[key], r1[key]), key
    assert (tmp_path / "ddp" / "model.json").exists()


def test_the_bundled_model_loads_and_beats_its_baselines():
    from neuralband.modelfile import bundled_model

    weights = bundled_model().with_suffix(".safetensors")
    assert weights.stat().st_size <= 10 * 1024 * 1024
    model, info = load_model(bundled_model())
    assert info.dtype == "float16" and info.encoder == EncoderSettings()
    summary = info.summary
    assert summary["valid_nll"] < summary["baselines"]["bigram_nll"] - 0.5
    tokens = torch.tensor([[356 + 19, 60, 280, 188]])
    logits, _ = model(tokens)
    assert logits.shape == (1, 4, 388) and torch.isfinite(logits).all()


def test_resume_with_another_preset_is_one_readable_error(chorale_dataset, tmp_path):
    run = tmp_path / "run"
    train(tiny(chorale_dataset, run, steps=10))
    with pytest.raises(ModelFileError, match="another model size"):
        train(tiny(chorale_dataset, run, steps=20, resume=True, preset="small"))
