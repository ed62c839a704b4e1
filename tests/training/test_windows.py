"""Training windows: reproducible batches from one piece each, augmentation, refusing datasets."""

from __future__ import annotations

import json
from itertools import islice
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neuralband.encoders.performance import (
    NOTE_OFF,
    NOTE_ON,
    TIME_SHIFT,
    VELOCITY,
    VOCAB_SIZE,
    EncoderSettings,
    encode,
)
from neuralband.encoders.schemes import EventScheme, VoicedScheme
from neuralband.training.windows import (
    DatasetMismatch,
    MixedWindows,
    TokenWindows,
    read_dataset,
    read_manifest,
    stretch_tokens,
    transpose_tokens,
)
from tests.helpers import pretty

S = TIME_SHIFT - 1  # S + n is TIME_SHIFT(n steps)
MAX = S + 100  # TIME_SHIFT(100), a full shift
DEFAULT = EncoderSettings()
WINDOW = 64


# --- Building datasets by hand -------------------------------------------------------------------

def write_dataset(root: Path, pieces: list[tuple[str, np.ndarray]],
                  encoder: EncoderSettings = DEFAULT, version: int = 1) -> Path:
    """A dataset folder as training.dataset writes it: pieces alternate between two shards."""
    (root / "shards").mkdir(parents=True)
    shards: list[list[np.ndarray]] = [[], []]
    lines = []
    for i, (split, tokens) in enumerate(pieces):
        shard = shards[i % 2]
        offset = sum(len(t) for t in shard)
        shard.append(np.asarray(tokens, np.uint16))
        lines.append(json.dumps({
            "source": f"piece{i}.mid", "sha256": f"{i:064x}", "split": split,
            "shard": f"{i % 2:05d}.npy", "offset": offset, "length": len(tokens),
            "duration_s": 1.0, "notes": 1}))
    for n, shard in enumerate(shards):
        np.save(root / "shards" / f"{n:05d}.npy",
                np.concatenate(shard) if shard else np.zeros(0, np.uint16))
    (root / "manifest.jsonl").write_text("\n".join(lines) + "\n")
    (root / "settings.json").write_text(json.dumps({
        "format": "neuralband-dataset", "version": version, "encoder": encoder.to_dict(),
        "splits": {"train": 0.9, "valid": 0.05, "test": 0.05}}))
    return root


def performance(seed: int, n_notes: int, low: int, high: int) -> np.ndarray:
    """Encoded random playing in pitches low..high: chords, varied velocities, gaps up to 3 s."""
    rng = np.random.default_rng(seed)
    notes, t = [], 0.0
    for _ in range(n_notes):
        t += float(rng.choice([0.0, 0.05, 0.25, 0.6, 1.7, 3.0]))
        length = float(rng.uniform(0.02, 2.5))
        notes.append((int(rng.integers(low, high + 1)), int(rng.integers(1, 128)), t, t + length))
    return encode(pretty(notes))


# Pitch ranges per split never overlap, so a window tells which split it came from.
TRAIN = [performance(i, 60, 20, 90) for i in range(5)] + [
    performance(10, 60, 0, 6), performance(11, 60, 121, 127)]  # near the keyboard's edges
SHORT = performance(12, 3, 20, 90)  # fewer than WINDOW + 1 tokens
VALID = [performance(20 + i, 60, 100, 110) for i in range(2)]
TEST = [performance(30, 60, 10, 15)]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    pieces = ([("train", p) for p in TRAIN[:3]] + [("valid", VALID[0]), ("train", SHORT)]
              + [("train", p) for p in TRAIN[3:]] + [("valid", VALID[1]), ("test", TEST[0])])
    return write_dataset(tmp_path_factory.mktemp("data") / "ds", pieces)


def find(row: np.ndarray, pieces: list[np.ndarray]) -> tuple[int, int] | None:
    """(piece, start) of the first place `row` occurs contiguously in one piece, or None."""
    for i, piece in enumerate(pieces):
        if len(piece) < len(row):
            continue
        views = np.lib.stride_tricks.sliding_window_view(piece, len(row))
        hits = np.flatnonzero((views == row).all(axis=1))
        if hits.size:
            return i, int(hits[0])
    return None


def is_pitch(tokens: np.ndarray) -> np.ndarray:
    return tokens < TIME_SHIFT


def is_shift(tokens: np.ndarray) -> np.ndarray:
    return (tokens >= TIME_SHIFT) & (tokens < VELOCITY)


def test_the_fixture_is_realistic():
    assert all(len(p) > 3 * WINDOW for p in TRAIN + VALID + TEST)
    assert len(SHORT) < WINDOW + 1
    joined = np.concatenate(TRAIN)
    assert np.any((joined[:-1] == MAX) & is_shift(joined[1:]))  # multi-token shift runs
    assert np.any(joined >= VELOCITY)


# --- Batches ----------------------------------------------------------------------------------

def test_shape_dtype_and_reproducible(dataset):
    tw = TokenWindows(dataset, window=WINDOW, batch_size=8, seed=3)
    b = tw.batch(5)
    assert b.shape == (8, WINDOW + 1) and b.dtype == np.int64
    again = TokenWindows(dataset, window=WINDOW, batch_size=8, seed=3)
    assert np.array_equal(again.batch(5), b)  # a fresh loader, resumed at step 5
    assert np.array_equal(tw.batch(5), b)
    assert not np.array_equal(tw.batch(6), b)
    other_seed = TokenWindows(dataset, window=WINDOW, batch_size=8, seed=4)
    assert not np.array_equal(other_seed.batch(5), b)


def test_iteration_is_batch_by_step(dataset):
    tw = TokenWindows(dataset, window=WINDOW, batch_size=4, seed=1)
    first = list(islice(tw, 3))
    for step, b in enumerate(first):
        assert np.array_equal(b, tw.batch(step))
    resumed = list(islice(tw.batches(2), 2))
    assert np.array_equal(resumed[0], tw.batch(2)) and np.array_equal(resumed[1], tw.batch(3))


def test_every_window_is_a_slice_of_one_piece(dataset):
    tw = TokenWindows(dataset, window=WINDOW, batch_size=64, seed=0)
    found = set()
    for step in range(4):
        for row in tw.batch(step):
            where = find(row, TRAIN)
            assert where is not None, "a window that is no contiguous slice of a train piece"
            found.add(where[0])
    assert found == set(range(len(TRAIN)))  # every usable piece is drawn


@pytest.mark.parametrize(("split", "pieces", "others"), [
    ("train", TRAIN, VALID + TEST), ("valid", VALID, TRAIN + TEST), ("test", TEST, TRAIN + VALID)])
def test_split_selection_uses_only_that_split(dataset, split, pieces, others):
    tw = TokenWindows(dataset, split=split, window=WINDOW, batch_size=32, seed=7)
    assert tw.n_pieces == len(pieces)
    for row in tw.batch(0):
        assert find(row, pieces) is not None and find(row, others) is None


def test_short_pieces_are_skipped(dataset):
    tw = TokenWindows(dataset, window=WINDOW)
    assert (tw.n_pieces, tw.skipped) == (len(TRAIN), 1)
    assert tw.n_windows == sum(len(p) - WINDOW for p in TRAIN)


def test_pieces_chosen_in_proportion_to_their_starts(tmp_path):
    window = 8
    one = np.full(window + 1, NOTE_ON + 60)  # one start
    three = np.full(window + 3, NOTE_ON + 70)  # three starts
    ds = write_dataset(tmp_path / "ds", [("train", one), ("train", three)])
    tw = TokenWindows(ds, window=window, batch_size=1000, seed=0)
    rows = np.concatenate([tw.batch(s) for s in range(4)])
    share = np.mean(rows[:, 0] == NOTE_ON + 60)
    assert abs(share - 0.25) < 0.03


def test_too_short_dataset_raises(tmp_path):
    ds = write_dataset(tmp_path / "ds", [("train", SHORT), ("valid", VALID[0])])
    with pytest.raises(ValueError, match=rf"'train'.*{WINDOW}.*{len(SHORT)} tokens"):
        TokenWindows(ds, window=WINDOW)
    with pytest.raises(ValueError, match="'test'"):
        TokenWindows(ds, split="test", window=WINDOW)  # no pieces at all
    with pytest.raises(ValueError, match="unknown split"):
        TokenWindows(ds, split="training", window=WINDOW)


# --- Refusing datasets ------------------------------------------------------------------------

def test_settings_mismatch_raises(tmp_path, dataset):
    other = EncoderSettings(velocity_bins=16)
    with pytest.raises(DatasetMismatch, match="velocity_bins.: 32.*velocity_bins.: 16"):
        TokenWindows(dataset, window=WINDOW, settings=other)
    TokenWindows(dataset, window=WINDOW, settings=EncoderSettings())  # equal settings are fine
    built_other = write_dataset(tmp_path / "other", [("train", TRAIN[0])], encoder=other)
    with pytest.raises(DatasetMismatch):
        TokenWindows(built_other, window=WINDOW, settings=DEFAULT)
    assert read_dataset(built_other)[0] == EventScheme(other)


def test_mixed_windows_put_each_datasets_rows_in_their_place(tmp_path, dataset):
    # The mixed dataset's pieces lie in pitches no piece of the first one holds.
    other = write_dataset(tmp_path / "mixed", [("train", performance(40 + i, 60, 112, 120))
                                               for i in range(2)])
    own = TokenWindows(dataset, window=WINDOW, batch_size=6, seed=2)
    mixed = TokenWindows(other, window=WINDOW, batch_size=2, seed=9)
    both = MixedWindows(own, mixed)
    batch = both.batch(3)
    assert batch.shape == (8, WINDOW + 1) and both.batch_size == 8
    assert np.array_equal(batch[:6], own.batch(3)) and np.array_equal(batch[6:], mixed.batch(3))
    assert np.array_equal(MixedWindows(own, mixed).batch(3), batch)  # a function of the step
    other_encoding = write_dataset(tmp_path / "velocity16", [("train", TRAIN[0])],
                                   encoder=EncoderSettings(velocity_bins=16))
    with pytest.raises(DatasetMismatch, match="mix datasets of one encoding"):
        MixedWindows(own, TokenWindows(other_encoding, window=WINDOW, batch_size=2))


def test_unknown_format_or_version_raises(tmp_path):
    ds = write_dataset(tmp_path / "v3", [("train", TRAIN[0])], version=3)
    with pytest.raises(DatasetMismatch, match="version 3"):
        TokenWindows(ds, window=WINDOW)
    info = json.loads((ds / "settings.json").read_text())
    info.update(format="something-else", version=1)
    (ds / "settings.json").write_text(json.dumps(info))
    with pytest.raises(DatasetMismatch, match="something-else"):
        read_dataset(ds)
    assert issubclass(DatasetMismatch, ValueError)


def test_readers(dataset):
    scheme, info = read_dataset(dataset / "settings.json")  # a version 1 dataset, as before
    assert scheme == EventScheme(DEFAULT) and info["splits"]["train"] == 0.9
    manifest = read_manifest(dataset)
    assert len(manifest) == len(TRAIN) + len(VALID) + len(TEST) + 1
    assert {e["split"] for e in manifest} == {"train", "valid", "test"}


def test_shards_are_memory_mapped_and_lazy(dataset):
    tw = TokenWindows(dataset, window=WINDOW, batch_size=16)
    assert tw._shards == {}  # nothing opened until a batch needs it
    tw.batch(0)
    shard = tw.shard("00000.npy")
    assert isinstance(shard, np.memmap) and shard.dtype == np.uint16
    assert tw.shard("00000.npy") is shard


# --- Augmentation in batches ------------------------------------------------------------------

@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32), n=st.integers(0, 12), stretch=st.sampled_from([0.0, 0.05, 0.3]))
def test_augmented_tokens_stay_in_the_vocabulary(dataset, seed, n, stretch):
    tw = TokenWindows(dataset, window=WINDOW, batch_size=16, seed=seed, transpose=n,
                      stretch=stretch)
    b = tw.batch(seed % 1000)
    assert b.shape == (16, WINDOW + 1) and b.dtype == np.int64
    assert b.min() >= 0 and b.max() < VOCAB_SIZE


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**32), n=st.integers(1, 12))
def test_transposition_shifts_every_pitch_of_a_window_alike(dataset, seed, n):
    plain = TokenWindows(dataset, window=WINDOW, batch_size=16, seed=seed).batch(0)
    moved = TokenWindows(dataset, window=WINDOW, batch_size=16, seed=seed, transpose=n).batch(0)
    for src, row in zip(plain, moved, strict=True):
        pitch = is_pitch(src)
        assert np.array_equal(src[~pitch], row[~pitch])
        assert np.array_equal(is_pitch(row), pitch)  # NOTE_ON stays NOTE_ON, NOTE_OFF stays
        assert np.array_equal(src >= NOTE_OFF, row >= NOTE_OFF)
        k = set((row[pitch] - src[pitch]).tolist())
        assert len(k) == 1 and abs(k.pop()) <= n


def test_transposition_falls_back_to_none_at_the_edges(tmp_path):
    piece = np.tile([NOTE_ON + 0, NOTE_ON + 127, S + 5, NOTE_OFF + 0, NOTE_OFF + 127], 10)
    ds = write_dataset(tmp_path / "ds", [("train", piece)])
    plain = TokenWindows(ds, window=8, batch_size=32).batch(0)
    moved = TokenWindows(ds, window=8, batch_size=32, transpose=6).batch(0)
    assert np.array_equal(plain, moved)


def gaps(tokens: np.ndarray) -> np.ndarray:
    """Steps of TIME_SHIFT before each non-shift token (0 where there is none)."""
    steps = np.where(is_shift(tokens), tokens - S, 0)
    before = np.cumsum(steps)[~is_shift(tokens)] - steps[~is_shift(tokens)]
    return np.diff(before, prepend=0)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**32), stretch=st.sampled_from([0.05, 0.2, 0.5]))
def test_stretching_keeps_the_events_and_rescales_time(dataset, seed, stretch):
    plain = TokenWindows(dataset, window=WINDOW, batch_size=16, seed=seed).batch(0)
    warped = TokenWindows(dataset, window=WINDOW, batch_size=16, seed=seed,
                          stretch=stretch).batch(0)
    for src, row in zip(plain, warped, strict=True):
        piece, start = find(src, TRAIN)  # the same window start, unstretched
        source = TRAIN[piece][start:]
        events = source[~is_shift(source)]
        row_events = row[~is_shift(row)]
        assert np.array_equal(row_events, events[:len(row_events)])  # same events, same order
        # Each event's time is its old time times one f in [1 - s, 1 + s], within a step (the
        # ends of the shift runs are rounded, not their lengths, so no error builds up; half a
        # step, or one after a one-step run squeezed to nothing was kept at one).
        old, new = gaps(source)[:len(row_events)], gaps(row)
        assert np.array_equal(old > 0, new > 0)
        t_old, t_new = np.cumsum(old), np.cumsum(new)
        moved = t_old > 0
        lo = ((t_new[moved] - 1.0) / t_old[moved]).max(initial=1 - stretch)
        hi = ((t_new[moved] + 1.0) / t_old[moved]).min(initial=1 + stretch)
        assert lo <= hi + 1e-9
        assert lo <= 1 + stretch + 1e-9 and hi >= 1 - stretch - 1e-9


def test_stretching_is_off_by_default_and_identity_at_zero(dataset):
    a = TokenWindows(dataset, window=WINDOW, batch_size=8, seed=2).batch(1)
    b = TokenWindows(dataset, window=WINDOW, batch_size=8, seed=2, stretch=0.0).batch(1)
    assert np.array_equal(a, b)


# --- transpose_tokens and stretch_tokens ---------------------------------------------------------

def test_transpose_tokens_exact():
    tokens = np.array([VELOCITY + 9, NOTE_ON + 60, S + 30, NOTE_OFF + 60, MAX, NOTE_ON + 64])
    up = transpose_tokens(tokens, 2, DEFAULT)
    assert up.tolist() == [VELOCITY + 9, NOTE_ON + 62, S + 30, NOTE_OFF + 62, MAX, NOTE_ON + 66]
    down = transpose_tokens(tokens, -60, DEFAULT)
    assert down.tolist() == [VELOCITY + 9, NOTE_ON + 0, S + 30, NOTE_OFF + 0, MAX, NOTE_ON + 4]
    assert transpose_tokens(tokens, -61, DEFAULT) is None  # NOTE_ON 60 would be -1
    assert transpose_tokens(tokens, 64, DEFAULT) is None  # NOTE_ON 64 would be 128
    assert transpose_tokens(tokens, 63, DEFAULT)[-1] == NOTE_ON + 127
    assert np.array_equal(transpose_tokens(tokens, 0, DEFAULT), tokens)
    assert tokens[1] == NOTE_ON + 60  # input untouched


def test_transpose_tokens_keeps_dtype_of_shard_tokens():
    tokens = np.array([NOTE_ON + 60, NOTE_OFF + 60], np.uint16)
    down = transpose_tokens(tokens, -5, DEFAULT)
    assert down.dtype == np.uint16 and down.tolist() == [NOTE_ON + 55, NOTE_OFF + 55]
    assert transpose_tokens(np.array([], np.int64), 3, DEFAULT).size == 0


@pytest.mark.parametrize(("tokens", "factor", "expected"), [
    ([NOTE_ON + 60, S + 75, S + 75, NOTE_OFF + 60], 1.0,
     [NOTE_ON + 60, MAX, S + 50, NOTE_OFF + 60]),  # 150 steps -> [355, 305]
    ([S + 50, MAX], 1.0, [MAX, S + 50]),  # re-split as the encoder does
    ([S + 100], 1.5, [MAX, S + 50]),
    ([MAX, MAX], 1.0, [MAX, MAX]),
    ([NOTE_ON + 1, S + 1, NOTE_OFF + 1], 0.4, [NOTE_ON + 1, S + 1, NOTE_OFF + 1]),  # at least 1
    ([S + 3], 1.5, [S + 5]),  # 4.5 rounds half up
    ([S + 10, VELOCITY + 3, S + 10], 0.5, [S + 5, VELOCITY + 3, S + 5]),  # runs split by events
    ([NOTE_ON + 60, VELOCITY], 2.0, [NOTE_ON + 60, VELOCITY]),  # no shifts
    ([], 2.0, []),
])
def test_stretch_tokens_cases(tokens, factor, expected):
    assert stretch_tokens(np.array(tokens, np.int64), factor, DEFAULT).tolist() == expected


def test_stretch_tokens_identity_on_encoded_pieces():
    for piece in TRAIN:
        assert np.array_equal(stretch_tokens(piece, 1.0, DEFAULT), piece)
        assert np.array_equal(stretch_tokens(piece[7:200], 1.0, DEFAULT), piece[7:200])


def shift_runs(tokens: np.ndarray) -> list[list[int]]:
    """The maximal runs of TIME_SHIFT tokens, as lists of step counts."""
    runs: list[list[int]] = []
    previous = False
    for tok in tokens.tolist():
        shift = TIME_SHIFT <= tok < VELOCITY
        if shift:
            if not previous:
                runs.append([])
            runs[-1].append(tok - S)
        previous = shift
    return runs


@settings(max_examples=200, deadline=None)
@given(tokens=st.lists(st.integers(0, VOCAB_SIZE - 1), max_size=60),
       factor=st.floats(0.5, 1.5))
def test_stretch_tokens_scales_each_run(tokens, factor):
    tokens = np.array(tokens, np.int64)
    out = stretch_tokens(tokens, factor, DEFAULT)
    assert np.array_equal(out[~is_shift(out)], tokens[~is_shift(tokens)])
    before, after = shift_runs(tokens), shift_runs(out)
    assert len(before) == len(after)
    kept = 0  # steps added to keep squeezed runs at one step, not yet taken back
    old_end = new_end = 0
    for old, new in zip(before, after, strict=True):
        assert all(step == 100 for step in new[:-1])  # full shifts, then the remainder
        assert sum(new) >= 1
        old_end, new_end = old_end + sum(old), new_end + sum(new)
        exact = old_end * factor
        # Each run ends where its end's scaled time rounds to, but for the steps kept.
        kept = max(0, new_end - int(exact + 0.5))
        assert abs(new_end - kept - exact) <= 0.5
        assert kept <= 1 or sum(new) == 1


def test_stretch_tokens_keeps_the_beat_over_a_long_piece():
    """Rounding each run's length would walk the events off their scaled times; rounding the
    ends keeps the thousandth event within half a step of where the stretch puts it."""
    runs = np.random.default_rng(0).integers(1, 40, size=1000)
    tokens = np.ravel(np.column_stack([S + runs, np.full(1000, NOTE_ON + 60)]))
    out = stretch_tokens(tokens, 1.037, DEFAULT)
    ends = np.cumsum([sum(r) for r in shift_runs(out)])
    assert np.max(np.abs(ends - np.cumsum(runs) * 1.037)) <= 0.5


# --- The band coming in mid-window (voice-packed datasets) ----------------------------------------

@pytest.fixture(scope="module")
def duet_dataset(tmp_path_factory) -> Path:
    """Voice-packed pieces: a lead in 60..84 over a band in 30..55."""
    from neuralband.encoders.voices import VoiceSettings, merge

    scheme = VoiceSettings(2)
    pieces = [("train", merge([performance(40 + i, 80, 60, 84), performance(50 + i, 120, 30, 55)],
                              scheme)) for i in range(4)]
    root = write_dataset(tmp_path_factory.mktemp("duet") / "ds", pieces)
    info = json.loads((root / "settings.json").read_text())
    info["voices"] = scheme.to_dict()
    (root / "settings.json").write_text(json.dumps(info))
    return root


def test_the_band_comes_in_mid_window_in_the_asked_share_of_windows(duet_dataset):
    """With --band-entry 0.5 about half the windows open with the lead alone; the others and
    every window of a run without it are the plain windows, batch for batch."""
    from neuralband.encoders.voices import VoiceSettings

    scheme = VoiceSettings(2)
    plain = TokenWindows(duet_dataset, window=WINDOW, batch_size=64, seed=3)
    entering = TokenWindows(duet_dataset, window=WINDOW, batch_size=64, seed=3, band_entry=0.5)
    assert np.array_equal(plain.batch(0), TokenWindows(duet_dataset, window=WINDOW, batch_size=64,
                                                       seed=3, band_entry=0.0).batch(0))
    batch = entering.batch(0)
    assert np.array_equal(batch, entering.batch(0))  # still a function of (seed, step)
    assert batch.shape == (64, WINDOW + 1)
    voice, base = scheme.unpack(batch)
    band = voice > 0
    first_band = np.where(band.any(axis=1), band.argmax(axis=1), WINDOW + 1)
    plain_first = (scheme.unpack(plain.batch(0))[0] > 0).argmax(axis=1)
    late = first_band > plain_first + 4
    assert 0.3 < late.mean() < 0.7, late.mean()
    for row in np.flatnonzero(late):  # the band's first event is not a stray NOTE_OFF
        assert not 128 <= base[row, first_band[row]] < 256


def test_the_band_entry_needs_a_band(dataset):
    with pytest.raises(DatasetMismatch, match="voice-packed"):
        TokenWindows(dataset, window=WINDOW, band_entry=0.5)


def test_arrangement_density_is_the_whole_band_s_pace_under_a_lead_this_busy(tmp_path):
    """A lead at 1 note/s over a band at 4 notes/s, then a lead at 3 notes/s over a band at 8:
    at the lead's notes the table says 5 notes/s of everything under the slow lead and 11
    under the busy one; the bins nothing falls in take the median of every moment."""
    import pretty_midi

    from neuralband.encoders.voices import VoiceSettings, encode_voices
    from neuralband.training.windows import LEAD_DENSITY_EDGES, arrangement_density

    voices = VoiceSettings(2, lead="track:MELODY")
    pieces = []
    for lead_rate, band_rate in ((1, 4), (3, 8)):
        pm = pretty_midi.PrettyMIDI()
        for name, rate, pitch in (("MELODY", lead_rate, 72), ("PIANO", band_rate, 48)):
            inst = pretty_midi.Instrument(0, name=name)
            inst.notes = [pretty_midi.Note(80, pitch, k / rate, k / rate + 0.5 / rate)
                          for k in range(120 * rate)]
            pm.instruments.append(inst)
        pieces.append(("train", encode_voices(pm, voices)))
    ds = write_dataset(tmp_path / "ds", pieces)
    table = arrangement_density(ds, VoicedScheme(voices), window_s=4.0)
    assert table["lead_edges"] == list(LEAD_DENSITY_EDGES)
    slow = int(np.searchsorted(LEAD_DENSITY_EDGES, 1.0, side="right"))
    busy = int(np.searchsorted(LEAD_DENSITY_EDGES, 3.0, side="right"))
    # the notes after the lead's own in the next 4 s: 4 s of both parts, less that lead note
    assert table["density"][slow] == pytest.approx(5.0, abs=0.3)
    assert table["density"][busy] == pytest.approx(11.0, abs=0.3)
    others = [d for b, d in enumerate(table["density"]) if b not in (slow, busy)]
    assert len(set(others)) == 1 and 5.0 < others[0] < 11.0
    assert arrangement_density(ds, VoicedScheme(voices), 4.0, split="valid") == {}
