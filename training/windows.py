"""Training windows from a token dataset: reproducible batches, augmented at sampling time.

A dataset folder (written by `training.dataset`) holds ``settings.json`` (the encoder settings the
tokens were made with), ``manifest.jsonl`` (one line per encoded piece: split, shard, offset,
length) and ``shards/*.npy`` (1-D uint16 token arrays). `TokenWindows` draws windows of
``window + 1`` consecutive tokens from single pieces; batch ``step`` depends only on
``(seed, step)``, so training resumes at any step with the same batches. Numpy only: the training
loop wraps the arrays with ``torch.from_numpy``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from itertools import islice
from pathlib import Path

import numpy as np

from neuralband.encoders.augment import stretch_tokens, transpose_tokens  # noqa: F401 - this module's too
from neuralband.encoders.beats import Beats, beat_features, note_onsets, track_beats
from neuralband.encoders.controls import ControlSettings, drop_controls
from neuralband.encoders.performance import EncoderSettings
from neuralband.encoders.schemes import EventScheme, TokenScheme, VoicedScheme
from neuralband.encoders.voices import band_enters, event_steps
from neuralband.training.dataset import FORMAT as DATASET_FORMAT
from neuralband.training.dataset import VERSION as DATASET_VERSION
from neuralband.training.dataset import stored_scheme

CONTROL_LOOKAHEAD = 1024  # tokens read past a window to compute its last controls
TRANSPOSE_TRIES = 8  # draws of a transposition before a window is left untransposed
STRETCH_MARGIN = 8  # extra source tokens read beyond (window + 1) * (1 + stretch)
_MANIFEST_KEYS = ("split", "shard", "offset", "length")


class DatasetMismatch(ValueError):
    """The dataset cannot be used as asked: another format, version or encoder settings."""


def read_dataset(path: str | Path) -> tuple[TokenScheme, dict]:
    """A dataset folder (or its settings.json) -> (its token scheme, the whole settings dict).

    Raises DatasetMismatch when the file is not a dataset of a format and version we read.
    """
    path = Path(path)
    if not path.exists():
        raise DatasetMismatch(f"{path}: no such dataset folder (make one with `neuralband "
                              f"encode MIDI_FOLDER -o {path}`)")
    if path.is_dir():
        if not (path / "settings.json").is_file():
            music = next((p for p in path.rglob("*") if p.suffix.lower() in
                          (".mid", ".midi", ".kar", ".abc")), None)
            if music is not None:  # a folder of music: encode it into a new dataset folder
                target = path.parent / f"{path.name}-dataset"
                raise DatasetMismatch(f"{path} holds music, not a dataset: encode it first, "
                                      f"`neuralband encode {path} -o {target}`, then train on "
                                      f"{target}")
            raise DatasetMismatch(f"{path} is not a dataset: it has no settings.json (make one "
                                  f"with `neuralband encode MIDI_FOLDER -o {path}`)")
        path = path / "settings.json"
    try:
        info = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DatasetMismatch(f"{path}: not a readable dataset settings file ({e})") from e
    if not isinstance(info, dict) or info.get("format") != DATASET_FORMAT:
        found = info.get("format") if isinstance(info, dict) else type(info).__name__
        raise DatasetMismatch(f"{path}: format {found!r}, expected {DATASET_FORMAT!r}")
    if info.get("version") not in (1, DATASET_VERSION):
        raise DatasetMismatch(
            f"{path}: dataset version {info.get('version')!r}, "
            f"this code reads 1..{DATASET_VERSION}")
    try:
        return stored_scheme(info), info
    except (KeyError, TypeError, ValueError) as e:
        raise DatasetMismatch(f"{path}: unreadable token scheme: {e}") from e


def split_pieces(dataset_dir: str | Path, split: str) -> Iterator[np.ndarray]:
    """The int64 token arrays of every piece of one split, in manifest order."""
    root = Path(dataset_dir)
    shards: dict[str, np.ndarray] = {}
    for row in read_manifest(root):
        if row["split"] == split:
            if row["shard"] not in shards:
                shards[row["shard"]] = np.load(root / "shards" / row["shard"], mmap_mode="r")
            start = int(row["offset"])
            yield np.asarray(shards[row["shard"]][start:start + int(row["length"])], np.int64)


def voice_polyphony(dataset_dir: str | Path, scheme: VoicedScheme, split: str = "train",
                    limit: int = 500, quantile: float = 95.0) -> list[int]:
    """How many notes each voice holds at once in most pieces (the ``quantile`` over up to
    ``limit`` pieces of a split): the cap the band's grammar keeps when it plays, so that a voice
    the data plays one note at a time (a chorale's alto) is never left holding two."""
    from neuralband.encoders.voices import voice_polyphony as piece_polyphony

    per_piece = [piece_polyphony(tokens, scheme.voice_settings)
                 for tokens in islice(split_pieces(dataset_dir, split), limit)]
    if not per_piece:
        return []
    return [max(1, int(math.ceil(q))) for q in np.percentile(per_piece, quantile, axis=0)]


def vocab_size(dataset_dir: str | Path) -> int:
    """The number of token classes of a dataset: 388 by default, more when voice-packed, the
    input classes of a grid dataset (38,416 for 4 voices), 256 for text."""
    return read_dataset(dataset_dir)[0].input_classes


def model_shape(dataset_dir: str | Path) -> dict:
    """The `ModelConfig` sizes a dataset's tokens need: vocab_size, and where the scheme's
    inputs and outputs differ (a grid) out_size and fields (each embedded apart)."""
    scheme = read_dataset(dataset_dir)[0]
    out = scheme.output_classes
    return {"vocab_size": scheme.input_classes,
            "out_size": None if out == scheme.input_classes else out, "fields": scheme.fields}


def read_manifest(path: str | Path) -> list[dict]:
    """A dataset folder (or its manifest.jsonl) -> one dict per encoded piece, in file order."""
    path = Path(path)
    if path.is_dir():
        path = path / "manifest.jsonl"
    entries = []
    with path.open() as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{number}: not JSON: {e}") from e
            missing = [k for k in _MANIFEST_KEYS if not isinstance(entry, dict) or k not in entry]
            if missing:
                raise ValueError(f"{path}:{number}: manifest entry lacks {missing}")
            entries.append(entry)
    return entries


class TokenWindows:
    """Batches of (batch_size, window + 1) int64 token windows from one split of a dataset.

    Input is ``batch[:, :-1]``, target ``batch[:, 1:]`` (for a grid dataset, whose tokens are
    the model's input classes, the target is ``batch[:, 1:] % grid.output_classes``: the band's
    part of the next class). Each window is consecutive tokens of one
    piece; every (piece, start) pair is equally likely, so a piece is chosen in proportion to its
    number of starts (length - window) and the start is uniform. Pieces shorter than window + 1
    are skipped (counted in `skipped`). Shards are memory-mapped, so datasets larger than RAM work.

    Augmentation is drawn per window at sampling time:

    * ``transpose=N``: a shift k uniform in -N..N for all NOTE_ON/NOTE_OFF pitches. If a pitch
      would leave 0..127, k is redrawn (up to 8 draws), then the window is left untransposed, so
      windows near the keyboard's edges are never clipped or wrapped, only transposed less often.
    * ``stretch=s``: a time factor f uniform in [1 - s, 1 + s] (see `stretch_tokens`). A longer
      source span is read and cut to window + 1 tokens after stretching; the window's first and
      last shift runs may be cut mid-run (as unstretched windows are), which is fine for training.
      If the stretched span is still too short (near a piece's end), the window is unstretched.

    A grid dataset transposes every voice's new notes by k (pitch classes wrap, so every draw is
    used) and is never stretched: its steps are the grid's, so ``stretch`` is ignored.
    """

    def __init__(self, dataset_dir: str | Path, split: str = "train", window: int = 256,
                 batch_size: int = 64, seed: int = 0, transpose: int = 0, stretch: float = 0.0,
                 settings: EncoderSettings | None = None,
                 controls: ControlSettings | None = None, band_entry: float = 0.0) -> None:
        if window < 1 or batch_size < 1:
            raise ValueError(f"window and batch_size must be >= 1, got {window}, {batch_size}")
        if seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        if transpose < 0 or transpose > 127:
            raise ValueError(f"transpose must be in 0..127, got {transpose}")
        if not 0.0 <= stretch < 1.0:
            raise ValueError(f"stretch must be in [0, 1), got {stretch}")
        if not 0.0 <= band_entry <= 1.0:
            raise ValueError(f"band_entry must be in [0, 1], got {band_entry}")
        self.dataset_dir = Path(dataset_dir)
        self.split, self.window, self.batch_size, self.seed = split, window, batch_size, seed
        self.transpose, self.stretch = transpose, stretch
        self.controls, self.band_entry = controls, band_entry

        # The tokens must mean what the model's vocabulary means: refuse other encoder settings.
        self.scheme, self.info = read_dataset(self.dataset_dir)
        self.settings = self.scheme.settings
        # The voices, where the band enters mid-window (a voice-packed scheme's own).
        self.voice_settings = self.scheme.voice_settings if self.scheme.voiced else None
        if not self.scheme.stretchable:
            self.stretch = 0.0
        if band_entry and not self.scheme.voiced:
            raise DatasetMismatch(f"the band can only come in mid-window in a voice-packed "
                                  f"dataset; this one is {self.scheme.name}")
        if controls is not None and self.scheme.plays != "events":
            raise DatasetMismatch(f"key and density controls are computed from events; this "
                                  f"dataset is {self.scheme.name}")
        if settings is not None and settings != self.settings:
            raise DatasetMismatch(
                f"{self.dataset_dir} was encoded with {self.scheme.to_dict()}, "
                f"but training asks for {settings.to_dict()}")
        splits = self.info.get("splits")
        if isinstance(splits, dict) and split not in splits:
            raise ValueError(f"unknown split {split!r}; this dataset has {sorted(splits)}")

        # Pieces of this split that hold at least one window, and the cumulative start counts.
        entries = [e for e in read_manifest(self.dataset_dir) if e["split"] == split]
        # A scheme whose pieces end in an end token (a tune's </s>) reads them as one stream: a
        # window may run past a piece's end into the next piece of the split (the one after it
        # in the manifest), so ends and starts are learnt as often as any token (cut off at the
        # end, a window of 96 sees a tune's </s> once in its length's worth of windows), a tune
        # shorter than a window is used too, and no window holds a tune twice to copy from.
        self.cyclic = self.scheme.end is not None
        shortest = 2 if self.cyclic else window + 1
        self.pieces = [e for e in entries if int(e["length"]) >= shortest]
        self.skipped = len(entries) - len(self.pieces)
        self.n_pieces = len(self.pieces)
        if not self.pieces:
            longest = max((int(e["length"]) for e in entries), default=0)
            need = f"a window of {window} (+1)" if not self.cyclic else f"{shortest}"
            raise ValueError(
                f"no piece in split {split!r} of {self.dataset_dir} is long enough for {need} "
                f"tokens: {len(entries)} pieces, the longest has {longest} tokens")
        self._offset = np.array([int(e["offset"]) for e in self.pieces], np.int64)
        self._length = np.array([int(e["length"]) for e in self.pieces], np.int64)
        self._cum_starts = np.cumsum(self._length if self.cyclic else self._length - window)
        self.n_windows = int(self._cum_starts[-1])  # distinct (piece, start) pairs
        self._shards: dict[str, np.ndarray] = {}
        self._beats: dict[int, Beats | None] = {}  # per usable piece, as found (`piece_beats`)
        self._steps: dict[int, np.ndarray] = {}  # per usable piece, the step after each token
        if controls is not None and controls.beat and self.cyclic:
            raise DatasetMismatch(f"beat controls follow one piece's time; the "
                                  f"{self.scheme.name} scheme runs its pieces together")

    def shard(self, name: str) -> np.ndarray:
        """The memory-mapped token array of shards/<name>, opened on first use and kept."""
        if name not in self._shards:
            path = self.dataset_dir / "shards" / name
            array = np.load(path, mmap_mode="r")
            if array.ndim != 1:
                raise ValueError(f"{path}: expected a 1-D token array, got shape {array.shape}")
            for e in self.pieces:
                if e["shard"] == name and int(e["offset"]) + int(e["length"]) > len(array):
                    raise ValueError(f"{path} has {len(array)} tokens; the manifest puts "
                                     f"{e.get('source', 'a piece')} at {e['offset']}+{e['length']}")
            self._shards[name] = array
        return self._shards[name]

    def piece_tokens(self, index: int, start: int, stop: int) -> np.ndarray:
        """Tokens start..stop of usable piece `index`, as int64 (clipped to the piece, or going
        on into the next pieces where its scheme ends pieces with an end token)."""
        length = int(self._length[index])
        offset = int(self._offset[index])
        array = self.shard(self.pieces[index]["shard"])
        if self.cyclic:
            parts, need = [], stop - start
            while need > 0:
                part = np.asarray(array[offset + start:offset + min(length, start + need)],
                                  dtype=np.int64)
                parts.append(part)
                need -= len(part)
                index = (index + 1) % self.n_pieces  # on into the next piece of the split
                offset, length, start = int(self._offset[index]), int(self._length[index]), 0
                array = self.shard(self.pieces[index]["shard"])
            return np.concatenate(parts)
        stop = min(stop, length)
        return np.asarray(array[offset + start:offset + stop], dtype=np.int64)

    def batch(self, step: int) -> np.ndarray:
        """Batch number `step`: (batch_size, window + 1) int64, a function of (seed, step) only."""
        rng, index, start = self._positions(step)
        out = np.empty((self.batch_size, self.window + 1), np.int64)
        for row, (i, s) in enumerate(zip(index.tolist(), start.tolist(), strict=True)):
            out[row] = self._window(rng, i, s)[0]
        return out

    def batch_with_controls(self, step: int, drop: float = 0.0
                            ) -> tuple[np.ndarray, np.ndarray]:
        """Batch `step` and its controls: tokens (batch_size, window + 1) int64 and
        (batch_size, window, controls.size) float32, the controls after each input token,
        computed from the augmented notes that follow it (`encoders.controls`). Each row's key
        and density are dropped ("no control") with probability ``drop``."""
        if self.controls is None:
            raise ValueError("these windows were made without control settings")
        rng, index, start = self._positions(step)
        size = self.window + 1
        out = np.empty((self.batch_size, size), np.int64)
        ctrl = np.empty((self.batch_size, self.window, self.controls.size), np.float32)
        for row, (i, s) in enumerate(zip(index.tolist(), start.tolist(), strict=True)):
            tokens, complete, factor = self._window(rng, i, s, extra=CONTROL_LOOKAHEAD)
            out[row] = tokens[:size]
            ctrl[row] = self.scheme.controls(tokens, self.controls, complete)[:self.window]
            if self.controls.beat:
                ctrl[row, :, self.controls.beat_start:] = self._beat_controls(
                    i, s, factor, tokens[:self.window])
        if drop > 0:
            drop_controls(ctrl, rng, drop, self.controls)
        return out, ctrl

    def piece_beats(self, index: int) -> Beats | None:
        """Usable piece `index`'s beats: the manifest's (annotations, tempo map or tracker, found
        when it was encoded), else tracked now from its tokens' notes; kept once found."""
        if index not in self._beats:
            entry = self.pieces[index].get("beats")
            beats = None
            if entry:
                try:
                    beats = Beats.from_dict(entry)
                except (KeyError, TypeError, ValueError):
                    beats = None
            if beats is None:
                from neuralband.encoders.performance import decode_notes

                base = self.scheme.base(self.piece_tokens(index, 0, int(self._length[index])))
                notes = np.asarray(decode_notes(base, self.settings), np.float64).reshape(-1, 4)
                onset, weight, bass = note_onsets(notes[:, 0] / self.settings.steps_per_second,
                                                  notes[:, 2], notes[:, 3])
                beats = track_beats(onset, weight, bass=bass)
            self._beats[index] = beats
        return self._beats[index]

    def piece_steps(self, index: int) -> np.ndarray:
        """The step (time) after each token of usable piece `index`, kept once computed."""
        if index not in self._steps:
            base = self.scheme.base(self.piece_tokens(index, 0, int(self._length[index])))
            self._steps[index] = event_steps(base, self.settings)[1].astype(np.int64)
        return self._steps[index]

    def _beat_controls(self, index: int, start: int, factor: float,
                       tokens: np.ndarray) -> np.ndarray:
        """The beat control after each of a window's tokens: the piece's beats, stretched as
        its notes were, at the time of each token (the window's start in the piece, stretched,
        plus its tokens' own steps)."""
        beats = self.piece_beats(index)
        if beats is None:
            return np.zeros((len(tokens), self.controls.size - self.controls.beat_start),
                            np.float32)
        steps = self.piece_steps(index)
        before = int(steps[start - 1]) if start > 0 else 0  # the time at the window's start
        own = event_steps(self.scheme.base(tokens), self.settings)[1]
        seconds = (before * factor + own) / self.settings.steps_per_second
        return beat_features(seconds, beats.scaled(factor) if factor != 1.0 else beats)

    def _positions(self, step: int) -> tuple[np.random.Generator, np.ndarray, np.ndarray]:
        """The generator of batch `step` and its windows' (piece, start) pairs."""
        if step < 0:
            raise ValueError(f"step must be >= 0, got {step}")
        rng = np.random.default_rng([self.seed, step])
        # Positions first: the same (seed, step) picks the same windows whatever the augmentation.
        flat = rng.integers(self.n_windows, size=self.batch_size)
        index = np.searchsorted(self._cum_starts, flat, side="right")
        start = flat - np.concatenate([[0], self._cum_starts[:-1]])[index]
        return rng, index, start

    def batches(self, start: int = 0) -> Iterator[np.ndarray]:
        """batch(start), batch(start + 1), ... without end (resume training at `start`)."""
        step = start
        while True:
            yield self.batch(step)
            step += 1

    def __iter__(self) -> Iterator[np.ndarray]:
        return self.batches(0)

    def _window(self, rng: np.random.Generator, index: int, start: int, extra: int = 0
                ) -> tuple[np.ndarray, bool, float]:
        """One window of piece `index` at `start` (with up to ``extra`` tokens after it),
        stretched, transposed and the band brought in as configured, whether it reaches the
        piece's end, and the time factor it was stretched by. (The band coming in leaves its
        events out, never the time between them.)"""
        size = self.window + 1
        # Draw only what is configured, so runs without an augmentation keep their batches.
        entry = int(rng.integers(size)) if self.band_entry and \
            rng.random() < self.band_entry else None
        if entry is None:
            return self._moved(rng, index, start, size + extra)
        # Leaving the band's first events out shortens the window: read one more window's worth.
        tokens, complete, factor = self._moved(rng, index, start, 2 * size + extra)
        steps = event_steps(self.voice_settings.unpack(tokens)[1], self.settings)[1]
        entered = band_enters(tokens, self.voice_settings,
                              int(steps[min(entry, len(tokens) - 1)]))
        if len(entered) < size:  # near the piece's end: the window as it is
            return tokens[:size + extra], complete and len(tokens) <= size + extra, factor
        return entered[:size + extra], complete and len(entered) <= size + extra, factor

    def _moved(self, rng: np.random.Generator, index: int, start: int, need: int
               ) -> tuple[np.ndarray, bool, float]:
        """Up to ``need`` tokens of piece `index` from `start`, stretched then transposed as
        configured, whether they reach the piece's end, and the time factor applied."""
        length = int(self._length[index])
        complete = start + need >= length
        size = self.window + 1
        applied = 1.0
        if self.stretch > 0:
            factor = rng.uniform(1.0 - self.stretch, 1.0 + self.stretch)
            span = math.ceil(need * (1.0 + self.stretch)) + STRETCH_MARGIN
            stretched = self.scheme.stretch(self.piece_tokens(index, start, start + span), factor)
            if len(stretched) >= size:
                complete = start + span >= length and len(stretched) < need
                tokens, applied = stretched[:need], factor
            else:
                tokens = self.piece_tokens(index, start, start + need)
        else:
            tokens = self.piece_tokens(index, start, start + need)
        if self.transpose > 0:
            for _ in range(TRANSPOSE_TRIES):
                k = int(rng.integers(-self.transpose, self.transpose + 1))
                moved = self.scheme.transpose(tokens, k)
                if moved is not None:
                    return moved, complete, applied
        return tokens, complete, applied



class MixedWindows:
    """Batches drawn from two datasets of one scheme: each batch's first rows from ``own`` (the
    new material of a fine-tune), its last rows from ``mixed`` (material the model already
    knows), so that learning the new does not unlearn the old. The rows of each are
    ``own.batch_size`` and ``mixed.batch_size``; batch ``step`` is a function of the step alone,
    as each part's is."""

    def __init__(self, own: TokenWindows, mixed: TokenWindows) -> None:
        if own.window != mixed.window:
            raise ValueError(f"windows of {own.window} and {mixed.window} tokens cannot share a "
                             "batch")
        if (own.scheme.input_classes != mixed.scheme.input_classes
                or own.settings != mixed.settings):
            raise DatasetMismatch(f"{mixed.dataset_dir} holds other tokens "
                                  f"({mixed.scheme.to_dict()}) than {own.dataset_dir} "
                                  f"({own.scheme.to_dict()}): mix datasets of one encoding")
        self.own, self.mixed = own, mixed
        self.window, self.batch_size = own.window, own.batch_size + mixed.batch_size
        self.scheme, self.settings = own.scheme, own.settings
        self.voice_settings = own.voice_settings
        self.controls = own.controls

    def batch(self, step: int) -> np.ndarray:
        """Batch `step`: the own rows, then the mixed ones."""
        return np.concatenate([self.own.batch(step), self.mixed.batch(step)])

    def batch_with_controls(self, step: int, drop: float = 0.0
                            ) -> tuple[np.ndarray, np.ndarray]:
        """Batch `step` and its controls (as `TokenWindows.batch_with_controls`)."""
        (a, ca), (b, cb) = (self.own.batch_with_controls(step, drop),
                            self.mixed.batch_with_controls(step, drop))
        return np.concatenate([a, b]), np.concatenate([ca, cb])

def note_lengths(tokens: np.ndarray, settings: EncoderSettings) -> np.ndarray:
    """The length in seconds of every note of Performance tokens, as decoding plays them."""
    from neuralband.encoders.performance import decode_notes

    notes = decode_notes(tokens, settings)
    if not len(notes):
        return np.zeros(0)
    return np.array([end - start for start, end, _, _ in notes], np.float64) / \
        settings.steps_per_second


def note_length_quantile(dataset_dir: str | Path, scheme: EventScheme, split: str = "train",
                         limit: int = 300, quantile: float = 99.5) -> float:
    """The note length (seconds) that ``quantile`` percent of a split's notes stay within (over
    up to ``limit`` pieces): the longest note a model trained on them is let hold, so a note
    ends because the music ends it, and the cap only stops a model's rare slip."""
    lengths = []
    for tokens in islice(split_pieces(dataset_dir, split), limit):  # each voice's notes apart
        lengths.extend(note_lengths(stream, scheme.settings) for stream in scheme.streams(tokens))
    every = np.concatenate(lengths) if lengths else np.zeros(0)
    if not every.size:
        return 5.0
    return round(float(np.percentile(every, quantile)), 2)


def key_profiles(dataset_dir: str | Path, scheme: EventScheme, split: str = "train",
                 limit: int = 300) -> dict[str, list[float]]:
    """The mean pitch-class histogram of a split's pieces in each mode, rotated to a tonic of C
    (the key of each piece estimated from its notes): what "in Eb major" sounds like in this
    data, the histogram `generate --key` gives the model."""
    from neuralband.encoders.keys import estimate_key, pitch_class_histogram

    sums = {"major": np.zeros(12), "minor": np.zeros(12)}
    for tokens in islice(split_pieces(dataset_dir, split), limit):
        _, _, pitch = scheme.onsets(tokens)  # every voice's notes
        if not len(pitch):
            continue
        hist = pitch_class_histogram(pitch)
        tonic, mode = estimate_key(hist)
        sums[mode] += np.roll(hist, -tonic)
    return {mode: [round(float(x), 5) for x in (s / s.sum())] for mode, s in sums.items()
            if s.sum() > 0}


# The lead's notes per second (over its last 8 s, as `neuralband.steering` hears a player: its
# FOLLOW_DENSITY_S) binned at these edges: a slow tune, a sung line, a busy one.
LEAD_DENSITY_EDGES = (0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0)
MIN_WINDOWS = 50  # a bin with fewer moments takes the median over all of them


def arrangement_density(dataset_dir: str | Path, scheme: VoicedScheme, window_s: float,
                        split: str = "train", limit: int = 300,
                        lead_window_s: float = 8.0) -> dict[str, list[float]]:
    """How busy a voice-packed split's arrangements are under a lead this busy: at each lead
    NOTE_ON, the lead's notes per second over its last ``lead_window_s`` (as a duet band hears
    the player) against every voice's NOTE_ONs per second in the next ``window_s`` (the
    density control's count); the median per lead bin (``LEAD_DENSITY_EDGES``). A duet model
    told this plays as busily as the data's arrangements of such a tune; left free, an LSTM
    drifts busier."""
    sps = scheme.settings.steps_per_second
    lead_at, total = [], []
    for tokens in islice(split_pieces(dataset_dir, split), limit):
        steps, where, _ = scheme.onsets(tokens)
        on_steps = steps[where] / sps  # every voice's NOTE_ONs, in token order
        is_lead = scheme.parts()[0][np.asarray(tokens)[where]] == 0
        if is_lead.sum() < 2 or not len(on_steps):
            continue
        end = steps[-1] / sps
        lead = on_steps[is_lead]
        for k, i in enumerate(np.flatnonzero(is_lead)):
            t = on_steps[i]
            if t + window_s > end:
                break
            recent = lead[max(0, np.searchsorted(lead, t - lead_window_s, "right")):k + 1]
            if len(recent) < 2:
                continue
            span = max(float(recent[-1] - recent[0]), 1.0)
            lead_at.append((len(recent) - 1) / span)
            later = np.searchsorted(on_steps, t + window_s, "left") - (i + 1)
            total.append(later / window_s)
    if not total:
        return {}
    lead_at, total = np.asarray(lead_at), np.asarray(total)
    bins = np.searchsorted(np.asarray(LEAD_DENSITY_EDGES), lead_at, side="right")
    overall = float(np.median(total))
    density = [round(float(np.median(total[bins == b])), 2) if (bins == b).sum() >= MIN_WINDOWS
               else round(overall, 2) for b in range(len(LEAD_DENSITY_EDGES) + 1)]
    return {"lead_edges": list(LEAD_DENSITY_EDGES), "density": density}
