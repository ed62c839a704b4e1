"""How much does the lead's note tell its band? Counted, not learnt, beside `duet_nll.py`.

`duet_nll.py` measures how much a duet model's band gains from hearing the lead. This asks the
data: the pitch class of each band NOTE_ON predicted by counts over the train split, from the
band's own last ``K`` pitch classes alone and with the lead's last pitch class as well, scored on
the valid split (nats per band NOTE_ON). Pitch classes are taken relative to the band's last one,
so the counts do not depend on the song's key (``K = 0``: absolute, the key included); each
estimate is add-one smoothed towards the next shorter context, the lead's towards the band's.

``K = 0`` is a band with no past (the moment it comes in): there the lead's note says the most.
As ``K`` grows the band's own past says more and the lead's note less. Counts thin out in long
contexts (with the lead's note, 12^(K-1) x 13 of them), so the last rows understate the gain;
and the lead says more than its last note (its rhythm, its phrase), which no row counts.

Run from the repository root (the dataset comes from examples/train_pop_duet_model.sh)::

    python benchmarks/melody_information.py --dataset data/pop-duet-dataset
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
from neuralband.encoders.voices import VoiceSettings  # noqa: E402
from neuralband.training.windows import read_dataset, split_pieces  # noqa: E402

NO_MELODY = 12  # the lead's pitch class before its first note


def band_onsets(pieces, scheme: VoiceSettings, longest: int) -> np.ndarray:
    """(N, longest + 2) int: for each band NOTE_ON, its pitch class, the band's ``longest``
    earlier ones (oldest first; -1 before the first) and the lead's last (`NO_MELODY`: none)."""
    rows = []
    for piece in pieces:
        voice, base = scheme.unpack(np.asarray(piece))
        on = (base < 128) & (voice >= 0)
        pc = base[on] % 12
        is_lead = voice[on] == 0
        lead_pc = np.where(is_lead, pc, -1)
        last = np.maximum.accumulate(np.where(is_lead, np.arange(len(pc)), -1))
        melody = np.where(last >= 0, lead_pc[np.maximum(last, 0)], NO_MELODY)
        band_pc, band_melody = pc[~is_lead], melody[~is_lead]
        history = np.full((len(band_pc), longest), -1)
        for k in range(1, longest + 1):
            history[k:, longest - k] = band_pc[:-k]
        rows.append(np.column_stack([band_pc, history, band_melody]))
    return np.concatenate(rows)


def relative(rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The rows with at least ``k`` earlier band notes as (target, context ids, melody): pitch
    classes relative to the band's last (absolute where ``k`` is 0)."""
    longest = rows.shape[1] - 2
    history = rows[:, 1:1 + longest]
    keep = (history[:, longest - k:] >= 0).all(axis=1) if k else np.ones(len(rows), bool)
    rows = rows[keep]
    ref = rows[:, longest] if k else np.zeros(len(rows), np.int64)
    target = (rows[:, 0] - ref) % 12
    context = np.zeros(len(rows), np.int64)
    for j in range(longest - k, longest - 1):  # the band's last is 0 by definition: left out
        context = context * 12 + (rows[:, 1 + j] - ref) % 12
    melody = rows[:, -1]
    melody = np.where(melody == NO_MELODY, NO_MELODY, (melody - ref) % 12)
    return target, context, melody


def smoothed(train_target, train_ctx, valid_target, valid_ctx, prior: np.ndarray) -> np.ndarray:
    """p(target | context) for each valid row, add-one smoothed towards ``prior`` (per row)."""
    n_ctx = int(max(train_ctx.max(initial=0), valid_ctx.max(initial=0))) + 1
    counts = np.zeros((n_ctx, 12))
    np.add.at(counts, (train_ctx, train_target), 1.0)
    seen = counts[valid_ctx]
    total = seen.sum(axis=1)
    return (seen[np.arange(len(valid_ctx)), valid_target] + 12 * prior) / (total + 12)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", default="data/pop-duet-dataset",
                    help="a voice-packed dataset: voice 0 the lead (default: %(default)s)")
    ap.add_argument("--longest", type=int, default=4,
                    help="the longest band context counted, in notes (default: %(default)s)")
    args = ap.parse_args()
    dataset = Path(args.dataset)
    if not (dataset / "settings.json").exists():
        print(f"melody_information: no dataset at {dataset}; make it with "
              "examples/train_pop_duet_model.sh", file=sys.stderr)
        return 2
    data = read_dataset(dataset)[0]
    if not data.voiced:
        print(f"melody_information: {dataset} is not voice-packed (no lead to hear)",
              file=sys.stderr)
        return 2
    scheme = data.voice_settings
    start = time.perf_counter()
    train = band_onsets(split_pieces(dataset, "train"), scheme, args.longest)
    valid = band_onsets(split_pieces(dataset, "valid"), scheme, args.longest)
    table, results = [], []
    for k in range(args.longest + 1):
        t_target, t_ctx, t_mel = relative(train, k)
        v_target, v_ctx, v_mel = relative(valid, k)
        unigram = (np.bincount(t_target, minlength=12) + 1.0) / (len(t_target) + 12)
        prior = unigram[v_target]
        if k > 1:  # back off to the next shorter context (its oldest pitch class dropped)
            shorter = 12 ** (k - 2)
            prior = smoothed(t_target, t_ctx % shorter, v_target, v_ctx % shorter, prior)
        band = smoothed(t_target, t_ctx, v_target, v_ctx, prior)
        with_melody = smoothed(t_target, t_ctx * 13 + t_mel, v_target, v_ctx * 13 + v_mel, band)
        alone, heard = -np.log(band).mean(), -np.log(with_melody).mean()
        table.append([str(k), f"{len(v_target):,}", f"{alone:.4f}", f"{heard:.4f}",
                      f"{alone - heard:.4f}"])
        results.append({"band_context": k, "valid_onsets": int(len(v_target)),
                        "nll_band_alone": round(float(alone), 4),
                        "nll_melody_heard": round(float(heard), 4),
                        "gain": round(float(alone - heard), 4)})
    print(f"melody information: {dataset}, band NOTE_ON pitch classes ({len(train):,} train, "
          f"{len(valid):,} valid; {cpu_model()}; {time.perf_counter() - start:.1f} s)")
    print_rows(["band notes known", "valid onsets", "band alone (nats)",
                "+ lead's last pitch class", "gain"], table)
    print(json.dumps({"benchmark": "melody_information", "dataset": str(dataset),
                      "results": results, "cpu": cpu_model()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
