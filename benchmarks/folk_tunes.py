"""Does the folk model write tunes? The checks folk-rnn's authors made, on its samples and on
real tunes, and its NLL against the n-grams, in one run.

What is measured:

1. NLL per token (nats) of the dataset's valid tunes (`--scheme folk`: ABC tunes as folk-rnn's
   tokens, transposed to C), by the model (the numpy `Stepper`, each tune from a fresh state,
   every token after its first) and by the n-grams fitted on the train split (the add-1 unigram,
   the add-0.1 bigram: the naive peers; `training.baselines.Trigram`);
2. ``-n`` tunes sampled from the model (`neuralband.generate.sample_tokens`, temperature 1,
   each ended by its own </s> or at 600 tokens), twice: from the whole distribution (top-p 1)
   and as `neuralband generate` samples by default (top-p 0.95); and the valid tunes. Each tune
   is checked: it renders to
   MIDI with notes (symusic's abc2midi), it names a meter and a key, every inner bar (not the
   first or last of a section, where a pickup may leave it short) adds up to the meter, and its
   last note is the tonic (C, the key every tune is transposed to).

With ``--out DIR`` the top-p 0.95 samples are written there as ABC (and MIDI where they render).

Run from the repository root (the dataset and model from examples/train_folk_model.sh)::

    python benchmarks/folk_tunes.py --model folk --dataset data/folk-dataset -n 200

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

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.machine import cpu_model, print_rows  # noqa: E402
from neuralband.encoders.errors import MidiError  # noqa: E402
from neuralband.encoders.folk import FolkScheme, tune_checks  # noqa: E402
from neuralband.generate import sample_tokens  # noqa: E402
from neuralband.modelfile import read_info  # noqa: E402
from neuralband.runtime import Stepper  # noqa: E402
from neuralband.sampling import Rules  # noqa: E402
from neuralband.score import stream_nll  # noqa: E402
from neuralband.training.baselines import Trigram  # noqa: E402
from neuralband.training.windows import read_dataset, split_pieces  # noqa: E402

CHECKS = ("renders", "meter_and_key", "bars_add_up", "ends_on_tonic")


def check_all(tunes: list[np.ndarray], scheme: FolkScheme) -> dict[str, float]:
    """The share of tunes that pass each check, and their mean length in tokens."""
    passed = dict.fromkeys(CHECKS, 0)
    for tokens in tunes:
        for name, ok in tune_checks(tokens).items():
            passed[name] += ok
        try:
            passed["renders"] += b"MTrk" in scheme.to_midi(scheme.decode(tokens), "tune")
        except MidiError:
            pass
    return {**{k: v / len(tunes) for k, v in passed.items()},
            "tokens": float(np.mean([len(t) for t in tunes]))}


def model_nll(model: str, tunes: list[np.ndarray], batch: int = 64) -> float:
    """Mean NLL per predicted token of the tunes, from a fresh state each."""
    total, count = 0.0, 0
    for start in range(0, len(tunes), batch):
        part = tunes[start:start + batch]
        stepper = Stepper.load(model, batch=len(part))
        total += float(stream_nll(stepper, part).sum())
        count += sum(len(t) - 1 for t in part)
    return total / count


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="folk")
    p.add_argument("--dataset", default="data/folk-dataset")
    p.add_argument("-n", type=int, default=200, help="tunes to sample")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, help="write the samples here (ABC, and MIDI)")
    args = p.parse_args()
    scheme = read_info(args.model).scheme
    if not isinstance(scheme, FolkScheme) or read_dataset(args.dataset)[0] != scheme:
        print(f"folk_tunes: {args.model} and {args.dataset} must both be of the folk scheme",
              file=sys.stderr)
        return 2
    valid = list(split_pieces(args.dataset, "valid"))
    t0 = time.perf_counter()
    tri = Trigram.fit(list(split_pieces(args.dataset, "train")), scheme.input_classes)
    nll = {"unigram (add-1)": tri.nll(valid, (0, 0, 1)),
           "bigram (add-0.1)": tri.nll(valid, (0, 1, 0)),
           args.model: model_nll(args.model, valid)}
    t_nll = time.perf_counter() - t0
    t0 = time.perf_counter()
    tunes = [s.tokens for s in sample_tokens(args.model, None, 600, args.n, seed=args.seed)]
    t_sample = time.perf_counter() - t0
    nucleus = [s.tokens for s in sample_tokens(args.model, None, 600, args.n,
                                                Rules(top_p=0.95), seed=args.seed)]
    generated, real = check_all(tunes, scheme), check_all(valid, scheme)
    default = check_all(nucleus, scheme)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        for k, tokens in enumerate(nucleus):
            text = scheme.decode(tokens)
            (args.out / f"tune-{k + 1}.abc").write_text(text)
            try:
                (args.out / f"tune-{k + 1}.mid").write_bytes(scheme.to_midi(text, "tune"))
            except MidiError:
                pass

    print(f"\nNLL per token on the {len(valid)} valid tunes of {args.dataset}, {cpu_model()}")
    print_rows(["", "nats/token", "bits/token"],
               [[name, f"{v:.4f}", f"{v / np.log(2):.4f}"] for name, v in nll.items()])
    print(f"\n{args.n} tunes sampled from {args.model} (seed {args.seed}, {t_sample:.1f} s) "
          f"beside the {len(valid)} valid tunes")
    print_rows(["share of tunes", "top-p 1", "top-p 0.95", "real"],
               [[k, f"{generated[k]:.3f}", f"{default[k]:.3f}", f"{real[k]:.3f}"]
                for k in CHECKS]
               + [["mean tokens", f"{generated['tokens']:.0f}", f"{default['tokens']:.0f}",
                   f"{real['tokens']:.0f}"]])
    print(json.dumps({"model": args.model, "dataset": args.dataset, "valid_tunes": len(valid),
                      "nll": {k: round(v, 4) for k, v in nll.items()},
                      "generated": {k: round(v, 4) for k, v in generated.items()},
                      "generated_top_p_0.95": {k: round(v, 4) for k, v in default.items()},
                      "real": {k: round(v, 4) for k, v in real.items()}, "n": args.n,
                      "seed": args.seed, "sample_s": round(t_sample, 1),
                      "nll_s": round(t_nll, 1), "cpu": cpu_model()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
