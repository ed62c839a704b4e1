"""How well does a model predict real pop piano? NLL per event on held-out POP909 songs.

What is measured: the negative log-likelihood per event (nats) of whole songs of a dataset's test
split (songs no model here trained on; `neuralband encode` splits by content hash), in one run:

1. n-grams fitted on the same dataset's train split: the add-1 unigram, the add-0.1 bigram and an
   interpolated trigram (maximum-likelihood trigram, bigram and unigram mixed with weights chosen
   on the valid split from a small grid; `training.baselines.Trigram`), the naive peers;
2. each model given (``--model``, repeatable; default the bundled pop model and the previous
   default, chorale-folk), each song encoded with the model's own settings and stepped by the
   numpy runtime from a fresh state (`neuralband.score`); a conditioned model twice: running free
   (no controls, the headline) and hearing each song's own key and density (computed from its
   notes: an upper bound on what a musician's settings give).

The n-grams score every event after a song's second, the models every event after its first. A
model trained with other encoder settings (chorale-folk folds the sustain pedal into note
lengths) is scored on its own encoding of the same songs, so its row is not token for token
comparable, only song for song.

Run from the repository root (the dataset from examples/train_pop_model.sh; about 2 minutes)::

    python benchmarks/pop_nll.py --dataset data/pop-dataset

The output is a table and a last line of JSON with every number.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.machine import cpu_model  # noqa: E402
from neuralband.modelfile import read_info  # noqa: E402
from neuralband.score import mean_nll, score_files  # noqa: E402
from neuralband.training.baselines import Trigram  # noqa: E402
from neuralband.training.windows import read_manifest, split_pieces, vocab_size  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="data/pop-dataset",
                   help="a POP909 dataset (neuralband encode --no-sustain); its test split is "
                        "scored, its train split fits the n-grams")
    p.add_argument("--model", action="append", default=None,
                   help="a model to score (repeatable; default: pop and chorale-folk)")
    p.add_argument("--songs", type=int, default=None, help="only the first N test songs")
    args = p.parse_args()
    models = args.model or ["pop", "chorale-folk"]
    rows: dict[str, dict] = {}

    test = [e for e in read_manifest(args.dataset) if e["split"] == "test"][:args.songs]
    paths = [e["source"] for e in test]
    tokens = list(split_pieces(args.dataset, "test"))[:len(test)]
    t0 = time.perf_counter()
    tri = Trigram.fit(list(split_pieces(args.dataset, "train")), vocab_size(args.dataset))
    weights, valid_nll = tri.tune(list(split_pieces(args.dataset, "valid")))
    events = sum(len(t) - 2 for t in tokens)
    rows["unigram (add-1)"] = {"nll": tri.nll(tokens, (0, 0, 1)), "events": events}
    rows["bigram (add-0.1)"] = {"nll": tri.nll(tokens, (0, 1, 0)), "events": events}
    rows[f"interpolated trigram {weights}"] = {"nll": tri.nll(tokens, weights),
                                               "events": events, "valid_nll": valid_nll}
    print(f"n-grams fitted and scored in {time.perf_counter() - t0:.1f} s", file=sys.stderr)

    for model in models:
        info = read_info(model)
        runs = [("free", False), ("own key and density", True)] if info.controls else \
            [("", False)]
        for how, controls in runs:
            t0 = time.perf_counter()
            scores, failed = score_files(model, paths, batch=16, controls=controls)
            name = f"{model} ({how})" if how else model
            rows[name] = {"nll": mean_nll(scores), "events": sum(s.predicted for s in scores),
                          "skipped": failed, "sustain_folded": info.encoder.sustain}
            print(f"{name}: {time.perf_counter() - t0:.1f} s", file=sys.stderr)

    trigram = rows[f"interpolated trigram {weights}"]["nll"]
    print(f"\nNLL per event on {len(test)} held-out POP909 songs (the test split of "
          f"{args.dataset}), {cpu_model()}")
    print(f"{'':52s}{'events':>10s}{'nats/event':>12s}{'vs trigram':>12s}")
    for name, r in rows.items():
        print(f"{name:52s}{r['events']:10,d}{r['nll']:12.4f}{r['nll'] / trigram - 1:+12.1%}")
    print(json.dumps({"benchmark": "pop_nll", "dataset": args.dataset, "songs": len(test),
                      "trigram_weights": weights, "rows": rows}))


if __name__ == "__main__":
    main()
