"""LSTM against GRU at an equal parameter count, on the same data, in one run.

Two `neuralband train` runs start together, one core each (``--threads 1``): the preset's LSTM,
and a GRU (``--cell gru``) whose hidden size is widened until its parameter count is the
LSTM's (a GRU has three gates where the LSTM has four). Both see the same windows: the same
dataset, seed, schedule, augmentation. Then each trained model is stepped one event at a time
by the numpy `Stepper` (fp32 and int8, one thread, median of ``--step-events``). The peer is
the LSTM itself, the cell every bundled model uses; the naive baseline is the bigram each run
reports. Run from the repository root::

    .venv/bin/python benchmarks/cell_comparison.py --dataset data/pop-dataset --steps 1000

Prints a table and a JSON line.
"""

from __future__ import annotations

import os

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from dataclasses import replace  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.machine import cpu_model, usable_cpus  # noqa: E402
from neuralband.modelconfig import PRESETS, ModelConfig  # noqa: E402
from neuralband.runtime import Stepper  # noqa: E402


def parameters(c: ModelConfig) -> int:
    """What `EventLSTM(c).num_parameters()` counts, without building it."""
    g, h, e = c.gates, c.hidden, c.embed_dim + c.controls
    rnn = sum(g * h * ((e if k == 0 else h) + h + 2) for k in range(c.layers))
    return c.vocab_size * c.embed_dim + rnn + c.classes * (h + 1)


def equal_gru(lstm: ModelConfig) -> ModelConfig:
    """The GRU of the same shape whose parameter count is nearest the LSTM's."""
    target = parameters(lstm)
    return min((replace(lstm, cell="gru", hidden=h) for h in range(lstm.hidden, 2 * lstm.hidden)),
               key=lambda c: abs(parameters(c) - target))


def step_ms(model: Path, precision: str, events: int) -> float:
    stepper = Stepper.load(model, precision=precision)
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, stepper.config.vocab_size, events + 200).tolist()
    times = []
    for k, tok in enumerate(tokens):
        t = time.perf_counter()
        stepper.feed(tok)
        stepper.logits()
        if k >= 200:
            times.append(time.perf_counter() - t)
    return float(np.median(times)) * 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", default="data/pop-dataset")
    ap.add_argument("--out", default="data/cells")
    ap.add_argument("--preset", default="small", choices=sorted(PRESETS))
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--window", type=int, default=128)
    ap.add_argument("--step-events", type=int, default=3000)
    args = ap.parse_args()
    lstm = PRESETS[args.preset]
    gru = equal_gru(lstm)
    runs = {"lstm": (lstm, Path(args.out) / "lstm"), "gru": (gru, Path(args.out) / "gru")}
    procs = {}
    t0 = time.perf_counter()
    for cell, (c, run) in runs.items():
        cmd = [sys.executable, "-m", "neuralband", "train", args.dataset, "-o", str(run),
               "--preset", args.preset, "--cell", cell, "--hidden", str(c.hidden),
               "--steps", str(args.steps), "--batch", str(args.batch), "--window",
               str(args.window), "--eval-every", str(max(args.steps // 5, 1)), "--threads", "1",
               "--seed", "0", "--force", "-q"]
        procs[cell] = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                       text=True)
    for cell, p in procs.items():
        out, _ = p.communicate()
        if p.returncode:
            raise SystemExit(f"{cell} training failed:\n{out}")
    wall = time.perf_counter() - t0
    rows = {}
    for cell, (c, run) in runs.items():
        info = json.loads((run / "model.json").read_text())
        base = json.loads((run / "baselines.json").read_text())
        rows[cell] = {"hidden": c.hidden, "params": parameters(c),
                      "valid_nll": info["summary"]["valid_nll"],
                      "bigram_nll": base["bigram_nll"],
                      "step_fp32_ms": step_ms(run / "model", "fp32", args.step_events),
                      "step_int8_ms": step_ms(run / "model", "int8", args.step_events)}
    print(f"# {cpu_model()}, {usable_cpus()} CPUs; {args.dataset}, preset {args.preset}, "
          f"{args.steps} steps of {args.batch} x {args.window}, one core each ({wall:.0f} s)")
    print(f"{'cell':<6}{'layers x hidden':>16}{'params':>10}{'valid NLL':>11}{'bigram':>8}"
          f"{'step fp32 (ms)':>16}{'step int8 (ms)':>16}")
    for cell, r in rows.items():
        print(f"{cell:<6}{lstm.layers:>9} x {r['hidden']:<4}{r['params']:>10}"
              f"{r['valid_nll']:>11.3f}{r['bigram_nll']:>8.3f}{r['step_fp32_ms']:>16.3f}"
              f"{r['step_int8_ms']:>16.3f}")
    print(json.dumps({"benchmark": "cell_comparison", "machine": cpu_model(),
                      "dataset": args.dataset, "preset": args.preset, "steps": args.steps,
                      "batch": args.batch, "window": args.window, **{
                          f"{cell}_{k}": v for cell, r in rows.items() for k, v in r.items()}}))


if __name__ == "__main__":
    main()
