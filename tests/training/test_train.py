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

from neuralband.encoders import EncoderSettings
from neuralband.model import load_model
from neuralband.modelfile import ModelFileError, read_info
from neuralband.training import checkpoint as checkpoint_module
from neuralband.training import train as train_module
from neuralband.training.config import TrainConfig
from neuralband.training.dataset import build_dataset
from neuralband.training.train import train
from tests.helpers.data import TRAIN_CHORALES

REPO = Path(__file__).resolve().parents[2]


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
from neuralband.training import checkpoint, train as t
from neuralband.training.config import TrainConfig
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
from neuralband.training.config import TrainConfig
from neuralband.training import checkpoint as checkpoint_module
from neuralband.training import train as train_module
from neuralband.training.train import train
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


@pytest.mark.parametrize("name, sustain", [("pop", False), ("chorale-folk", True)])
def test_the_bundled_models_load_and_beat_their_baselines(name, sustain):
    from neuralband.modelfile import bundled_model

    weights = bundled_model(name).with_suffix(".safetensors")
    assert weights.stat().st_size <= 10 * 1024 * 1024
    model, info = load_model(bundled_model(name))
    # pop is trained on key presses (POP909's pedal is held for minutes), with key and density
    assert info.dtype == "float16" and info.encoder == EncoderSettings(sustain=sustain)
    assert (info.controls is not None) == (name == "pop")
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


def cli_args(dataset: Path, run: Path, *extra: str, quiet: bool = True) -> list[str]:
    """`neuralband train` with the settings of `tiny` (and -q unless quiet=False)."""
    return ["train", str(dataset), "-o", str(run), "--preset", "tiny", "--steps", "40",
            "--batch", "8", "--window", "32", "--lr", "5e-3", "--warmup", "5",
            "--eval-every", "10", "--eval-windows", "16", "--threads", "1", "--dropout", "0.2",
            *(["-q"] if quiet else []), *extra]


def metric_rows(run: Path) -> list[dict[str, str]]:
    import csv

    with open(run / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def files_of(run: Path) -> dict[str, bytes]:
    return {str(p.relative_to(run)): p.read_bytes() for p in sorted(run.rglob("*"))
            if p.is_file()}


def test_resume_takes_the_runs_settings_and_refuses_a_conflicting_one(chorale_dataset, tmp_path,
                                                                       capsys):
    from neuralband.cli import main

    run = tmp_path / "run"
    assert main(cli_args(chorale_dataset, run, "--steps", "20")) == 0
    args_json = (run / "args.json").read_bytes()
    capsys.readouterr()
    assert main(["train", str(chorale_dataset), "-o", str(run), "--resume", "--window", "64",
                 "--lr", "0.002"]) == 2
    err = capsys.readouterr().err
    assert err == (f"neuralband: {run} was trained with --window 32 and --lr 0.005; drop "
                   "--window 64 --lr 0.002 or start a new run folder\n")
    assert json.loads((run / "state.json").read_text())["step"] == 20
    # Settings left out (--preset, --batch, ...) are the run's; the same --window is no
    # conflict, and --steps may be raised to train longer.
    assert main(["train", str(chorale_dataset), "-o", str(run), "--resume", "--window", "32",
                 "--steps", "30", "-q"]) == 0
    assert json.loads((run / "state.json").read_text())["step"] == 30
    assert (run / "args.json").read_bytes() == args_json
    (resume,) = [json.loads(line) for line in (run / "resumes.jsonl").read_text().splitlines()]
    assert resume["step"] == 20 and resume["steps"] == 30 and resume["threads"] == 1
    # A later --resume goes on with the raised --steps, not args.json's 20.
    assert main(["train", str(chorale_dataset), "-o", str(run), "--resume", "-q"]) == 0
    assert "nothing to do" not in capsys.readouterr().err
    assert [row["step"] for row in metric_rows(run)] == ["10", "20", "30"]


def test_a_run_folder_is_replaced_only_with_force(chorale_dataset, tmp_path, capsys):
    from neuralband.cli import main

    run = tmp_path / "run"
    assert main(cli_args(chorale_dataset, run, "--steps", "10")) == 0
    assert main(cli_args(chorale_dataset, run, "--steps", "20", "--resume")) == 0
    before = files_of(run)
    capsys.readouterr()
    assert main(cli_args(chorale_dataset, run, "--steps", "10")) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--resume" in err and "--force" in err
    assert main(cli_args(chorale_dataset, run, "--resume", "--force")) == 2
    assert files_of(run) == before
    # --force starts over: step 10 of a new run, not the checkpoint at 20, and no old rows.
    assert main(cli_args(chorale_dataset, run, "--steps", "10", "--force")) == 0
    assert json.loads((run / "state.json").read_text())["step"] == 10
    assert [row["step"] for row in metric_rows(run)] == ["10"]
    assert not (run / "resumes.jsonl").exists()


def test_ctrl_c_checkpoints_the_step_under_way_and_says_how_to_go_on(chorale_dataset, tmp_path,
                                                                      capsys, monkeypatch):
    import signal

    from neuralband.cli import main

    run = tmp_path / "run"
    real, sent = train_module.lr_at, []

    def ctrl_c_in_step_13(step, cfg):
        if step == 13 and not sent:
            sent.append(step)
            os.kill(os.getpid(), signal.SIGINT)
        return real(step, cfg)

    monkeypatch.setattr(train_module, "lr_at", ctrl_c_in_step_13)
    assert main(cli_args(chorale_dataset, run)) == 130
    err = capsys.readouterr().err
    assert f"{run} is checkpointed at step 14 of 40" in err and "--resume" in err
    lines = err.splitlines()  # at once that it stops, then where it stopped; no traceback
    assert "Traceback" not in err and len(lines) == 2
    assert "stopping after this step" in lines[0]
    assert json.loads((run / "state.json").read_text())["step"] == 14
    monkeypatch.undo()
    assert main(["train", str(chorale_dataset), "-o", str(run), "--resume", "-q"]) == 0
    train(tiny(chorale_dataset, tmp_path / "whole"))
    assert_same_weights(tmp_path / "whole", run)


def test_the_first_line_comes_before_the_slow_set_up(chorale_dataset, tmp_path, capsys,
                                                     monkeypatch):
    from neuralband.cli import main

    real, printed = train_module.baselines, []

    def baselines(*args):
        printed.append(capsys.readouterr().err)
        return real(*args)

    monkeypatch.setattr(train_module, "baselines", baselines)
    run = tmp_path / "run"
    assert main(cli_args(chorale_dataset, run, "--steps", "10", quiet=False)) == 0
    (before,) = printed
    assert before.startswith(f"training {run}: 30 train pieces (")
    assert "6 valid; preset tiny" in before
    assert before.endswith("  unigram and bigram baselines over the train split ...")


def test_help_gives_every_options_meaning_and_default():
    import argparse

    from neuralband.training.config import add_arguments

    defaults = TrainConfig("", "")
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    options = [a for a in parser._actions
               if a.option_strings and not isinstance(a, argparse._HelpAction)]
    assert len(options) > 20
    for action in options:
        assert action.help, action.option_strings
        if action.nargs != 0 and not action.required:  # an option with a value: its default
            assert "(default: " in action.help, action.option_strings
    text = parser.format_help()
    assert f"(default: {defaults.window})" in text and f"(default: {defaults.lr})" in text


def test_the_end_line_says_whether_the_bigram_was_beaten(chorale_dataset, tmp_path, capsys):
    from neuralband.cli import main

    assert main(cli_args(chorale_dataset, tmp_path / "run", "--steps", "10")) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith("best valid NLL ") and "did NOT beat the bigram" in first
    from neuralband.training.runs import end_line

    base = {"bigram_nll": 3.83, "unigram_nll": 4.5}
    assert end_line(2.71, base).startswith("best valid NLL 2.7100 nats/event: 1.1200 below the "
                                           "bigram baseline (bigram 3.8300")
    assert "did NOT beat the bigram baseline (bigram 3.8300" in end_line(3.9, base)


def test_elapsed_time_adds_up_across_resumes(chorale_dataset, tmp_path, monkeypatch):
    import time

    run = tmp_path / "run"
    real = checkpoint_module.save_checkpoint

    def slow_then_stop(run_dir, step, *args, **kwargs):  # 1 s of training, then Ctrl-C at 20
        if step == 10:
            time.sleep(1.0)
        real(run_dir, step, *args, **kwargs)
        if step == 20:
            raise KeyboardInterrupt

    monkeypatch.setattr(train_module, "save_checkpoint", slow_then_stop)
    with pytest.raises(KeyboardInterrupt):
        train(tiny(chorale_dataset, run))
    monkeypatch.undo()
    at_20 = json.loads((run / "state.json").read_text())["elapsed_s"]
    assert at_20 > 1.0
    with open(run / "metrics.csv", "a") as f:  # a row written after the checkpoint, as kill -9
        f.write("30,9.9,9.9,9.9,0.001,1,0.0,\n")  # between the two would leave
    train(tiny(chorale_dataset, run, resume=True))
    rows = metric_rows(run)
    assert [row["step"] for row in rows] == ["10", "20", "30", "40"]
    elapsed = [float(row["elapsed_s"]) for row in rows]
    # metrics.csv keeps tenths of a second: the resumed row is at least the checkpoint's time
    # rounded so (ten tiny steps after it can round to the same tenth, as they once did)
    assert elapsed == sorted(elapsed) and elapsed[2] >= round(at_20, 1) > 1.0


def test_a_gru_trains_beats_the_bigram_and_steps_as_torch_does(chorale_dataset, tmp_path):
    result = train(tiny(chorale_dataset, tmp_path / "run", steps=300, eval_every=100,
                        dropout=0.0, lr=1e-2, cell="gru", hidden=72))
    assert result["best_valid_nll"] < result["baselines"]["bigram_nll"]
    model, info = load_model(tmp_path / "run" / "model")
    assert info.config.cell == "gru" and info.config.hidden == 72
    assert isinstance(model.gru, torch.nn.GRU)
    # The model file steps in numpy (fp16 weights) as torch runs it.
    import numpy as np

    from neuralband.runtime import Stepper

    tokens = np.random.default_rng(0).integers(0, 388, 200)
    with torch.no_grad():
        want = model.float()(torch.from_numpy(tokens)[None])[0][0, -1].numpy()
    stepper = Stepper.load(tmp_path / "run" / "model")
    for tok in tokens.tolist():
        stepper.feed(tok)
    assert np.abs(stepper.logits()[0] - want).max() < 1e-3
    assert json.loads((tmp_path / "run" / "args.json").read_text())["config"]["cell"] == "gru"


@pytest.mark.parametrize("steps", ["0", "-5"])
def test_train_refuses_steps_it_cannot_take_before_making_a_folder(chorale_dataset, tmp_path,
                                                                    capsys, steps):
    from neuralband.cli import main

    run = tmp_path / "run"
    assert main(["train", str(chorale_dataset), "-o", str(run), "--steps", steps]) == 2
    assert "--steps must be a whole number >= 1" in capsys.readouterr().err
    assert not run.exists()  # nothing left behind that "holds a run already"


@pytest.mark.parametrize("options, said", [
    (["--mix-share", "1.5"], "--mix-share must lie between 0 and 1"),
    (["--mix", "elsewhere", "--batch", "2", "--mix-share", "0.1"], "leaves no window"),
])
def test_train_refuses_a_mix_that_leaves_a_dataset_no_window(chorale_dataset, tmp_path, capsys,
                                                              options, said):
    from neuralband.cli import main

    assert main(["train", str(chorale_dataset), "-o", str(tmp_path / "run"), *options]) == 2
    assert said in capsys.readouterr().err and not (tmp_path / "run").exists()


def test_the_first_ctrl_c_says_at_once_that_training_stops_after_this_step(capsys):
    import signal

    from neuralband.training.train import StopRequest

    with StopRequest(True) as stop:
        if not stop.enabled:
            pytest.skip("SIGINT is ignored in this process")
        signal.raise_signal(signal.SIGINT)
        assert stop.asked
        assert "stopping after this step" in capsys.readouterr().err
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGINT)


def test_training_a_folder_of_midi_suggests_encoding_it_into_a_new_dataset(tmp_path, capsys):
    import shutil

    from neuralband.cli import main

    music = tmp_path / "songs"
    music.mkdir()
    shutil.copy(TRAIN_CHORALES[0], music / "a.mid")
    assert main(["train", str(music), "-o", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert f"neuralband encode {music} -o {tmp_path / 'songs-dataset'}" in err
    assert not (tmp_path / "run").exists()
