"""Do int8 weights change what the model predicts? NLL on a valid split, fp32 against int8.

`neuralband.int8` stores the matrices a step reads as int8 with one scale per output row. That
is only worth having if the model still predicts the music as well: each (model, dataset) pair
given is scored twice over the dataset's valid split, by the same numpy `Stepper` in fp32 and in
int8, teacher-forced, every piece from its second token on, all pieces as one batch. The target
at step t is ``token[t+1] % classes`` (the token itself for event models; the band's state for a
grid model, whose inputs also carry the lead). The issue's bar: the NLL changes by less than 1%.

Run from the repository root, with the datasets the bundled models were trained on (see
examples/train_*_model.sh)::

    python benchmarks/precision_nll.py default=data/default-dataset duet=data/duet-dataset \\
        grid=data/grid-dataset
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.machine import cpu_model, print_rows  # noqa: E402
from neuralband.runtime import Stepper  # noqa: E402
from neuralband.training.windows import split_pieces  # noqa: E402

GOAL_CHANGE = 0.01


def valid_nll(stepper: Stepper, pieces: list[np.ndarray]) -> tuple[float, int]:
    """Mean NLL (nats) of every piece's tokens after its first, and how many were scored."""
    lengths = np.array([len(p) for p in pieces])
    grid = np.zeros((len(pieces), lengths.max()), np.int64)
    for i, p in enumerate(pieces):
        grid[i, :len(p)] = p
    rows = np.arange(len(pieces))
    total = 0.0
    for t in range(grid.shape[1] - 1):
        stepper.feed(grid[:, t])
        logits = stepper.logits().astype(np.float64)
        top = logits.max(axis=1)
        logz = top + np.log(np.exp(logits - top[:, None]).sum(axis=1))
        nll = logz - logits[rows, grid[:, t + 1] % stepper.config.classes]
        total += nll[t + 1 < lengths].sum()
    scored = int((lengths - 1).clip(0).sum())
    return total / scored, scored


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("pairs", nargs="+", metavar="MODEL=DATASET",
                    help="a model (file or bundled name) and the dataset folder it was trained on")
    args = ap.parse_args()
    rows, results = [], []
    for pair in args.pairs:
        model, _, dataset = pair.partition("=")
        pieces = [p.astype(np.int64) for p in split_pieces(dataset, "valid") if len(p) > 1]
        found = {}
        for precision in ("fp32", "int8"):
            print(f"{model} {precision} ...", file=sys.stderr, flush=True)
            stepper = Stepper.load(model, batch=len(pieces), precision=precision)
            t0 = time.perf_counter()
            nll, scored = valid_nll(stepper, pieces)
            found[precision] = {"nll": nll, "seconds": time.perf_counter() - t0,
                                "weight_bytes": stepper.weight_bytes}
        change = (found["int8"]["nll"] - found["fp32"]["nll"]) / found["fp32"]["nll"]
        results.append({"model": model, "dataset": dataset, "pieces": len(pieces),
                        "targets": scored, "change": change, **found})
        rows.append([model, f"{len(pieces):,}", f"{scored:,}", f"{found['fp32']['nll']:.4f}",
                     f"{found['int8']['nll']:.4f}", f"{change * 100:+.3f}%",
                     f"{found['fp32']['weight_bytes'] / 1e6:.2f} / "
                     f"{found['int8']['weight_bytes'] / 1e6:.2f}"])
    print_rows(["model", "valid pieces", "targets", "fp32 NLL", "int8 NLL", "change",
                "MB per step fp32 / int8"], rows)
    ok = all(abs(r["change"]) < GOAL_CHANGE for r in results)
    print(f"{'PASS' if ok else 'FAIL'}: int8 changes the valid NLL by less than "
          f"{GOAL_CHANGE:.0%} for every model")
    print(f"machine: {cpu_model()}")
    print(json.dumps({"benchmark": "precision_nll", "machine": cpu_model(), "rows": results,
                      "goal_pass": ok}))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
