"""Training throughput: events/s of one optimizer step, plain PyTorch against neuralband.

What is measured: the wall time of whole training steps (forward, loss, backward, optimizer step),
reported as events/s, where events = B * T next-event targets per step. Three rows per device,
at the same sizes (default: the "performance" preset, 3 x 512 LSTM with a 256-wide embedding,
B = 64 windows of T = 256 events):

1. ``reference``: the plain PyTorch loop anyone would write first, written out in this file:
   ``nn.Embedding`` + ``nn.LSTM(batch_first=True)`` + ``nn.Linear`` of the same sizes, Adam
   (lr 1e-3), ``cross_entropy``, ``backward``, ``step``, fp32, on one batch of random int64
   tokens (B, T + 1) drawn once up front. This is the comparison point (measured before on an
   AMD EPYC: 8,016 events/s for 3 x 512, B 64 x T 128, 2 threads).
2. ``model step``: neuralband's ``EventLSTM`` with the step of ``training/train.py`` (set the lr,
   bf16 autocast where ``--precision auto`` takes it: CUDA with bf16, CPUs with AVX-512 BF16 or
   AMX; there an fp32 row of the same step comes first, ``cross_entropy`` on float logits,
   ``backward``, ``clip_grad_norm_(3)``, AdamW, the loss read back), on the same random batch:
   the model alone.
3. ``full loop``: the same step fed by the real data path: a small dataset is built once into a
   temporary folder from ``tests/data/chorales_train/*.mid`` (``build_dataset(..., workers=1,
   fractions=(1, 0, 0))``), and every step draws ``TokenWindows(..., transpose=3,
   stretch=0.05).batch(step)`` -> ``torch.from_numpy`` -> device -> step. The difference to row 2
   is the data loader's cost; its median ms per batch is reported as well.

Each row runs ``--warmup`` untimed steps, then ``--steps`` timed ones; the median step time is
kept (CUDA is synchronized before every clock read). ``--device auto`` runs the CPU always and
CUDA too when there is a GPU; ``cpu`` or ``cuda`` runs only that one.

Run from the repository root::

    python benchmarks/train_throughput.py                                  # 3 x 512, B 64, T 256
    python benchmarks/train_throughput.py --window 128 --threads 2         # the reference's sizes
    python benchmarks/train_throughput.py --preset tiny --steps 3 --warmup 1   # a smoke test

The output is a table (row, device, precision, preset, B, T, parameters, ms/step, events/s, and
events/s relative to the reference on the same device), a line describing the machine, and a
last line of JSON with all the numbers.

Notes: ``relative`` compares rows on one device only. On CUDA the reference runs in fp32 (the
naive way) while neuralband's step uses bf16 autocast like ``training/train.py``, so the
precision column says which. If no chorale is long enough for a window of T + 1 events (with
more than one start), the full-loop row halves T until one is and says so; its events/s is then
at another T than the other rows. Training with other processes busy on the same cores gives
lower, noisier numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.machine import cpu_model, print_rows, usable_cpus  # noqa: E402
from neuralband.model import PRESETS, EventLSTM, ModelConfig  # noqa: E402
from neuralband.training.dataset import build_dataset  # noqa: E402
from neuralband.training.train import use_bf16  # noqa: E402
from neuralband.training.windows import TokenWindows, read_dataset, read_manifest  # noqa: E402

MIDI_DIR = REPO / "tests" / "data" / "chorales_train"
REFERENCE_LR = 1e-3  # the plain loop's Adam
TRAIN_LR = 2e-3  # training/config.py's peak lr (AdamW); the value does not change the cost
WEIGHT_DECAY = 0.01
CLIP = 3.0


@dataclass
class Row:
    """One measured row."""

    row: str
    device: str
    precision: str
    preset: str
    batch: int
    window: int
    params: int
    ms_per_step: float
    events_per_s: float
    relative: float | None = None  # events/s over the reference's, same device
    data_ms_per_batch: float | None = None  # full loop only: median TokenWindows.batch time
    note: str = ""


# --- timing -------------------------------------------------------------------------------------


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_step_s(step: Callable[[int], None], device: torch.device, warmup: int,
                  steps: int) -> float:
    """Run `step(i)` warmup + steps times; the median wall time of the timed ones, in seconds."""
    for i in range(warmup):
        step(i)
    sync(device)
    times = []
    for i in range(warmup, warmup + steps):
        t0 = time.perf_counter()
        step(i)
        sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


# --- 1. the plain PyTorch reference -------------------------------------------------------------


class PlainLSTM(nn.Module):
    """Embedding -> LSTM -> Linear, as in any tutorial."""

    def __init__(self, vocab: int, embed: int, hidden: int, layers: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, embed)
        self.lstm = nn.LSTM(embed, hidden, num_layers=layers, batch_first=True)
        self.head = nn.Linear(hidden, vocab)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(self.embed(tokens))
        return self.head(out)


def reference_step_s(config: ModelConfig, tokens: torch.Tensor, device: torch.device,
                     warmup: int, steps: int) -> tuple[float, int]:
    """The plain loop on one fixed batch: (median seconds per step, parameters)."""
    torch.manual_seed(0)
    model = PlainLSTM(config.vocab_size, config.embed_dim, config.hidden, config.layers)
    model = model.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=REFERENCE_LR)
    x, y = tokens[:, :-1], tokens[:, 1:]

    def step(_: int) -> None:
        logits = model(x)
        loss = F.cross_entropy(logits.reshape(-1, config.vocab_size), y.reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    model.train()
    seconds = median_step_s(step, device, warmup, steps)
    return seconds, sum(p.numel() for p in model.parameters())


# --- 2. and 3. neuralband's step ----------------------------------------------------------------


def make_training_step(config: ModelConfig, device: torch.device, autocast: bool
                       ) -> tuple[EventLSTM, Callable[[torch.Tensor], float]]:
    """An EventLSTM and the body of training/train.py's loop for it (one process, no DDP)."""
    torch.manual_seed(0)
    model = EventLSTM(config).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=TRAIN_LR, weight_decay=WEIGHT_DECAY)
    model.train()

    def step(x: torch.Tensor) -> float:
        for group in optimizer.param_groups:
            group["lr"] = TRAIN_LR
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            logits, _ = model(x[:, :-1])
            loss = F.cross_entropy(logits.float().reshape(-1, config.vocab_size),
                                   x[:, 1:].reshape(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP)
        optimizer.step()
        return float(loss.detach())

    return model, step


def model_step_s(config: ModelConfig, tokens: torch.Tensor, device: torch.device,
                 autocast: bool, warmup: int, steps: int) -> tuple[float, int]:
    """neuralband's step on the fixed random batch: (median seconds per step, parameters)."""
    model, train_step = make_training_step(config, device, autocast)
    seconds = median_step_s(lambda _: train_step(tokens), device, warmup, steps)
    return seconds, model.num_parameters()


def full_loop_s(config: ModelConfig, windows: TokenWindows, device: torch.device,
                autocast: bool, warmup: int, steps: int) -> tuple[float, float, int]:
    """neuralband's step fed by TokenWindows: (median s per step, median s per batch, params)."""
    model, train_step = make_training_step(config, device, autocast)
    batch_times: list[float] = []

    def step(i: int) -> None:
        t0 = time.perf_counter()
        rows = windows.batch(i)
        batch_times.append(time.perf_counter() - t0)
        train_step(torch.from_numpy(rows).to(device))

    seconds = median_step_s(step, device, warmup, steps)
    return seconds, statistics.median(batch_times[warmup:]), model.num_parameters()


# --- the dataset of the full-loop row -----------------------------------------------------------


def build_chorales(out: Path) -> tuple[int, list[int]]:
    """Encode the test chorales into `out`, all in the train split: (vocab size, piece lengths)."""
    files = sorted(MIDI_DIR.glob("*.mid"))
    if not files:
        raise SystemExit(f"no MIDI files in {MIDI_DIR}")
    build_dataset(files, out, workers=1, fractions=(1.0, 0.0, 0.0))
    scheme = read_dataset(out)[0]
    lengths = [int(e["length"]) for e in read_manifest(out) if e["split"] == "train"]
    if not lengths:
        raise SystemExit(f"none of the {len(files)} files in {MIDI_DIR} could be encoded")
    return scheme.input_classes, lengths


def data_window(window: int, lengths: list[int]) -> int:
    """`window`, halved until some piece holds a window of that many events at two starts."""
    longest = max(lengths)
    while window > 1 and longest < window + 2:
        window //= 2
    return window


def run_device(device: torch.device, preset: str, config: ModelConfig,
               data_config: ModelConfig, windows: TokenWindows, B: int, T: int, warmup: int,
               steps: int) -> list[Row]:
    """The three rows on one device; relative is events/s over the reference's."""
    autocast = use_bf16("auto", device)  # as training/train.py decides: bf16 where it pays
    ours = "bf16 autocast" if autocast else "fp32"
    generator = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, config.vocab_size, (B, T + 1), generator=generator,
                           dtype=torch.int64).to(device)

    def row(name: str, precision: str, t: int, seconds: float, params: int) -> Row:
        return Row(name, device.type, precision, preset, B, t, params, seconds * 1e3,
                   B * t / seconds)

    def say(what: str) -> None:
        print(f"[{device.type}] {what} ...", file=sys.stderr, flush=True)

    say("reference (plain PyTorch)")
    seconds, params = reference_step_s(config, tokens, device, warmup, steps)
    reference = row("reference (plain PyTorch)", "fp32", T, seconds, params)
    plain = []
    if autocast:  # the same step without autocast: what bf16 buys on this chip
        say("neuralband model step, fp32")
        seconds, params = model_step_s(config, tokens, device, False, warmup, steps)
        plain = [row("neuralband model step", "fp32", T, seconds, params)]
    say("neuralband model step")
    seconds, params = model_step_s(config, tokens, device, autocast, warmup, steps)
    model = row("neuralband model step", ours, T, seconds, params)
    say("neuralband full loop")
    seconds, data_s, params = full_loop_s(data_config, windows, device, autocast, warmup, steps)
    full = row("neuralband full loop", ours, windows.window, seconds, params)
    full.data_ms_per_batch = data_s * 1e3
    if windows.window != T:
        full.note = f"T={windows.window}: no chorale is long enough for T={T}"

    rows = [reference, *plain, model, full]
    for r in rows:
        r.relative = r.events_per_s / reference.events_per_s
    return rows


# --- report -------------------------------------------------------------------------------------


def machine(threads: int) -> dict:
    cpu = cpu_model()
    usable = usable_cpus()
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"cpu_model": cpu, "cpus": os.cpu_count(), "cpus_usable": usable,
            "torch": torch.__version__, "threads": threads, "gpu": gpu}


def print_table(rows: list[Row]) -> None:
    header = ["row", "device", "precision", "preset", "B", "T", "params", "ms/step", "events/s",
              "relative"]
    lines = [[r.row, r.device, r.precision, r.preset, str(r.batch), str(r.window),
              f"{r.params:,}", f"{r.ms_per_step:,.1f}", f"{r.events_per_s:,.0f}",
              "" if r.relative is None else f"{r.relative:.2f}x"] for r in rows]
    print_rows(header, lines, left=4)  # row, device, precision, preset; then the numbers


# --- main ---------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="performance", choices=sorted(PRESETS))
    parser.add_argument("--batch", type=int, default=64, help="windows per step (B)")
    parser.add_argument("--window", type=int, default=256, help="events per window (T)")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per row")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps before them")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: every usable core)")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                        help="auto: the CPU, and CUDA too when there is a GPU")
    args = parser.parse_args()
    if min(args.batch, args.window, args.steps) < 1 or args.warmup < 0:
        parser.error("--batch, --window and --steps must be >= 1, --warmup >= 0")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device")

    threads = args.threads or (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                               else os.cpu_count() or 1)
    torch.set_num_threads(threads)
    devices = {"auto": ["cpu"] + (["cuda"] if torch.cuda.is_available() else []),
               "cpu": ["cpu"], "cuda": ["cuda"]}[args.device]
    B, T = args.batch, args.window
    config = PRESETS[args.preset]
    notes: list[str] = []

    with tempfile.TemporaryDirectory(prefix="neuralband-train-bench-") as tmp:
        dataset = Path(tmp) / "dataset"
        data_vocab, lengths = build_chorales(dataset)
        data_T = data_window(T, lengths)
        if data_T != T:
            notes.append(f"full loop: no chorale holds a window of T={T} (+1); the longest has "
                         f"{max(lengths)} events, so that row runs at T={data_T}")
        windows = TokenWindows(dataset, "train", data_T, B, seed=0, transpose=3, stretch=0.05)
        data_config = replace(config, vocab_size=data_vocab)

        rows: list[Row] = []
        for name in devices:
            rows += run_device(torch.device(name), args.preset, config, data_config, windows,
                               B, T, args.warmup, args.steps)
            if name == "cuda":
                torch.cuda.empty_cache()

    info = machine(threads)
    print_table(rows)
    for r in rows:
        if r.data_ms_per_batch is not None:
            print(f"{r.device}: TokenWindows.batch median {r.data_ms_per_batch:,.1f} ms of a "
                  f"{r.ms_per_step:,.1f} ms full-loop step "
                  f"({100 * r.data_ms_per_batch / r.ms_per_step:.0f}%)")
    for note in notes:
        print(f"note: {note}")
    print(f"machine: {info['cpu_model']} ({info['cpus_usable']} of {info['cpus']} CPUs usable), "
          f"torch {info['torch']}, {threads} threads, GPU: {info['gpu'] or 'none'}")
    settings = {"preset": args.preset, "model": config.to_dict(), "batch": B, "window": T,
                "full_loop_window": data_T, "steps": args.steps, "warmup": args.warmup,
                "devices": devices, "dataset": str(MIDI_DIR.relative_to(REPO)),
                "dataset_pieces": len(lengths), "dataset_events": sum(lengths)}
    print(json.dumps({"benchmark": "train_throughput", "machine": info, "settings": settings,
                      "rows": [asdict(r) for r in rows], "notes": notes}))


if __name__ == "__main__":
    main()
