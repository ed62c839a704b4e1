"""Unigram and bigram baselines: exact counts, NLLs as a direct computation, sane limits."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from neuralband.encoders.performance import VOCAB_SIZE, EncoderSettings
from neuralband.training.baselines import (
    Counts,
    baselines,
    bigram_nll,
    bigram_probs,
    count_train,
    unigram_nll,
    unigram_probs,
)
from neuralband.training.dataset import build_dataset
from neuralband.training.windows import TokenWindows
from tests.helpers.data import CHORALES

V = VOCAB_SIZE


def write_dataset(root: Path, pieces: list[tuple[str, list[int]]], shards: int = 2) -> Path:
    """A hand-made dataset folder: pieces go round-robin into `shards` shard files, back to back."""
    (root / "shards").mkdir(parents=True)
    contents: list[list[int]] = [[] for _ in range(shards)]
    lines = []
    for i, (split, tokens) in enumerate(pieces):
        shard = contents[i % shards]
        lines.append(json.dumps({
            "source": f"piece{i}.mid", "sha256": f"{i:064x}", "split": split,
            "shard": f"{i % shards:05d}.npy", "offset": len(shard), "length": len(tokens),
            "duration_s": 1.0, "notes": 1}))
        shard.extend(tokens)
    for n, shard in enumerate(contents):
        np.save(root / "shards" / f"{n:05d}.npy", np.asarray(shard, np.uint16))
    (root / "manifest.jsonl").write_text("\n".join(lines) + "\n")
    (root / "settings.json").write_text(json.dumps({
        "format": "neuralband-dataset", "version": 1, "encoder": EncoderSettings().to_dict(),
        "splits": {"train": 0.9, "valid": 0.05, "test": 0.05}}))
    return root


PIECES = [
    ("train", [1, 2, 3, 1]),
    ("valid", [5, 5, 5, 5, 5]),    # never counted
    ("train", [3, 387]),           # shard 0 after piece 0: (1, 3) must not be counted
    ("test", [7, 7]),              # never counted
    ("train", [2]),                # a single token: a unigram, no bigram
    ("train", [387, 1, 2]),
]


def direct_counts(pieces: list[tuple[str, list[int]]]) -> tuple[dict, dict]:
    uni: dict[int, int] = {}
    bi: dict[tuple[int, int], int] = {}
    for split, tokens in pieces:
        if split != "train":
            continue
        for t in tokens:
            uni[t] = uni.get(t, 0) + 1
        for a, b in zip(tokens, tokens[1:], strict=False):
            bi[a, b] = bi.get((a, b), 0) + 1
    return uni, bi


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    return write_dataset(tmp_path / "tiny", PIECES)


@pytest.fixture(scope="module")
def chorales(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real chorales, all in train (the point is real statistics, not a held-out split)."""
    out = tmp_path_factory.mktemp("chorales")
    build_dataset(CHORALES, out, workers=1, fractions=(1.0, 0.0, 0.0))
    return out


def test_counts_exact_on_a_hand_made_dataset(tiny: Path) -> None:
    counts = count_train(tiny)
    uni, bi = direct_counts(PIECES)
    assert isinstance(counts, Counts)
    assert counts.unigram.shape == (V,) and counts.unigram.dtype == np.int64
    assert counts.bigram.shape == (V, V) and counts.bigram.dtype == np.int64
    assert counts.tokens == 4 + 2 + 1 + 3
    assert {int(t): int(c) for t, c in enumerate(counts.unigram) if c} == uni
    assert {(int(a), int(b)): int(counts.bigram[a, b])
            for a, b in zip(*np.nonzero(counts.bigram), strict=True)} == bi
    # Nothing across piece boundaries or from other splits.
    assert counts.bigram[1, 3] == 0 and counts.bigram[387, 1] == 1  # (1,3) spans pieces 0|2
    assert counts.bigram[5].sum() == 0 and counts.unigram[5] == 0 and counts.unigram[7] == 0
    assert counts.bigram.sum() == 3 + 1 + 0 + 2  # length - 1 per train piece


def test_counts_do_not_depend_on_the_shard_layout(tmp_path: Path) -> None:
    one = count_train(write_dataset(tmp_path / "one", PIECES, shards=1))
    three = count_train(write_dataset(tmp_path / "three", PIECES, shards=3))
    assert np.array_equal(one.unigram, three.unigram)
    assert np.array_equal(one.bigram, three.bigram)


def test_vocabulary_override_and_refusals(tmp_path: Path) -> None:
    small = count_train(write_dataset(tmp_path / "a", [("train", [0, 1, 2, 1])]), 3)
    assert small.unigram.tolist() == [1, 2, 1]
    assert small.bigram.tolist() == [[0, 1, 0], [0, 0, 1], [0, 1, 0]]
    with pytest.raises(ValueError, match="outside the vocabulary"):
        count_train(tmp_path / "a", 2)
    root = write_dataset(tmp_path / "b", [("train", [0, 1])])
    lines = (root / "manifest.jsonl").read_text().replace('"length": 2', '"length": 9')
    (root / "manifest.jsonl").write_text(lines)
    with pytest.raises(ValueError, match="manifest puts"):
        count_train(root)


def test_nlls_equal_a_direct_computation(tiny: Path) -> None:
    counts = count_train(tiny)
    uni, bi = direct_counts(PIECES)
    windows = np.array([[1, 2, 3, 1, 2], [387, 1, 5, 5, 0], [2, 2, 2, 3, 387]], np.int64)
    k1, k2 = 0.5, 0.1
    n = sum(uni.values())
    rows: dict[int, int] = {}
    for (a, _), c in bi.items():
        rows[a] = rows.get(a, 0) + c
    want_uni, want_bi, count = 0.0, 0.0, 0
    for row in windows.tolist():
        for prev, nxt in zip(row, row[1:], strict=False):
            want_uni -= math.log((uni.get(nxt, 0) + k1) / (n + k1 * V))
            want_bi -= math.log((bi.get((prev, nxt), 0) + k2) / (rows.get(prev, 0) + k2 * V))
            count += 1
    assert unigram_nll(counts, windows, k1) == pytest.approx(want_uni / count, rel=1e-12)
    assert bigram_nll(counts, windows, k2) == pytest.approx(want_bi / count, rel=1e-12)
    # The first column is context only: the unigram never scores it.
    changed = windows.copy()
    changed[:, 0] = 9
    assert unigram_nll(counts, changed, k1) == pytest.approx(want_uni / count, rel=1e-12)


def test_huge_k_is_the_uniform_distribution(tiny: Path) -> None:
    counts = count_train(tiny)
    windows = np.array([[1, 2, 3, 387], [5, 0, 0, 1]])
    assert unigram_nll(counts, windows, k=1e12) == pytest.approx(math.log(V), rel=1e-9)
    assert bigram_nll(counts, windows, k=1e12) == pytest.approx(math.log(V), rel=1e-9)


def test_probabilities_sum_to_one(chorales: Path) -> None:
    counts = count_train(chorales)
    for k in (1e-3, 0.1, 1.0):
        assert unigram_probs(counts, k).sum() == pytest.approx(1.0, abs=1e-12)
        assert np.allclose(bigram_probs(counts, k).sum(axis=1), 1.0, rtol=0, atol=1e-12)
    assert (bigram_probs(counts, 0.1) > 0).all()


def test_bigram_beats_unigram_on_real_chorales(chorales: Path) -> None:
    train = TokenWindows(chorales, "train", window=64, batch_size=16, seed=3)
    windows = np.concatenate([train.batch(i) for i in range(4)])
    result = baselines(chorales, windows)
    assert result["bigram_nll"] < result["unigram_nll"] < math.log(V)
    assert result["unigram_ppl"] == pytest.approx(math.exp(result["unigram_nll"]))
    assert result["bigram_ppl"] == pytest.approx(math.exp(result["bigram_nll"]))
    assert result["eval_targets"] == 64 * 64
    assert result["train_tokens"] == count_train(chorales).tokens > 0
    assert result["k_unigram"] == 1.0 and result["k_bigram"] == 0.1
    again = json.loads(json.dumps(result))
    assert again == result
    assert all(type(v) in (int, float) for v in result.values())


def test_bad_arguments_are_refused(tiny: Path) -> None:
    counts = count_train(tiny)
    good = np.array([[1, 2, 3]])
    with pytest.raises(ValueError, match="smoothing"):
        unigram_nll(counts, good, k=0.0)
    with pytest.raises(ValueError, match="shape"):
        bigram_nll(counts, np.array([1, 2, 3]))
    with pytest.raises(ValueError, match="shape"):
        bigram_nll(counts, np.array([[1], [2]]))
    with pytest.raises(ValueError, match="outside the vocabulary"):
        unigram_nll(counts, np.array([[1, V]]))


def test_the_interpolated_trigram_is_a_distribution_and_learns_what_a_bigram_cannot():
    from neuralband.training.baselines import Trigram

    # After (1, 2) comes 3 and after (0, 2) comes 4: only two tokens back tell them apart.
    pieces = [np.array([1, 2, 3, 0, 2, 4] * 50, np.int64), np.array([0, 2, 4, 1, 2, 3] * 50)]
    tri = Trigram.fit(pieces, vocab=6)
    bigram_like = tri.nll(pieces, (0, 1, 0))
    mixed = tri.nll(pieces, (0.8, 0.19, 0.01))
    assert mixed < bigram_like / 3  # the bigram guesses 3 or 4 after every 2
    # Every context's probabilities sum to 1, seen or unseen.
    V = 6
    for a, b in ((1, 2), (5, 5)):
        total = sum(np.exp(-tri.nll([np.array([a, b, c])], (0.8, 0.19, 0.01)))
                    for c in range(V))
        assert total == pytest.approx(1.0, abs=1e-9)
    # The bigram alone is the add-0.1 bigram of the same counts.
    p = bigram_probs(tri.counts, 0.1)
    want = -np.mean([np.log(p[b, c]) for piece in pieces
                     for b, c in zip(piece[1:-1], piece[2:], strict=True)])
    assert bigram_like == pytest.approx(want, rel=1e-9)
    weights, score = tri.tune(pieces)
    assert score <= mixed + 1e-9 and sum(weights) == pytest.approx(1.0)
