"""Does the grid model listen? NLL of the band's next states with the lead as played, hidden, or
taken from another piece.

A grid model (`encoders.grid`) reads (the lead at t+1, the band at t) as one class and predicts
the band's states at t+1 as one class (14**3 = 2,744 for SATB). The valid split's pieces are
scored by the same model, in one run, under three leads:

1. ``lead present``: the piece as encoded;
2. ``lead hidden``: the lead's field set to REST at every step (the band's own states unchanged);
3. ``other melody``: the lead of the next valid piece instead (cut or padded with rests): a real
   melody, just not the one this band part was written against;

and two naive baselines from the train split: ``band bigram`` (the band's next states given its
states now, never the lead: strong, as voices mostly hold) and ``band unigram``.

NLL is in nats per grid step (all steps, and the steps where some band voice starts a note, where
the melody should matter most), teacher-forced by the numpy `Stepper`, all pieces as one batch.
With ``--out DIR`` it writes the first valid piece as written and as the model accompanies its
melody, for auditioning.

Run from the repository root (the dataset comes from examples/train_grid_model.sh)::

    python benchmarks/grid_nll.py --model grid --dataset data/grid-dataset --out data/grid-audition
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.machine import cpu_model, print_rows  # noqa: E402
from neuralband.encoders.grid import NEW, GridSettings, codes_states, grid_to_pretty_midi  # noqa: E402
from neuralband.modelfile import read_info  # noqa: E402
from neuralband.runtime import Stepper  # noqa: E402
from neuralband.training.baselines import bigram_probs, count_train, unigram_probs  # noqa: E402
from neuralband.training.windows import read_dataset, split_pieces  # noqa: E402


def with_lead(codes: np.ndarray, lead: np.ndarray, grid: GridSettings) -> np.ndarray:
    """A piece's classes with another lead column (the band's fields kept)."""
    return np.asarray(lead, np.int64) * grid.output_classes + codes % grid.output_classes


def score(model: str, pieces: list[np.ndarray], grid: GridSettings) -> np.ndarray:
    """Per piece and step, -log p(band at t+1) for t = 0 .. len - 2 (NaN past a piece's end)."""
    stepper = Stepper.load(model, batch=len(pieces))
    length = max(len(p) for p in pieces)
    batch = np.zeros((len(pieces), length), np.int64)
    for i, p in enumerate(pieces):
        batch[i, :len(p)] = p
    out = np.full((len(pieces), length - 1), np.nan)
    rows = np.arange(len(pieces))
    for t in range(length - 1):
        stepper.feed(batch[:, t])
        logits = stepper.logits().astype(np.float64)
        top = logits.max(axis=1, keepdims=True)
        logz = top[:, 0] + np.log(np.exp(logits - top).sum(axis=1))
        out[:, t] = logz - logits[rows, batch[:, t + 1] % grid.output_classes]
    for i, p in enumerate(pieces):
        out[i, len(p) - 1:] = np.nan
    return out


def onset_mask(pieces: list[np.ndarray], grid: GridSettings, length: int) -> np.ndarray:
    """Steps whose target has a band voice starting a note."""
    mask = np.zeros((len(pieces), length - 1), bool)
    for i, p in enumerate(pieces):
        band_next = codes_states(p[1:], grid.voices)[:, 1:]
        mask[i, :len(p) - 1] = (band_next >= NEW).any(axis=1)
    return mask


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="grid", help="a grid model (default: bundled)")
    ap.add_argument("--dataset", default="data/grid-dataset",
                    help="the grid dataset it was trained on (its valid split is scored)")
    ap.add_argument("--out", help="write a held-out melody's accompaniment here, for auditioning")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    dataset = Path(args.dataset)
    if not (dataset / "settings.json").exists():
        print(f"grid_nll: no dataset at {dataset}; make it with examples/train_grid_model.sh",
              file=sys.stderr)
        return 2
    data, model = read_dataset(dataset)[0], read_info(args.model).scheme
    if data.plays != "clock" or model.to_dict() != data.to_dict():
        print(f"grid_nll: {dataset} ({data.to_dict()}) and {args.model} ({model.to_dict()}) must "
              "share one grid", file=sys.stderr)
        return 2
    grid = data.grid_settings
    valid = [p for p in split_pieces(dataset, "valid") if len(p) > 1]
    start = time.perf_counter()
    leads = [p // grid.output_classes for p in valid]
    others = []
    for i, p in enumerate(valid):
        other = leads[(i + 1) % len(valid)][:len(p)]
        others.append(with_lead(p, np.pad(other, (0, len(p) - len(other))), grid))
    conditions = {
        "lead present": valid,
        "lead hidden": [with_lead(p, np.zeros(len(p)), grid) for p in valid],
        "other melody": others,
    }
    length = max(len(p) for p in valid)
    onsets = onset_mask(valid, grid, length)
    nll = {name: score(args.model, pieces, grid) for name, pieces in conditions.items()}
    counts = count_train(dataset)  # the band's states: codes % out_size
    targets = [p[1:] % grid.output_classes for p in valid]
    before = [p[:-1] % grid.output_classes for p in valid]
    flat_on = np.concatenate([onsets[i, :len(p) - 1] for i, p in enumerate(valid)])
    uni = -np.log(unigram_probs(counts))[np.concatenate(targets)]
    bi = -np.log(bigram_probs(counts))[np.concatenate(before), np.concatenate(targets)]
    elapsed = time.perf_counter() - start

    steps = int(np.isfinite(nll["lead present"]).sum())
    print(f"grid NLL: {args.model} on {len(valid)} valid pieces of {dataset} ({steps:,} steps, "
          f"{int(flat_on.sum()):,} with a band onset; {cpu_model()}, "
          f"{platform.python_version()})")
    rows, result = [], {}
    for name, values in nll.items():
        all_steps, at_onsets = float(np.nanmean(values)), float(values[onsets].mean())
        rows.append([name, f"{all_steps:.4f}", f"{at_onsets:.4f}"])
        result[name] = (all_steps, at_onsets)
    for name, values in (("band bigram", bi), ("band unigram", uni)):
        rows.append([name, f"{values.mean():.4f}", f"{values[flat_on].mean():.4f}"])
        result[name] = (float(values.mean()), float(values[flat_on].mean()))
    print_rows(["condition", "NLL per step", "at band onsets"], rows)
    gain = result["lead hidden"][0] - result["lead present"][0]
    print(f"listening gain: {gain:.4f} nats per step ({gain / result['lead hidden'][0]:.1%} of "
          f"the hidden NLL); scored in {elapsed:.1f} s")

    if args.out:
        from neuralband.grid_band import GridBand, accompany_grid

        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        states = codes_states(valid[0], grid.voices)
        written = np.concatenate([states[:-1, :1], states[1:, 1:]], axis=1)  # lead, band at t
        grid_to_pretty_midi(written, grid).write(str(out / "original.mid"))
        band = GridBand(Stepper.load(args.model), seed=args.seed)
        grid_to_pretty_midi(accompany_grid(band, states[:, 0]), grid).write(
            str(out / "accompaniment.mid"))
        print(f"wrote {out / 'accompaniment.mid'} (the first valid melody, band sampled) and "
              f"{out / 'original.mid'}")

    print(json.dumps({
        "benchmark": "grid_nll", "model": str(args.model), "dataset": str(dataset),
        "valid_pieces": len(valid), "steps": steps, "cpu": cpu_model(),
        **{name.replace(" ", "_"): {"nll": round(a, 4), "onset_nll": round(b, 4)}
           for name, (a, b) in result.items()},
        "listening_gain": round(gain, 4), "seconds": round(elapsed, 2),
    }))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
