"""A run folder's life, without torch: never replacing a run unasked, starting over with
--force, and the lines a run prints (what it is about to do, what it is doing, how it stopped,
how it ended)."""

from __future__ import annotations

import json
import shlex
import shutil
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from neuralband.training.config import ARGS, RESUMES, TrainConfig
from neuralband.training.windows import read_dataset, read_manifest

STATE = "state.json"  # training.checkpoint.STATE, named here without importing torch
# What a run writes into its folder, and --force deletes (anything else there is left alone).
RUN_FILES = (ARGS, RESUMES, STATE, "baselines.json", "metrics.csv", "model.safetensors",
             "model.json")


class RunExists(ValueError):
    """The run folder holds a run, and neither --resume nor --force was given."""


def holds_run(run: Path) -> bool:
    """Whether a folder holds (part of) a training run: its settings or a checkpoint."""
    return (run / ARGS).exists() or (run / STATE).exists() or any(run.glob("ckpt-*"))


def check_run_folder(cfg: TrainConfig) -> None:
    """Refuse to train over a run unless told to continue it or start it over."""
    run = Path(cfg.out)
    if not (cfg.resume or cfg.force) and holds_run(run):
        raise RunExists(f"{run} holds a run already: continue it with --resume, start it over "
                        "with --force, or train into a new folder")


def clear_run(run: Path) -> None:
    """Delete what a run wrote into its folder (for --force): settings, checkpoints, metrics,
    model, TensorBoard logs."""
    for name in RUN_FILES:
        (run / name).unlink(missing_ok=True)
    for path in [*run.glob("ckpt-*.safetensors"), *run.glob(".*.tmp-*")]:
        path.unlink(missing_ok=True)
    shutil.rmtree(run / "tensorboard", ignore_errors=True)


def checkpoint_step(run: Path) -> int | None:
    """The step the run folder's checkpoint holds (None: no readable checkpoint)."""
    try:
        return int(json.loads((run / STATE).read_text())["step"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


class Progress:
    """The lines a run prints on stderr beside its progress bar (none with -q)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def line(self, text: str) -> None:
        if self.enabled:
            print(text, file=sys.stderr, flush=True)

    @contextmanager
    def phase(self, what: str) -> Iterator[None]:
        """``  what ... 0.4 s``: a slow part of the set-up, named before it starts."""
        if not self.enabled:
            yield
            return
        print(f"  {what} ...", end="", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        try:
            yield
        finally:
            print(f" {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)


def opening_line(cfg: TrainConfig) -> str:
    """What the run is about to do, from the dataset's manifest and the checkpoint's step."""
    run = Path(cfg.out)
    read_dataset(cfg.dataset)  # a missing or foreign dataset: its one-line error, no line
    rows = read_manifest(cfg.dataset)
    train = [r for r in rows if r["split"] == "train"]
    valid = sum(r["split"] == "valid" for r in rows)
    events = sum(int(r["length"]) for r in train)
    what = (f"{len(train)} train pieces ({events:,} events), {valid} valid; preset "
            f"{cfg.preset}, {cfg.batch} windows of {cfg.window} events a step")
    step = checkpoint_step(run) if cfg.resume else None
    if step is None:
        fresh = " (no checkpoint to resume)" if cfg.resume else ""
        return f"training {run}{fresh}: {what}; {cfg.steps} steps"
    if step >= cfg.steps:
        return (f"{run} has trained {step} steps of {cfg.steps}: nothing to do "
                "(raise --steps to train longer)")
    return f"resuming {run} at step {step} of {cfg.steps}: {what}"


def announce(cfg: TrainConfig, enabled: bool) -> Progress:
    """Print the opening line at once (before torch loads and baselines are counted)."""
    progress = Progress(enabled)
    if enabled:
        progress.line(opening_line(cfg))
    return progress


def stop_message(cfg: TrainConfig, command: str = "neuralband train") -> str:
    """After Ctrl-C: the step on disk and the command that continues from it."""
    run = Path(cfg.out)
    again = f"{command} {shlex.quote(cfg.dataset)} -o {shlex.quote(cfg.out)} --resume"
    step = checkpoint_step(run)
    if step is not None:
        return f"stopped: {run} is checkpointed at step {step} of {cfg.steps}; `{again}` goes on"
    if (run / ARGS).exists():
        return f"stopped before the first checkpoint of {run}; `{again}` starts it again"
    return f"stopped before training began; nothing was saved in {run}"


def end_line(best: float, baselines: dict) -> str:
    """The best validation NLL against the bigram baseline: beaten by how much, or not."""
    bigram, unigram = baselines["bigram_nll"], baselines["unigram_nll"]
    others = f"bigram {bigram:.4f}, unigram {unigram:.4f}"
    if best < bigram:
        return (f"best valid NLL {best:.4f} nats/event: {bigram - best:.4f} below the bigram "
                f"baseline ({others})")
    return (f"best valid NLL {best:.4f} nats/event did NOT beat the bigram baseline ({others}); "
            "--resume with more --steps trains longer")
