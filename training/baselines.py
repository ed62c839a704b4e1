"""Unigram and bigram baselines: the validation NLL that event frequencies alone achieve.

Saved next to the LSTM's validation loss (as baselines.json in a run folder) so users see that
the LSTM learns more than event frequencies and pairs. Counts come from the train split only, in
one pass over the memory-mapped shards; bigrams are counted within pieces, never across two
pieces that happen to sit side by side in a shard. Numpy only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from neuralband.training.windows import model_shape, read_manifest

_CHUNK_TOKENS = 1 << 22  # bincount the gathered tokens every ~4 M, bounding memory per shard


@dataclass
class Counts:
    """Token counts of the train split: unigram (V,), bigram (V, V) as [prev, next], tokens."""

    unigram: np.ndarray
    bigram: np.ndarray
    tokens: int

    @property
    def vocab_size(self) -> int:
        return int(self.unigram.shape[0])


def count_train(dataset_dir: str | Path, settings_vocab: int | None = None) -> Counts:
    """Unigram and within-piece bigram counts over every train piece of a dataset folder.

    ``settings_vocab`` overrides the vocabulary size (default: the classes the dataset's model
    predicts). A grid dataset is counted as its band's states, ``token % out_size``: the bigram
    is then p(band at t+1 | band at t), a band that only follows itself, never the lead.
    Raises ValueError if a piece lies outside its shard or holds a token outside the vocabulary.
    """
    root = Path(dataset_dir)
    shape = model_shape(root)
    out_size = shape["out_size"]
    vocab = settings_vocab if settings_vocab is not None else out_size or shape["vocab_size"]
    if vocab < 1:
        raise ValueError(f"vocabulary size must be >= 1, got {vocab}")
    unigram = np.zeros(vocab, np.int64)
    bigram = np.zeros(vocab * vocab, np.int64)

    by_shard: dict[str, list[tuple[int, int]]] = {}
    for entry in read_manifest(root):
        if entry["split"] == "train" and int(entry["length"]) > 0:
            by_shard.setdefault(entry["shard"], []).append(
                (int(entry["offset"]), int(entry["length"])))

    def flush(singles: list[np.ndarray], pairs: list[np.ndarray]) -> None:
        if singles:
            tokens = np.concatenate(singles)
            if tokens.size and int(tokens.max()) >= vocab:
                raise ValueError(f"{root}: token {int(tokens.max())} is outside the "
                                 f"vocabulary 0..{vocab - 1}")
            unigram[:] += np.bincount(tokens, minlength=vocab)
        if pairs:
            bigram[:] += np.bincount(np.concatenate(pairs), minlength=vocab * vocab)
        singles.clear()
        pairs.clear()

    for name, pieces in sorted(by_shard.items()):
        path = root / "shards" / name
        shard = np.load(path, mmap_mode="r")
        if shard.ndim != 1:
            raise ValueError(f"{path}: expected a 1-D token array, got shape {shard.shape}")
        singles: list[np.ndarray] = []
        pairs: list[np.ndarray] = []
        gathered = 0
        for offset, length in pieces:
            if offset < 0 or offset + length > len(shard):
                raise ValueError(f"{path} has {len(shard)} tokens; the manifest puts a train "
                                 f"piece at {offset}+{length}")
            tokens = np.asarray(shard[offset:offset + length], dtype=np.int64)
            if out_size:
                tokens %= out_size
            singles.append(tokens)
            # Pair codes prev * V + next of this piece alone: none crosses a piece boundary.
            # Tokens >= V would alias here, but flush() refuses them before they are counted.
            pairs.append(tokens[:-1] * vocab + tokens[1:])
            gathered += length
            if gathered >= _CHUNK_TOKENS:
                flush(singles, pairs)
                gathered = 0
        flush(singles, pairs)

    return Counts(unigram=unigram, bigram=bigram.reshape(vocab, vocab),
                  tokens=int(unigram.sum()))


def _check(counts: Counts, windows: np.ndarray, k: float) -> np.ndarray:
    """Windows as a (N, T + 1) int64 array with T >= 1 and tokens in the vocabulary; k > 0."""
    if not k > 0 or not math.isfinite(k):
        raise ValueError(f"smoothing k must be a positive finite number, got {k}")
    windows = np.asarray(windows)
    if windows.ndim != 2 or windows.shape[1] < 2 or windows.shape[0] < 1:
        raise ValueError(f"windows must be (N >= 1, T + 1 >= 2), got shape {windows.shape}")
    if not np.issubdtype(windows.dtype, np.integer):
        raise ValueError(f"windows must hold integer tokens, got {windows.dtype}")
    if windows.min() < 0 or windows.max() >= counts.vocab_size:
        raise ValueError(f"windows hold tokens outside the vocabulary 0..{counts.vocab_size - 1}")
    return windows.astype(np.int64, copy=False)


def unigram_probs(counts: Counts, k: float = 1.0) -> np.ndarray:
    """Add-k smoothed p(token), shape (V,): (c + k) / (tokens + k V)."""
    vocab = counts.vocab_size
    return (counts.unigram + k) / (counts.tokens + k * vocab)


def bigram_probs(counts: Counts, k: float = 0.1) -> np.ndarray:
    """Add-k smoothed p(next | prev), shape (V, V), each row summing to 1."""
    vocab = counts.vocab_size
    rows = counts.bigram.sum(axis=1, keepdims=True)
    return (counts.bigram + k) / (rows + k * vocab)


def unigram_nll(counts: Counts, windows: np.ndarray, k: float = 1.0) -> float:
    """Mean -log p(target) in nats over all targets ``windows[:, 1:]``, add-k smoothed unigram."""
    windows = _check(counts, windows, k)
    return float(-np.log(unigram_probs(counts, k))[windows[:, 1:]].mean())


def bigram_nll(counts: Counts, windows: np.ndarray, k: float = 0.1) -> float:
    """Mean -log p(next | prev) in nats, prev ``windows[:, :-1]``, next ``windows[:, 1:]``."""
    windows = _check(counts, windows, k)
    log_p = np.log(bigram_probs(counts, k))
    return float(-log_p[windows[:, :-1], windows[:, 1:]].mean())


def baselines(dataset_dir: str | Path, windows: np.ndarray, k_unigram: float = 1.0,
              k_bigram: float = 0.1) -> dict:
    """Unigram and bigram NLL (nats per event) and perplexity on the LSTM's validation targets.

    Counts come from the dataset's train split; the result is JSON-serialisable (baselines.json).
    A grid dataset's windows are scored as its band's states (see `count_train`).
    """
    counts = count_train(dataset_dir)
    out_size = model_shape(dataset_dir)["out_size"]
    if out_size:
        windows = np.asarray(windows, np.int64) % out_size
    uni = unigram_nll(counts, windows, k_unigram)
    bi = bigram_nll(counts, windows, k_bigram)
    windows = np.asarray(windows)
    return {
        "unigram_nll": uni,
        "bigram_nll": bi,
        "unigram_ppl": math.exp(uni),
        "bigram_ppl": math.exp(bi),
        "train_tokens": counts.tokens,
        "eval_targets": int(windows.shape[0] * (windows.shape[1] - 1)),
        "k_unigram": float(k_unigram),
        "k_bigram": float(k_bigram),
    }


@dataclass
class Trigram:
    """Within-piece trigram counts (sorted codes a V^2 + b V + c) and their contexts' counts,
    over the unigram and bigram `Counts`: an interpolated trigram, the strongest n-gram peer
    we score."""

    counts: Counts
    codes: np.ndarray
    tri_counts: np.ndarray
    context_codes: np.ndarray
    context_counts: np.ndarray

    @classmethod
    def fit(cls, pieces: list[np.ndarray], vocab: int) -> Trigram:
        tri = [p[:-2] * vocab * vocab + p[1:-1] * vocab + p[2:] for p in pieces if len(p) > 2]
        codes, counts = np.unique(np.concatenate(tri) if tri else np.zeros(0, np.int64),
                                  return_counts=True)
        context_codes, inverse = np.unique(codes // vocab, return_inverse=True)
        context_counts = np.bincount(inverse, weights=counts).astype(np.int64)
        unigram = np.bincount(np.concatenate(pieces), minlength=vocab)
        pairs = [p[:-1] * vocab + p[1:] for p in pieces if len(p) > 1]
        bigram = np.bincount(np.concatenate(pairs) if pairs else np.zeros(0, np.int64),
                             minlength=vocab * vocab).reshape(vocab, vocab)
        return cls(Counts(unigram, bigram, int(unigram.sum())), codes, counts, context_codes,
                   context_counts)

    @staticmethod
    def _lookup(keys: np.ndarray, table: np.ndarray, values: np.ndarray) -> np.ndarray:
        if not len(table):
            return np.zeros(len(keys))
        i = np.clip(np.searchsorted(table, keys), 0, len(table) - 1)
        return np.where(table[i] == keys, values[i], 0)

    def nll(self, pieces: list[np.ndarray], weights: tuple[float, float, float]) -> float:
        """Mean -log p of every event after a piece's second (nats), with p the ``weights``
        (trigram, bigram, unigram) mix of the maximum-likelihood trigram, the add-0.1 bigram
        and the add-1 unigram; where a context was never seen, its weight goes to the other
        two in proportion. (0, 1, 0) is the bigram alone, (0, 0, 1) the unigram."""
        l3, l2, l1 = weights
        V = self.counts.vocab_size
        uni, bi = unigram_probs(self.counts, 1.0), bigram_probs(self.counts, 0.1)
        total, n = 0.0, 0
        for p in pieces:
            if len(p) < 3:
                continue
            a, b, c = p[:-2], p[1:-1], p[2:]
            ctx = self._lookup(a * V + b, self.context_codes, self.context_counts)
            tri = self._lookup(a * V * V + b * V + c, self.codes, self.tri_counts)
            seen = ctx > 0
            spare = np.where(seen, 0.0, l3) / (l2 + l1)  # an unseen context's trigram weight
            p_mix = (np.where(seen, l3 * tri / np.maximum(ctx, 1), 0.0)
                     + l2 * (1 + spare) * bi[b, c] + l1 * (1 + spare) * uni[c])
            total += float(-np.log(p_mix).sum())
            n += len(c)
        return total / n if n else float("nan")

    def tune(self, pieces: list[np.ndarray]) -> tuple[tuple[float, float, float], float]:
        """The weights, of a small grid, that score ``pieces`` (a validation split) best."""
        best = ((0.6, 0.35, 0.05), np.inf)
        for l3 in (0.4, 0.5, 0.6, 0.7, 0.8):
            for l1 in (0.01, 0.03, 0.1):
                w = (l3, 1.0 - l3 - l1, l1)
                score = self.nll(pieces, w)
                if score < best[1]:
                    best = (w, score)
        return best
