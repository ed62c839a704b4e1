"""How well a model predicts real music: negative log-likelihood per event, in nats, on MIDI files.

Each file is encoded with the model's own encoder settings (voice-packed for a duet model) and
run through the numpy step runtime from a fresh state. As in training, every event after the
first is predicted from those before it, so a file of N events scores N - 1 predictions. Files
are run B at a time in one batched stepper, the shorter ones padded (their padding is not scored).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from neuralband.encoders.errors import MidiError
from neuralband.loaded import LoadedModel, loaded
from neuralband.modelfile import ModelInfo
from neuralband.runtime import Stepper


@dataclass(frozen=True)
class FileScore:
    """One file's score: its events, the predictions scored, and their summed NLL (nats)."""

    path: str
    events: int
    total_nll: float

    @property
    def predicted(self) -> int:
        return max(self.events - 1, 0)

    @property
    def nll(self) -> float:
        """Mean NLL per predicted event (nats); NaN with nothing predicted."""
        return self.total_nll / self.predicted if self.predicted else float("nan")


def encode_for(path: str | os.PathLike, info: ModelInfo) -> np.ndarray:
    """A file as the model's tokens, by its scheme: a MIDI file's events (voice-packed for a
    duet model), an ABC file's tunes one after another (folk), a text's bytes."""
    scheme = info.scheme
    try:
        data = Path(path).read_bytes()
        pieces = scheme.pieces(str(path), data)
    except (OSError, ValueError) as err:
        raise MidiError(str(path), getattr(err, "strerror", None) or str(err)) from err
    return np.concatenate([scheme.encode(p, f"{path}#{p.ref}" if p.ref else str(path))
                           for p in pieces])


def stream_nll(stepper: Stepper, streams: Sequence[np.ndarray],
               controls: Sequence[np.ndarray] | None = None) -> np.ndarray:
    """Summed NLL (nats) of each stream's events after its first, from a fresh state; the
    stepper's batch must be ``len(streams)``. Logits are softmaxed in float64. A conditioned
    model reads ``controls`` (per stream, one row per token), else runs free."""
    if stepper.batch != len(streams):
        raise ValueError(f"a stepper of batch {stepper.batch} for {len(streams)} streams")
    stepper.reset()
    lengths = np.array([len(s) for s in streams])
    padded = np.zeros((len(streams), int(lengths.max(initial=0))), np.int64)
    for b, s in enumerate(streams):
        padded[b, :len(s)] = s
    ctrl = None
    if controls is not None:
        ctrl = np.zeros((*padded.shape, stepper.config.controls), np.float32)
        for b, c in enumerate(controls):
            ctrl[b, :len(c)] = c
    elif stepper.config.controls:
        stepper.set_controls(np.zeros(stepper.config.controls))
    rows = np.arange(len(streams))
    total = np.zeros(len(streams))
    for t in range(1, padded.shape[1]):
        if ctrl is not None:
            stepper.set_controls(ctrl[:, t - 1])
        stepper.feed(padded[:, t - 1])
        logits = stepper.logits().astype(np.float64)
        peak = logits.max(axis=1)
        lse = peak + np.log(np.exp(logits - peak[:, None]).sum(axis=1))
        nll = lse - logits[rows, padded[:, t]]
        total += np.where(t < lengths, nll, 0.0)
    return total


def score_files(model: LoadedModel | str | os.PathLike, paths: Sequence[str | os.PathLike],
                batch: int = 8, controls: bool = False) -> tuple[list[FileScore], list[str]]:
    """Score every file with the model; returns the scores and "name: reason" for each file
    that could not be read or has no events to predict. ModelFileError for a bad model.

    A conditioned model runs free (no controls), or with ``controls`` on each file's own key and
    density (`encoders.controls`, computed from its notes: what a musician would have set)."""
    model = loaded(model)
    info = model.info
    if controls and info.controls is None:
        raise ValueError(f"{model.name} reads no controls (trained without --controls)")
    if info.scheme.plays == "clock":
        raise ValueError(f"{model.name} is a grid model: score reads event models (default, duet, "
                         "...), whose input and output are the same tokens")
    streams, names, failed = [], [], []
    for path in paths:
        try:
            tokens = encode_for(path, info)
        except MidiError as err:
            failed.append(str(err))
            continue
        if len(tokens) < 2:
            failed.append(f"{path}: no events to predict ({len(tokens)} event(s))")
            continue
        streams.append(tokens)
        names.append(str(path))
    scores: list[FileScore | None] = [None] * len(streams)
    # Similar lengths together, so that little of a batch is padding.
    order = sorted(range(len(streams)), key=lambda i: len(streams[i]))
    stepper = None
    for k in range(0, len(order), batch):
        chunk = order[k:k + batch]
        if stepper is None or stepper.batch != len(chunk):
            stepper = model.stepper(len(chunk))
        ctrl = ([info.scheme.controls(streams[i], info.controls) for i in chunk]
                if controls else None)
        totals = stream_nll(stepper, [streams[i] for i in chunk], ctrl)
        for i, total in zip(chunk, totals, strict=True):
            scores[i] = FileScore(names[i], len(streams[i]), float(total))
    return scores, failed


def mean_nll(scores: Sequence[FileScore]) -> float:
    """The NLL per event over all files together (weighted by the predictions each scores)."""
    predicted = sum(s.predicted for s in scores)
    return sum(s.total_nll for s in scores) / predicted if predicted else float("nan")
