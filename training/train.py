"""The training loop, top to bottom: dataset windows -> EventLSTM -> checkpoints and a model file.

Run on one process (`neuralband train DATASET -o RUN`), or on several with PyTorch's own engine:
``torchrun --nproc_per_node 2 -m neuralband.training.train DATASET -o RUN`` (gloo on CPU, nccl on
GPU). Each rank takes its share of the rows of the same global batch, and DistributedDataParallel
averages the gradients, so N processes train the same model as one process would with the whole
batch.

The run folder holds ``args.json`` (the first command line and settings, never rewritten),
``resumes.jsonl`` (one line per ``--resume``), ``baselines.json`` (unigram and bigram NLL on the
same validation windows), ``metrics.csv``, the resumable checkpoint (``state.json`` +
``ckpt-*.safetensors``) and ``model.safetensors`` + ``model.json``, the best model by validation
NLL. Batches depend only on (seed, step) and the torch RNG is checkpointed, so ``--resume``
continues exactly where the last checkpoint left off, also after kill -9; Ctrl-C finishes the step
under way and checkpoints it first. A folder that holds a run is only trained on again with
``--resume`` (continue) or ``--force`` (start over).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import signal
import sys
import threading
import time
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from neuralband.atomic import write_atomic
from neuralband.encoders.controls import ControlSettings
from neuralband.model import PRESETS, EventLSTM, save_model
from neuralband.modelfile import ModelFileError, ModelInfo
from neuralband.training.baselines import baselines
from neuralband.training.checkpoint import STATE, load_checkpoint, save_checkpoint
from neuralband.training.config import (
    ARGS,
    TrainConfig,
    add_arguments,
    config_from_args,
    record_resume,
    write_settings,
)
from neuralband.training.runs import Progress, announce, check_run_folder, clear_run, stop_message
from neuralband.training.windows import (
    MixedWindows,
    TokenWindows,
    arrangement_density,
    key_profiles,
    model_shape,
    note_length_quantile,
    read_dataset,
    voice_polyphony,
)

METRICS_HEADER = ("step,train_loss,valid_nll,valid_ppl,lr,events_per_s,elapsed_s,"
                  "valid_nll_with_controls\n")


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up, then cosine decay from lr to min_lr over the remaining steps."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    done = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1 + math.cos(math.pi * min(done, 1.0)))


def targets(window: torch.Tensor, classes: int) -> torch.Tensor:
    """The next-class targets of windows of tokens: ``window[:, 1:]``. A grid model reads more
    classes than it predicts, and the band's part of the next input class is its low digits, so
    ``% classes`` picks it (for an event model it changes nothing: every token < classes)."""
    return window[:, 1:] % classes


def cpu_has_bf16() -> bool:
    """Whether this CPU multiplies bf16 natively (AVX-512 BF16 or AMX), where autocast pays."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


def use_bf16(precision: str, device: torch.device) -> bool:
    """--precision -> whether the step runs under bf16 autocast."""
    if precision == "bf16":
        return True
    if precision == "fp32":
        return False
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return cpu_has_bf16()


@torch.no_grad()
def evaluate(model: torch.nn.Module, windows: np.ndarray, device: torch.device,
             batch: int = 64, controls: np.ndarray | None = None) -> float:
    """Mean next-event NLL in nats over the targets of fixed validation windows (with their
    controls, for a conditioned model; None: "no control")."""
    model.eval()
    total, count = 0.0, 0
    for i in range(0, len(windows), batch):
        w = torch.from_numpy(windows[i:i + batch]).to(device)
        c = None if controls is None else torch.from_numpy(controls[i:i + batch]).to(device)
        logits, _ = model(w[:, :-1], None, c)
        loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]),
                               targets(w, logits.shape[-1]).reshape(-1), reduction="sum")
        total += float(loss)
        count += w[:, 1:].numel()
    model.train()
    return total / count


def warm_start(model: EventLSTM, path: str, controls: ControlSettings | None) -> None:
    """Load a trained model file's weights into ``model`` (a fine-tune starts from them). The
    shapes must be the same, except layer 0's input weights where the run reads control inputs
    the file's model lacks (the beat, after its key and density): those columns start at zero,
    so the model starts out playing exactly as the file's did."""
    from neuralband.runtime import load_weights

    weights, info = load_weights(path)  # a bundled name or a path; never unpickled
    base = info.controls
    if controls is not None and base is not None and (
            base.density_edges != controls.density_edges
            or base.key_window_s != controls.key_window_s
            or base.density_window_s != controls.density_window_s
            or (base.beat and not controls.beat)):
        raise ValueError(f"{path} reads other controls ({base.to_dict()}) than this run")
    if model.config.vocab_size != info.config.vocab_size:
        raise ValueError(f"{path} reads {info.config.vocab_size} token classes; this dataset "
                         f"has {model.config.vocab_size}")
    own = model.state_dict()
    first = f"{model.config.cell}.weight_ih_l0"
    loaded = {}
    for name, tensor in own.items():
        if name not in weights:
            raise ValueError(f"{path} has no {name}: it is not a {model.config.cell} model of "
                             f"this shape")
        value = torch.from_numpy(weights[name])
        if value.shape != tensor.shape:
            widened = (name == first and value.shape[0] == tensor.shape[0]
                       and value.shape[1] < tensor.shape[1])
            if not widened:
                raise ValueError(f"{path}: {name} is {tuple(value.shape)}, this run's model "
                                 f"needs {tuple(tensor.shape)} (another preset or scheme)")
            grown = torch.zeros_like(tensor)
            grown[:, :value.shape[1]] = value
            value = grown
        loaded[name] = value.to(tensor.dtype)
    model.load_state_dict(loaded, strict=True)


class StopRequest:
    """Ctrl-C while training: the first lets the step under way finish, to be checkpointed; a
    second stops at once. Only in the main thread of a single process (DDP ranks would part),
    and never where SIGINT is ignored (a background job of a script)."""

    def __init__(self, enabled: bool, say=None) -> None:
        self.enabled = (enabled and threading.current_thread() is threading.main_thread()
                        and signal.getsignal(signal.SIGINT) is not signal.SIG_IGN)
        self.asked = False
        self.say = say or (lambda line: print(line, file=sys.stderr, flush=True))
        self._previous = None

    def __enter__(self) -> StopRequest:
        if self.enabled:
            self._previous = signal.signal(signal.SIGINT, self._ask)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.enabled:
            signal.signal(signal.SIGINT, self._previous or signal.default_int_handler)

    def _ask(self, signum: int, frame: object) -> None:
        if self.asked:
            raise KeyboardInterrupt
        self.asked = True
        # At once: a step may take seconds, and the bar would run on without a word.
        self.say("neuralband: stopping after this step, then checkpointing it "
                 "(Ctrl-C again stops at once)")


def start_metrics(path: Path, step: int) -> None:
    """metrics.csv for a run going on from ``step``: a new file at step 0, else the rows up to
    ``step`` (later ones, written after the checkpoint, are written again)."""
    if step == 0 or not path.exists():
        path.write_text(METRICS_HEADER)
        return
    lines = path.read_text().splitlines(keepends=True)
    kept = lines[:1] + [row for row in lines[1:]
                        if row.strip() and int(row.split(",", 1)[0]) <= step]
    if len(kept) < len(lines):
        write_atomic(path, "".join(kept).encode())


# What a model file keeps of the data it was trained on, beside its weights.
FROM_DATA = ("voice_polyphony", "max_note_s", "arrangement_density")


def train(cfg: TrainConfig, progress: Progress | None = None,
          base_model: ModelInfo | None = None, about: dict | None = None) -> dict:
    """Train (or resume) a run; returns a summary, with the trained torch module as "module".
    ``progress``: the caller's, where it printed the opening line already. ``base_model``: a tune's
    base model (`training.tune`), whose scheme, controls and measures of its data the new model
    file keeps (a player's takes are too few to measure them again); ``about``: more entries of
    the model file's summary."""
    # --- processes and device ---------------------------------------------------------------
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    master = rank == 0
    if master:
        check_run_folder(cfg)
    progress = progress or announce(cfg, master and cfg.progress)
    if cfg.device == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        device = torch.device(cfg.device)
    if device.type == "cuda" and world > 1:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    if world > 1:
        torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if cfg.batch % world:
        raise ValueError(f"--batch {cfg.batch} must be a multiple of the {world} processes")
    autocast = use_bf16(cfg.precision, device)

    # --- data, model, optimizer ---------------------------------------------------------------
    with progress.phase("reading the dataset and the validation windows"):
        scheme = read_dataset(cfg.dataset)[0]  # what the tokens are: their classes in and out
        encoder = scheme.settings  # the events under them
        controls = (base_model.controls if base_model is not None else
                    ControlSettings(beat=cfg.beat) if cfg.controls or cfg.beat else None)
        mixed = round(cfg.batch * cfg.mix_share) if cfg.mix else 0  # rows from --mix
        train_windows = TokenWindows(cfg.dataset, "train", cfg.window, cfg.batch - mixed,
                                     cfg.seed, cfg.transpose, cfg.stretch, settings=encoder,
                                     controls=controls, band_entry=cfg.band_entry)
        if mixed:
            train_windows = MixedWindows(train_windows, TokenWindows(
                cfg.mix, "train", cfg.window, mixed, cfg.seed + 2, cfg.transpose, cfg.stretch,
                settings=encoder, controls=controls, band_entry=cfg.band_entry))
        valid = TokenWindows(cfg.dataset, "valid", cfg.window, cfg.eval_windows, cfg.seed + 1,
                             settings=encoder, controls=controls)
        # (eval_windows, window + 1), the same for every evaluation, and their true controls
        eval_set, eval_controls = (valid.batch_with_controls(0) if controls
                                   else (valid.batch(0), None))
    run = Path(cfg.out)
    config = PRESETS[cfg.preset]
    config = replace(config, **model_shape(cfg.dataset),
                     dropout=config.dropout if cfg.dropout is None else cfg.dropout,
                     controls=controls.size if controls else 0, cell=cfg.cell,
                     hidden=config.hidden if cfg.hidden is None else cfg.hidden)
    resuming = cfg.resume and (run / STATE).exists()
    with progress.phase("the model, its optimizer" + (" and checkpoint" if resuming else "")):
        torch.manual_seed(cfg.seed)
        model = EventLSTM(config)
        if cfg.init and not resuming:
            warm_start(model, cfg.init, controls)
        model = model.to(device)
        optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr,
                                      weight_decay=cfg.weight_decay)
        start, best, elapsed = 0, math.inf, 0.0
        if resuming:
            state = load_checkpoint(run, model, optimizer)
            start, best = state["step"], state["best_valid_nll"]
            elapsed = float(state.get("elapsed_s", 0.0))  # training time before this session
    ddp = (torch.nn.parallel.DistributedDataParallel(model) if world > 1 else model)

    if master:
        run.mkdir(parents=True, exist_ok=True)
        if cfg.force:
            clear_run(run)
        if cfg.resume and (run / ARGS).exists():
            record_resume(run, cfg, start, world)
        else:
            write_settings(run, cfg, world)
        base_path = run / "baselines.json"
        if not base_path.exists():
            with progress.phase("unigram and bigram baselines over the train split"):
                base_path.write_text(json.dumps(baselines(cfg.dataset, eval_set), indent=2) + "\n")
        base = json.loads(base_path.read_text())
        # A voice-packed model also keeps how many notes each voice holds at once in the data.
        from_data = {}  # what the model file keeps of the data: polyphony, longest note
        if base_model is not None:  # a tune: the base's, and the base's way of reading MIDI
            from_data = {k: v for k, v in base_model.summary.items() if k in FROM_DATA}
            scheme = base_model.scheme
        elif scheme.voiced:
            with progress.phase("notes each voice holds at once"):
                from_data["voice_polyphony"] = voice_polyphony(cfg.dataset, scheme)
        # The longest note the band holds: the training notes' 99.5th percentile, not a flat cap
        # (a grid model's notes are its grid's steps, and text has none to measure).
        if scheme.plays == "events" and base_model is None:
            with progress.phase("note lengths"):
                from_data["max_note_s"] = note_length_quantile(cfg.dataset, scheme)
        if controls is not None and base_model is None:  # "--key Eb major": its Eb pieces
            with progress.phase("key profiles"):
                controls = replace(controls, key_profiles=key_profiles(cfg.dataset, scheme))
            if scheme.voiced:  # a duet band under a lead: as busy as the data's arrangements
                with progress.phase("arrangement density"):
                    from_data["arrangement_density"] = arrangement_density(
                        cfg.dataset, scheme, controls.density_window_s)
        start_metrics(run / "metrics.csv", start)

    finish = ExitStack()  # bar, board and the Ctrl-C handler: closed however the loop ends
    board = None
    if master:
        try:  # TensorBoard where installed; metrics.csv always
            from torch.utils.tensorboard import SummaryWriter

            board = SummaryWriter(str(run / "tensorboard"))
            finish.callback(board.close)
        except ImportError:
            pass

    # --- the loop -----------------------------------------------------------------------------
    bar = None
    if master and cfg.progress:
        from tqdm import tqdm

        bar = tqdm(total=cfg.steps, initial=start, unit="step", dynamic_ncols=True)
        finish.callback(bar.close)
    t0, seen, losses, saved = time.perf_counter(), 0, [], start

    def checkpoint(done: int) -> None:
        save_checkpoint(run, done, model, optimizer,
                        {"best_valid_nll": best, "elapsed_s": elapsed + time.perf_counter() - t0})

    model.train()
    with finish:
        stop = finish.enter_context(StopRequest(
            world == 1, None if bar is None else lambda line: bar.write(line, file=sys.stderr)))
        for step in range(start, cfg.steps):
            for group in optimizer.param_groups:
                group["lr"] = lr_at(step, cfg)
            if controls is None:
                rows, c = train_windows.batch(step), None
            else:
                rows, ctrl = train_windows.batch_with_controls(step, cfg.control_drop)
                c = torch.from_numpy(ctrl[rank::world]).to(device)
            x = torch.from_numpy(rows[rank::world]).to(device)  # this rank's share
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
                logits, _ = ddp(x[:, :-1], None, c)  # (B/world, T, V)
                loss = F.cross_entropy(logits.float().reshape(-1, config.classes),
                                       targets(x, config.classes).reshape(-1))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip)
            optimizer.step()
            losses.append(float(loss.detach()))
            seen += x[:, 1:].numel() * world
            rate = seen / (time.perf_counter() - t0)
            if bar is not None:
                bar.set_postfix_str(f"loss {losses[-1]:.3f}, {rate:,.0f} events/s",
                                    refresh=False)
                bar.update(1)

            done = step + 1
            if done % cfg.eval_every == 0 or done == cfg.steps:
                # A conditioned model is chosen by its NLL running free (no controls), the
                # harder case (one that reads beats: with them); the other NLL is kept beside.
                nll = evaluate(model, eval_set, device)
                nll_ctrl = (evaluate(model, eval_set, device, controls=eval_controls)
                            if controls is not None else None)
                if master:
                    train_loss = float(np.mean(losses))
                    losses = []
                    with open(run / "metrics.csv", "a", newline="") as f:
                        csv.writer(f).writerow([
                            done, f"{train_loss:.4f}", f"{nll:.4f}", f"{math.exp(nll):.3f}",
                            f"{lr_at(step, cfg):.6g}", f"{rate:.0f}",
                            f"{elapsed + time.perf_counter() - t0:.1f}",
                            "" if nll_ctrl is None else f"{nll_ctrl:.4f}"])
                    if board is not None:
                        board.add_scalar("loss/train", train_loss, done)
                        board.add_scalar("nll/valid", nll, done)
                        board.add_scalar("lr", lr_at(step, cfg), done)
                    # A model that reads beats plays with them: it is chosen by its NLL with
                    # the true controls (running free is what the beat is for to change).
                    chosen = nll_ctrl if cfg.beat else nll
                    if chosen < best:
                        best = chosen
                        summary = {"dataset": str(cfg.dataset), "preset": cfg.preset,
                                   "step": done, "valid_nll": round(nll, 4),
                                   "valid_ppl": round(math.exp(nll), 3), "baselines": base,
                                   "parameters": model.num_parameters(), **from_data,
                                   **(about or {})}
                        if nll_ctrl is not None:
                            summary["valid_nll_with_controls"] = round(nll_ctrl, 4)
                        save_model(run / "model", model, scheme, summary,
                                   dtype=cfg.export_dtype, controls=controls)
                    checkpoint(done)
                    saved = done
                    if bar is not None:
                        with_ctrl = ("" if nll_ctrl is None
                                     else f", {nll_ctrl:.4f} with the true controls")
                        bar.write(f"step {done}: valid NLL {nll:.4f} nats/event{with_ctrl} "
                                  f"(ppl {math.exp(nll):.2f}; bigram {base['bigram_nll']:.4f})")
            if stop.asked:  # one process (StopRequest is off under DDP): it is the master
                if saved < done:
                    checkpoint(done)
                raise KeyboardInterrupt
    if world > 1:
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
    result = {"best_valid_nll": best, "steps": cfg.steps, "run": str(run), "module": model}
    if master and (run / "model.json").exists():
        result["model"] = str(run / "model")
        result["baselines"] = json.loads((run / "baselines.json").read_text())
    return result


def main() -> int:
    """``python -m neuralband.training.train`` (under torchrun, one per process): the summary as
    JSON."""
    parser = argparse.ArgumentParser(prog="python -m neuralband.training.train")
    add_arguments(parser)
    try:
        cfg = config_from_args(parser.parse_args())
    except ValueError as err:  # a --resume that conflicts with the run's settings
        parser.exit(2, f"{parser.prog}: {err}\n")
    try:
        outcome = train(cfg)
    except (ModelFileError, FileNotFoundError, ValueError) as err:
        print(f"{parser.prog}: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if int(os.environ.get("RANK", "0")) == 0:
            print(stop_message(cfg, "python -m neuralband.training.train"), file=sys.stderr)
        return 130
    outcome.pop("module")
    print(json.dumps(outcome))
    return 0


if __name__ == "__main__":  # torchrun --nproc_per_node N -m neuralband.training.train DATASET ...
    sys.exit(main())
