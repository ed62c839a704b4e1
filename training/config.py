"""The settings of a training run and their command line, without importing torch (so that
`neuralband --help` stays fast)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from neuralband.modelconfig import PRESETS


@dataclass(frozen=True)
class TrainConfig:
    """Everything `neuralband train` takes; saved in args.json."""

    dataset: str
    out: str
    preset: str = "small"
    device: str = "auto"  # auto | cpu | cuda
    steps: int = 2000
    batch: int = 64
    window: int = 256
    lr: float = 2e-3
    min_lr: float = 1e-4
    warmup: int = 100
    weight_decay: float = 0.01
    clip: float = 3.0  # Magenta's Performance RNN clips the gradient norm at 3
    dropout: float | None = None  # None: the preset's
    transpose: int = 3
    stretch: float = 0.05
    eval_every: int = 200
    eval_windows: int = 256
    seed: int = 0
    threads: int | None = None
    resume: bool = False
    export_dtype: str = "float16"
    progress: bool = True
    controls: bool = False  # read key and density controls beside each token
    control_drop: float = 0.3  # the share of windows whose key (and, apart, density) is dropped
    precision: str = "auto"  # auto | fp32 | bf16 (autocast; auto: where the chip does bf16)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The command line of `neuralband train` (and of `python -m training.train`)."""
    d = TrainConfig("", "")
    p.add_argument("dataset", help="a dataset folder made by `neuralband encode`")
    p.add_argument("-o", "--out", required=True, help="run folder (checkpoints, metrics, model)")
    p.add_argument("--preset", default=d.preset, choices=sorted(PRESETS))
    p.add_argument("--device", default=d.device, choices=["auto", "cpu", "cuda"])
    p.add_argument("--steps", type=int, default=d.steps)
    p.add_argument("--batch", type=int, default=d.batch, help="global batch (windows per step)")
    p.add_argument("--window", type=int, default=d.window, help="events per window (T)")
    p.add_argument("--lr", type=float, default=d.lr, help="peak learning rate (AdamW)")
    p.add_argument("--min-lr", type=float, default=d.min_lr)
    p.add_argument("--warmup", type=int, default=d.warmup)
    p.add_argument("--weight-decay", type=float, default=d.weight_decay)
    p.add_argument("--clip", type=float, default=d.clip, help="gradient norm clip")
    p.add_argument("--dropout", type=float, default=None, help="override the preset's dropout")
    p.add_argument("--transpose", type=int, default=d.transpose, help="augment: +-N semitones")
    p.add_argument("--stretch", type=float, default=d.stretch, help="augment: time x (1+-s)")
    p.add_argument("--eval-every", type=int, default=d.eval_every)
    p.add_argument("--eval-windows", type=int, default=d.eval_windows)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--resume", action="store_true", help="continue from the run's checkpoint")
    p.add_argument("--export-dtype", default=d.export_dtype, choices=["float16", "float32"])
    p.add_argument("--controls", action="store_true",
                   help="condition on the key and note density of the coming seconds "
                        "(encoders.controls), as Magenta's conditioned Performance RNN")
    p.add_argument("--control-drop", type=float, default=d.control_drop,
                   help="share of windows trained with no key (and, apart, no density), so the "
                        f"model also plays free (default {d.control_drop})")
    p.add_argument("--precision", default=d.precision, choices=["auto", "fp32", "bf16"],
                   help="bf16 autocast or plain fp32; auto: bf16 on a CUDA GPU that has it and "
                        "on CPUs with AVX-512 BF16 or AMX, else fp32 (default auto)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    return TrainConfig(
        dataset=args.dataset, out=args.out, preset=args.preset, device=args.device,
        steps=args.steps, batch=args.batch, window=args.window, lr=args.lr, min_lr=args.min_lr,
        warmup=args.warmup, weight_decay=args.weight_decay, clip=args.clip, dropout=args.dropout,
        transpose=args.transpose, stretch=args.stretch, eval_every=args.eval_every,
        eval_windows=args.eval_windows, seed=args.seed, threads=args.threads, resume=args.resume,
        export_dtype=args.export_dtype, progress=not args.quiet, controls=args.controls,
        control_drop=args.control_drop, precision=args.precision,
    )
