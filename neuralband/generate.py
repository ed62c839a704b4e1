"""Offline generation: continue a primer (or silence), or accompany a melody, K variations.

Continuing, the K variations are K streams of one batched `Stepper`: one matrix product per layer
per step serves them all. Each stream has its own grammar (`NoteTracker`, or `VoiceTracker` for a
voice-packed model) and the shared seeded `Sampler`; when a stream has its S seconds it closes
its open notes and stops, so no file ends with a hanging note.

`accompany` is the live duet done offline: a voice-packed model hears the melody as the lead voice
event by event, at its own times, and samples only band events in between, waiting for the melody
where it expects it (`Voicing.band_mask`); a band TIME_SHIFT that would pass the melody's next
event is cut to land on it, so the band never skips what it hears. Its variations are played one
after another (a wait on trial is taken back per stream).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from neuralband.encoders.beats import Beats
from neuralband.encoders.performance import Event
from neuralband.encoders.voices import event_steps
from neuralband.loaded import LoadedModel, loaded
from neuralband.runtime import Stepper
from neuralband.sampling import Rules, Sampler, pulled
from neuralband.steering import ControlChoice, Steering, steer
from neuralband.trial import Trial
from neuralband.voicing import MelodyNote, Voicing

# From silence the model is started with one event of "nothing happened yet".
SILENCE_START_STEPS = 10
TAIL_S = 1.0  # an accompaniment goes on this long after the melody's last event


class Progress(Protocol):
    """What the music made so far is told to: a progress bar (tqdm's ``update``), counting
    whole seconds (tenths of the events, with a length) as they are done."""

    def update(self, n: int) -> object: ...


@dataclass(frozen=True)
class Piece:
    """One generated variation: its tokens (primer included) and how they split."""

    tokens: np.ndarray
    primer_length: int
    seconds: float


def generate(model: LoadedModel | str | os.PathLike, primer: np.ndarray | None, seconds: float,
             variations: int = 1, rules: Rules | None = None, seed: int | None = None,
             progress: Progress | None = None,
             controls: ControlChoice | None = None, length: int | None = None,
             beats: Beats | None = None) -> list[Piece]:
    """Continue ``primer`` tokens (None: silence) by ``seconds`` of music (or, with ``length``,
    by that many events, whichever comes first), ``variations`` times.

    A voice-packed model plays every voice, the lead included. A conditioned model keeps the
    key and density of ``controls`` (by default those of the primer; from silence, free). A
    model that reads the beat plays on ``beats`` (seconds from the primer's start; carry a
    primer's own on with `Beats.carried_on`); None: no beat.
    """
    if seconds <= 0 or variations < 1 or (length is not None and length < 1):
        raise ValueError("seconds, length and variations must be positive")
    model = loaded(model)
    stepper, voicing = model.stepper(variations), model.voicing
    rules = model.rules(rules)
    steer(stepper, controls, primer)
    prefix = (np.asarray(primer, np.int64) if primer is not None and len(primer) else
              np.array([voicing.shift(SILENCE_START_STEPS)]))
    trackers = [voicing.tracker(rules, voicing.every_voice) for _ in range(variations)]
    sps = voicing.settings.steps_per_second
    on_beat = beats is not None and stepper.reads_beat
    for tok in prefix:
        if on_beat:
            stepper.place_on(beats, trackers[0].step / sps)
        stepper.feed(np.full(variations, tok))
        for tracker in trackers:
            tracker.update(int(tok))
    sampler = Sampler(rules, seed, voicing.vocab_size, voicing.is_shift)
    target = trackers[0].step + (round(seconds * sps) if np.isfinite(seconds) else 1 << 62)
    out: list[list[int]] = [[] for _ in range(variations)]
    done = np.zeros(variations, bool)
    nxt = np.zeros(variations, np.int64)
    idle = voicing.shift(1)
    shown = trackers[0].step / sps  # progress counts new music only
    pull = voicing.grid_pull(rules) if on_beat else None
    while not done.all():
        logits = stepper.logits()
        for b, tracker in enumerate(trackers):
            if on_beat:  # each stream at its own time on the beats
                stepper.place_on(beats, tracker.step / sps, stream=b)
            if done[b]:
                nxt[b] = idle  # finished streams idle on a short shift
                continue
            allowed = tracker.allowed()
            tok = sampler.sample(logits[b], allowed, pulled(pull, stepper, b, logits[b], allowed,
                                                            tracker.endings()))
            if voicing.is_shift[tok]:  # never past the end
                tok = voicing.shift(min(int(voicing.shift_steps[tok]), target - tracker.step))
            tracker.update(tok)
            out[b].append(tok)
            nxt[b] = tok
            if tracker.step >= target or len(out[b]) == length:
                done[b] = True
                out[b].extend(tracker.closing_tokens())
        stepper.feed(nxt)
        if progress is not None:
            now = min(t.step for t in trackers) / sps if length is None else \
                min(len(o) for o in out) / 10  # with a length, tenths of its events
            whole = int(now - shown) if not done.all() else round(now - shown)
            if whole > 0:
                progress.update(whole)
                shown += whole
    return [Piece(np.concatenate([prefix, np.asarray(o, np.int64)]), len(prefix), seconds)
            for o in out]


def sample_tokens(model: LoadedModel | str | os.PathLike, primer: np.ndarray | None,
                  length: int, variations: int = 1, rules: Rules | None = None,
                  seed: int | None = None) -> list[Piece]:
    """Up to ``length`` new tokens after ``primer`` (None: the scheme's `opening`), ``variations``
    times, in one batched pass: the plain char-RNN loop (temperature and top-p over every
    class), for a scheme with no grammar of notes (text, folk tunes). A stream ends early at
    the scheme's `end` token (a tune's end), which it keeps."""
    if length < 1 or variations < 1:
        raise ValueError("length and variations must be positive")
    stepper = loaded(model).stepper(variations)
    rules = rules or Rules()
    prefix = (np.asarray(primer, np.int64) if primer is not None and len(primer)
              else np.array(stepper.info.scheme.opening, np.int64))
    for tok in prefix:
        stepper.feed(np.full(variations, tok))
    sampler = Sampler(rules, seed, stepper.config.classes)
    every = np.ones(stepper.config.classes, bool)
    out = np.empty((variations, length), np.int64)
    ends = np.full(variations, length)
    end = stepper.info.scheme.end
    for t in range(length):
        logits = stepper.logits()
        out[:, t] = [sampler.sample(logits[b], every) for b in range(variations)]
        if end is not None:
            ends = np.where((out[:, t] == end) & (ends == length), t + 1, ends)
            if (ends < length).all():
                break
        stepper.feed(out[:, t])
    return [Piece(np.concatenate([prefix, row[:n]]), len(prefix), 0.0)
            for row, n in zip(out, ends, strict=True)]


def accompany(model: LoadedModel | str | os.PathLike, lead: np.ndarray, variations: int = 1,
              rules: Rules | None = None, seed: int | None = None, tail_s: float = TAIL_S,
              progress: Progress | None = None,
              controls: ControlChoice | None = None, beats: Beats | None = None) -> list[Piece]:
    """Band parts for a melody: ``lead`` is its Performance tokens (`encoders.performance`);
    each Piece's tokens hold the melody as the lead voice and the band's sampled voices, ending
    ``tail_s`` after the melody's last event with every band note closed. A conditioned model
    is steered by ``controls``: by default the key of the melody heard so far, as live. A model
    that reads the beat plays on ``beats`` (the melody's, in its tokens' seconds); None: free.

    The variations are played one after another (a band's waits are tried and taken back, which
    one batched step for all of them cannot do); ``progress`` counts the seconds of all."""
    if variations < 1 or tail_s < 0:
        raise ValueError("variations must be positive and the tail >= 0 seconds")
    model = loaded(model)
    stepper, voicing = model.stepper(), model.voicing
    rules = model.rules(rules)
    if not voicing.voiced:
        raise ValueError("accompanying a melody needs a voice-packed model "
                         "(trained on a dataset made with `neuralband encode --voices`)")
    s = voicing.settings
    lead = np.asarray(lead, np.int64)
    is_shift, steps = event_steps(lead, s)
    steps = steps + SILENCE_START_STEPS
    events = voicing.player[lead[~is_shift]].tolist()  # the melody as the lead voice's tokens
    at = steps[~is_shift].tolist()
    end = (steps[-1] if len(steps) else SILENCE_START_STEPS) + round(tail_s * s.steps_per_second)
    sampler = Sampler(rules, seed, voicing.vocab_size, voicing.is_shift)
    out = []
    for _ in range(variations):
        stepper.reset()
        steering = steer(stepper, controls)  # afresh: nothing heard yet
        clock = None if beats is None or not stepper.reads_beat else \
            beats.shifted(SILENCE_START_STEPS / s.steps_per_second)
        out.append(_band_under(stepper, voicing, rules, sampler, events, at, end, progress,
                               steering, clock))
    seconds = (end - SILENCE_START_STEPS) / s.steps_per_second
    return [Piece(np.asarray(o, np.int64), 1, seconds) for o in out]


def _band_under(stepper: Stepper, voicing: Voicing, rules: Rules, sampler: Sampler,
                events: list[int], at: list[int], end: int,
                progress: Progress | None,
                steering: Steering | None = None, beats: Beats | None = None) -> list[int]:
    """One stream: the melody's ``events`` heard at their steps ``at``, the band sampled in
    between (`Voicing.band_mask` says how it waits), until step ``end``; its tokens. The
    steering (if any) hears each melody NOTE_ON as it comes, and the band's draws keep under
    the melody note sounding (`Voicing.melody_offsets`); a beat-reading model reads where
    each event falls on ``beats`` (times from the stream's start)."""
    follow = steering is not None and not steering.choice.fixed
    offsets = voicing.melody_offsets(rules)
    melody = MelodyNote()
    sampler.bias = None
    sps = voicing.settings.steps_per_second
    tracker = voicing.tracker(rules)
    out: list[int] = []
    steps = voicing.shift_steps
    longest = voicing.settings.max_shift_steps
    mask = np.empty(voicing.vocab_size, bool)
    trial = Trial(stepper)
    pull = voicing.grid_pull(rules) if beats is not None else None

    def place() -> None:  # the beat clock at the stream's time (a trial wait moved it)
        if beats is not None:
            stepper.place_on(beats, tracker.step / sps)

    def commit(tok: int) -> None:
        place()
        stepper.feed(tok)
        tracker.update(tok)
        out.append(tok)

    commit(voicing.shift(SILENCE_START_STEPS))
    i, after, shown = 0, 0, tracker.step
    pending = None  # a TIME_SHIFT drawn after a trial wait of the longest kind: the next draw
    while True:
        if progress is not None and tracker.step - shown >= sps:
            whole = (tracker.step - shown) // sps  # whole seconds: none lost, none counted twice
            progress.update(whole)
            shown += whole * sps
        if i < len(events) and at[i] <= tracker.step:  # the melody's event is due: heard
            base = voicing.base_list[events[i]]
            commit(events[i])
            kind = voicing.settings.kinds[base]
            if follow and kind == Event.NOTE_ON:  # as live: from the
                stepper.set_controls(steering.heard(at[i] / sps, base))  # next event on
            if offsets is not None and kind <= Event.NOTE_OFF:
                now = melody.update(int(voicing.settings.values[base]), kind == Event.NOTE_ON)
                sampler.bias = None if now is None else offsets[now]
            i, after = i + 1, 0
            continue
        if i == len(events) and tracker.step >= end:
            out.extend(tracker.closing_tokens())
            return out
        until = (at[i] if i < len(events) else end) - tracker.step
        allowed = voicing.band_mask(tracker.allowed(), mask, after=after)
        if not allowed.any():  # nothing later is allowed (a note at its cap): the wait happened
            commit(voicing.shift(after))
            after = 0
            continue
        if pending is None:
            logits = stepper.logits()[0]
            tok = sampler.sample(logits, allowed,
                                 pulled(pull, stepper, 0, logits, allowed, tracker.endings()))
        else:
            tok, pending = pending, None
        if not voicing.is_shift[tok]:
            commit(tok)
            after = 0
            continue
        n = int(steps[tok])
        if n >= until:  # the melody (or the end) comes first: wait for it
            commit(voicing.shift(until))
            after = 0
            continue
        # Wait n steps on trial and see what the model would do then.
        place()
        trial.begin(tok, tracker)
        logits = stepper.logits()[0]
        expect = voicing.band_mask(tracker.allowed(), mask, expect_lead=True)
        then = sampler.sample(logits, expect,
                              pulled(pull, stepper, 0, logits, expect, tracker.endings()))
        if voicing.lead_list[then] and n < longest:
            # It expected the melody then, and the melody does not come: not a moment for the
            # band; draw again from the times after it (the next pass, with `after`), unless
            # nothing is allowed then: the wait happened.
            if trial.again(voicing, mask, n) is not None:
                after = n
                continue
        trial.commit()
        out.append(tok)
        after = 0
        if voicing.is_shift[then]:
            pending = then  # the wait goes on, as the model drew it
        elif not voicing.lead_list[then]:
            commit(then)
