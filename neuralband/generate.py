"""Offline generation: continue a primer (or silence) for S seconds, K variations in one pass.

The K variations are K streams of one batched `Stepper`: one matrix product per layer per step
serves them all. Each stream has its own `NoteTracker` (the grammar) and the shared seeded
`Sampler`; when a stream has its S seconds it closes its open notes and stops, so no file ends
with a hanging note.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from encoders.performance import EncoderSettings
from neuralband.runtime import Stepper
from neuralband.sampling import NoteTracker, Rules, Sampler

# From silence the model is started with one event of "nothing happened yet".
SILENCE_START_STEPS = 10


@dataclass(frozen=True)
class Piece:
    """One generated variation: its tokens (primer included) and how they split."""

    tokens: np.ndarray
    primer_length: int
    seconds: float


def generate(model: str | os.PathLike, primer: np.ndarray | None, seconds: float,
             variations: int = 1, rules: Rules | None = None, seed: int | None = None,
             progress: Callable[[float], None] | None = None) -> list[Piece]:
    """Continue ``primer`` tokens (None: silence) by ``seconds`` of music, ``variations`` times."""
    if seconds <= 0 or variations < 1:
        raise ValueError("seconds and variations must be positive")
    rules = rules or Rules()
    stepper = Stepper.load(model, batch=variations)
    settings: EncoderSettings = stepper.info.encoder
    prefix = (np.asarray(primer, np.int64) if primer is not None and len(primer) else
              np.array([settings.time_shift + SILENCE_START_STEPS - 1]))
    trackers = [NoteTracker(rules, settings) for _ in range(variations)]
    for tok in prefix:
        stepper.feed(np.full(variations, tok))
        for tracker in trackers:
            tracker.update(int(tok))
    sampler = Sampler(rules, seed, settings.vocab_size)
    target = trackers[0].step + round(seconds * settings.steps_per_second)
    out: list[list[int]] = [[] for _ in range(variations)]
    done = np.zeros(variations, bool)
    nxt = np.zeros(variations, np.int64)
    shown = trackers[0].step / settings.steps_per_second  # progress counts new music only
    while not done.all():
        logits = stepper.logits()
        for b, tracker in enumerate(trackers):
            if done[b]:
                nxt[b] = settings.time_shift  # finished streams idle on a short shift
                continue
            tok = sampler.sample(logits[b], tracker.allowed())
            if settings.time_shift <= tok < settings.velocity:  # never past the end
                room = target - tracker.step
                tok = min(tok, settings.time_shift + room - 1)
            tracker.update(tok)
            out[b].append(tok)
            nxt[b] = tok
            if tracker.step >= target:
                done[b] = True
                out[b].extend(tracker.closing_tokens())
        stepper.feed(nxt)
        if progress is not None:
            now = min(t.step for t in trackers) / settings.steps_per_second
            if now - shown >= 1.0 or done.all():
                progress(now - shown)
                shown = now
    return [Piece(np.concatenate([prefix, np.asarray(o, np.int64)]), len(prefix), seconds)
            for o in out]
