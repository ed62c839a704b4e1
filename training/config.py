"""The settings of a training run, their command line and their files in the run folder
(``args.json``, ``resumes.jsonl``), without importing torch (so that `neuralband --help` stays
fast)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

from neuralband.modelconfig import PRESETS

ARGS = "args.json"  # the first command line of a run, never rewritten
RESUMES = "resumes.jsonl"  # one line per --resume


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
    cell: str = "lstm"  # lstm | gru (`ModelConfig.cell`)
    hidden: int | None = None  # None: the preset's (a GRU of an LSTM's parameter count is wider)
    transpose: int = 3
    stretch: float = 0.05
    band_entry: float = 0.0  # voice-packed: share of windows where the band comes in mid-window
    eval_every: int = 200
    eval_windows: int = 256
    seed: int = 0
    threads: int | None = None
    resume: bool = False
    force: bool = False  # start over in a run folder that holds a run
    export_dtype: str = "float16"
    progress: bool = True
    controls: bool = False  # read key and density controls beside each token
    control_drop: float = 0.3  # the share of windows whose key (and, apart, density) is dropped
    beat: bool = False  # also read the beat control (implies controls)
    init: str | None = None  # start from this model file's weights (a fine-tune)
    mix: str | None = None  # a second dataset, mixed into every batch (what the model knew)
    mix_share: float = 0.25  # the share of each batch's windows drawn from `mix`
    precision: str = "auto"  # auto | fp32 | bf16 (autocast; auto: where the chip does bf16)

    def __post_init__(self) -> None:
        """Refuse, in one line and before any folder is made, numbers no run can train with."""
        for name in ("steps", "batch", "window", "eval_every", "eval_windows"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be a whole number >= 1, "
                                 f"got {value}")
        if not self.lr > 0 or not self.min_lr >= 0 or self.warmup < 0:
            raise ValueError(f"--lr must be > 0, --min-lr >= 0 and --warmup >= 0, got "
                             f"{self.lr}, {self.min_lr}, {self.warmup}")
        if not 0.0 < self.mix_share < 1.0:
            raise ValueError(f"--mix-share must lie between 0 and 1, got {self.mix_share}")
        if self.mix and not 1 <= round(self.batch * self.mix_share) < self.batch:
            raise ValueError(f"--mix-share {self.mix_share} of a batch of {self.batch} leaves "
                             "no window to one of the datasets: raise --batch")


@dataclass(frozen=True)
class TuneSettings:
    """What `neuralband tune` takes beyond the model and the takes (defaults: measured, see
    docs/tuning.md)."""

    steps: int = 120
    lr: float = 5e-4
    batch: int = 32
    mix_share: float = 0.5  # of each batch: windows of what the model knew
    mix: str | None = None  # its training dataset, where you have it; None: replay
    replay_minutes: float = 10.0  # of the base model's own music, where no --mix is given
    window: int = 256
    seed: int = 0
    threads: int | None = None
    force: bool = False
    progress: bool = True


DEFAULTS = TrainConfig("", "")
# On --resume: the run's own value unless given again (raise --steps to train longer) ...
INHERITED = ("steps", "eval_every", "device", "threads")
# ... the terminal's, as given now (-q or not) ...
LOCAL = ("progress",)
# ... and every other setting is the run's: giving another value is refused.
FIXED = tuple(f.name for f in fields(TrainConfig)
              if f.name not in (*INHERITED, *LOCAL, "dataset", "out", "resume", "force"))


class SettingsConflict(ValueError):
    """--resume with an option that differs from the run's own setting."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The command line of `neuralband train` (and of `python -m neuralband.training.train`).
    Options default to None, so that `config_from_args` knows which ones the user gave."""
    d = DEFAULTS
    p.add_argument("dataset", help="a dataset folder made by `neuralband encode`")
    p.add_argument("-o", "--out", required=True,
                   help="run folder (args.json, baselines.json, metrics.csv, checkpoint, model)")
    p.add_argument("--preset", choices=sorted(PRESETS),
                   help=f"model size (default: {d.preset})")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"],
                   help=f"auto: cuda where there is one, else cpu (default: {d.device})")
    p.add_argument("--steps", type=int,
                   help=f"optimizer steps in all; the learning rate decays to its end "
                        f"(default: {d.steps})")
    p.add_argument("--batch", type=int,
                   help=f"global batch, windows per step (default: {d.batch})")
    p.add_argument("--window", type=int, help=f"events per window, T (default: {d.window})")
    p.add_argument("--lr", type=float, help=f"peak learning rate of AdamW (default: {d.lr})")
    p.add_argument("--min-lr", type=float,
                   help=f"learning rate at the end of the cosine decay (default: {d.min_lr})")
    p.add_argument("--warmup", type=int,
                   help=f"steps of linear learning-rate warm-up (default: {d.warmup})")
    p.add_argument("--weight-decay", type=float,
                   help=f"AdamW weight decay (default: {d.weight_decay})")
    p.add_argument("--clip", type=float, help=f"gradient norm clip (default: {d.clip})")
    p.add_argument("--dropout", type=float,
                   help="override the preset's dropout (default: the preset's)")
    p.add_argument("--cell", choices=["lstm", "gru"],
                   help=f"the recurrent cell: an LSTM, or a GRU (3 gates where the LSTM has 4: "
                        f"a step reads 3/4 of the bytes) (default: {d.cell})")
    p.add_argument("--hidden", type=int,
                   help="override the preset's hidden size, e.g. a GRU with an LSTM's "
                        "parameter count (default: the preset's)")
    p.add_argument("--transpose", type=int,
                   help=f"augment: transpose by up to +-N semitones (default: {d.transpose})")
    p.add_argument("--stretch", type=float,
                   help=f"augment: stretch time by x(1+-s) (default: {d.stretch})")
    p.add_argument("--band-entry", type=float,
                   help="augment a voice-packed dataset: the share of windows in which the band "
                        "comes in at a random point, its events before it left out, so the band "
                        "learns to start from the lead alone, as it does live "
                        f"(default: {d.band_entry})")
    p.add_argument("--eval-every", type=int,
                   help=f"steps between evaluations and checkpoints (default: {d.eval_every})")
    p.add_argument("--eval-windows", type=int,
                   help=f"validation windows per evaluation (default: {d.eval_windows})")
    p.add_argument("--seed", type=int, help=f"seed of weights and batches (default: {d.seed})")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in OUT from its checkpoint with the run's own settings "
                        "(args.json, resumes.jsonl); only --steps (raise it to train longer), "
                        "--eval-every, --device, --threads and -q may be given anew, any other "
                        "option given must match the run's")
    p.add_argument("--force", action="store_true",
                   help="start over in a run folder that holds a run (its checkpoint, metrics "
                        "and model are deleted)")
    p.add_argument("--export-dtype", choices=["float16", "float32"],
                   help=f"weights of the model file (default: {d.export_dtype})")
    p.add_argument("--controls", action="store_true", default=None,
                   help="condition on the key and note density of the coming seconds "
                        "(encoders.controls), as Magenta's conditioned Performance RNN")
    p.add_argument("--beat", action="store_true", default=None,
                   help="also read where each event sits in the beat and the bar and how long a "
                        "beat is (encoders.beats: the dataset's beats, found when it was "
                        "encoded, else tracked from its notes); implies --controls")
    p.add_argument("--init", metavar="MODEL",
                   help="start from a trained model file's weights (a bundled name or a path) "
                        "instead of random ones: fine-tuning. The shapes must match, except "
                        "that control inputs the model lacks (--beat on a model without it) "
                        "start at zero weight, so training starts from what it played "
                        "(default: random weights)")
    p.add_argument("--mix", metavar="DATASET",
                   help="mix windows of another dataset of the same encoding into every batch "
                        "(with --init: the data the model was trained on, so that it keeps what "
                        "it knew while it learns the new) (default: none)")
    p.add_argument("--mix-share", type=float,
                   help=f"the share of each batch drawn from --mix (default: {d.mix_share})")
    p.add_argument("--control-drop", type=float,
                   help="share of windows trained with no key (and, apart, no density), so the "
                        f"model also plays free (default: {d.control_drop})")
    p.add_argument("--precision", choices=["auto", "fp32", "bf16"],
                   help="bf16 autocast or plain fp32; auto: bf16 on a CUDA GPU that has it and "
                        f"on CPUs with AVX-512 BF16 or AMX, else fp32 (default: {d.precision})")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines and bar")


def given_settings(args: argparse.Namespace) -> dict:
    """The settings the command line gave explicitly (argparse left the others None)."""
    given = {f: getattr(args, f) for f in (*FIXED, *INHERITED, *LOCAL)
             if getattr(args, f, None) is not None}
    if args.quiet:
        given["progress"] = False
    return given


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The run's settings: the command line's over the defaults, or with --resume, over the
    run's saved ones (refusing a conflicting one with SettingsConflict)."""
    if args.resume and args.force:
        raise ValueError("--resume continues a run and --force starts it over: give one of them")
    given = given_settings(args)
    cfg = TrainConfig(dataset=args.dataset, out=args.out, resume=args.resume, force=args.force,
                      **given)
    saved = saved_settings(Path(args.out)) if args.resume else None
    return cfg if saved is None else resumed_config(cfg, given, saved)


def resumed_config(cfg: TrainConfig, given: dict, saved: dict) -> TrainConfig:
    """``cfg`` with the run's saved settings where the command line left them out."""
    run = cfg.out
    if not same_path(cfg.dataset, saved["dataset"]):
        raise SettingsConflict(f"{run} was trained on {saved['dataset']}; give that dataset "
                               "or start a new run folder")
    own = {f: saved.get(f, getattr(DEFAULTS, f)) for f in (*FIXED, *INHERITED)}
    clash = [f for f in FIXED if f in given and given[f] != own[f]]
    if clash:
        was = _trained_with({f: own[f] for f in clash})
        now = " ".join(_option(f, given[f]) for f in clash)
        raise SettingsConflict(f"{run} was trained {was}; drop {now} or start a new run folder")
    own.update({f: given[f] for f in INHERITED if f in given})
    return replace(cfg, **own)


def same_path(a: str, b: str) -> bool:
    """Whether two paths name the same file or folder."""
    return os.path.realpath(a) == os.path.realpath(b)


def _option(field: str, value: object) -> str:
    """A setting as its command-line option: ``--window 256``, ``--controls``."""
    flag = "--" + field.replace("_", "-")
    return flag if isinstance(value, bool) else f"{flag} {value}"


def _trained_with(settings: dict) -> str:
    """Saved settings in words: ``with --window 256 and --lr 0.002, without --controls``."""
    given = [_option(f, v) for f, v in settings.items() if v is not None and v is not False]
    left_out = ["--" + f.replace("_", "-") for f, v in settings.items() if v is None or v is False]
    parts = [f"{word} {' and '.join(flags)}"
             for word, flags in (("with", given), ("without", left_out)) if flags]
    return ", ".join(parts)


def saved_settings(run: Path) -> dict | None:
    """The run's settings as it trains now: args.json's, with the later --steps, --eval-every,
    --device and --threads of resumes.jsonl; its dataset as an absolute path. None: no args.json."""
    path = run / ARGS
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
        config = dict(data["config"])
        lines = (run / RESUMES).read_text().splitlines() if (run / RESUMES).exists() else []
        for line in filter(str.strip, lines):
            config.update({k: v for k, v in json.loads(line).items() if k in INHERITED})
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{path}: not a readable run settings file ({err}); "
                         "train a new run folder") from err
    config["dataset"] = os.path.join(data.get("cwd", os.getcwd()), config["dataset"])
    return config


def write_settings(run: Path, cfg: TrainConfig, world: int) -> None:
    """args.json: the command line and settings a run starts with (and the folder it ran in)."""
    data = {"argv": sys.argv, "cwd": os.getcwd(), "config": asdict(cfg), "world_size": world}
    (run / ARGS).write_text(json.dumps(data, indent=2) + "\n")


def record_resume(run: Path, cfg: TrainConfig, step: int, world: int) -> None:
    """One line of resumes.jsonl: when, from which step, and the settings that may change."""
    line = {"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "argv": sys.argv, "step": step,
            "world_size": world, **{f: getattr(cfg, f) for f in (*INHERITED, *LOCAL)}}
    with open(run / RESUMES, "a") as f:
        f.write(json.dumps(line) + "\n")
