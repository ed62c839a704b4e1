"""Choosing the next event: temperature, top-p, and a grammar that keeps the output playable.

`NoteTracker` follows the events of one stream as they happen (what is sounding, since when, the
last event) and keeps a mask of the events allowed next, updated per event rather than recomputed
from the history:

- a NOTE_OFF only for a pitch that is sounding, and not in the step its note began (a note lasts
  at least one step, as in the data: zero-length notes went out live as bursts of clicks); a
  NOTE_ON only inside the pitch range and below the maximum polyphony; never a VELOCITY right
  after a VELOCITY;
- no TIME_SHIFT that would hold a note past the maximum note length; a note that has reached it
  leaves only its NOTE_OFF allowed, so it is forced off (Magenta capped notes at 5 s because the
  model "can leave hanging notes");
- before that, a note held past ``end_from`` of the maximum makes its NOTE_OFF likelier, up to
  ``end_push`` nats at the cap (`NoteTracker.endings`): an LSTM that has lost track of a long
  note is reminded of it, and ends it at a moment of its own choosing, not at the cap's.

Where the model plays on a beat, ``tight`` pulls its waits to end on the beat's eighth lines
(`GridPull`), as a sequencer's quantise strength does: the draw leans toward what the model
already half-knows (a duet band's onsets off the melody's sat within a few steps of the lines);
0 leaves the model's own timing.

A duet band also hears where the melody is (`parts.Voicing.melody_offsets`): its NOTE_ONs above
the melody note sounding lose ``under_melody`` nats, those that clash with it (a second, the
tritone, a seventh) ``clash`` nats. Soft, not a mask: the band may still cross or rub, as real
arrangements do, only less often than a model that half-listens.

`Sampler` draws from the masked distribution with a seedable generator. Its top-p nucleus counts
the waits (every TIME_SHIFT) as one choice: "wait" against "play this note" or "end that one",
how long to wait then drawn among all the waits as the model weighs them. Cut one by one, a wait
spread over 100 lengths lost its long tail to the nucleus at every draw, and the music came out
busier than asked with shorter notes (`pop` told 8 notes/s played 11.4; a duet band's notes
were a third shorter than the real band's).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from neuralband.encoders.performance import DEFAULT_SETTINGS, EncoderSettings, Event

NO_NOTE = np.iinfo(np.int64).max


@dataclass(frozen=True)
class Rules:
    """The sampling settings a musician turns: randomness and the grammar's limits."""

    temperature: float = 1.0
    top_p: float = 1.0
    max_polyphony: int = 12
    pitch_low: int = 21  # A0, the piano's range by default
    pitch_high: int = 108  # C8
    max_note_s: float = 5.0
    end_from: float = 0.5  # share of max_note_s after which a note's NOTE_OFF is favoured
    end_push: float = 4.0  # nats added to that NOTE_OFF's logit at max_note_s
    under_melody: float = 0.0  # nats off a duet band's NOTE_ON above the melody note sounding
    clash: float = 0.0  # nats off one a second, tritone or seventh from it
    tight: float = 0.0  # nats pulling the band's onsets onto the beat's lines (`GridPull`)

    def __post_init__(self) -> None:
        if not self.temperature > 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top-p must be in (0, 1], got {self.top_p}")
        if not 0 <= self.pitch_low <= self.pitch_high <= 127:
            raise ValueError(f"pitch range must be within 0..127, got "
                             f"{self.pitch_low}..{self.pitch_high}")
        if self.max_polyphony < 1 or self.max_note_s <= 0:
            raise ValueError("max polyphony and max note length must be positive")
        if not 0 < self.end_from <= 1 or self.end_push < 0:
            raise ValueError("end_from must be in (0, 1] and end_push >= 0")
        if not (0 <= self.under_melody < np.inf and 0 <= self.clash < np.inf):
            raise ValueError(f"--under-melody and --clash are nats >= 0, got "
                             f"{self.under_melody:g} and {self.clash:g}")
        if not 0 <= self.tight < np.inf:
            raise ValueError(f"--tight is nats >= 0, got {self.tight:g}")


# A duet band's defaults (`model_rules`): on 16 held-out POP909 melodies these bring the band's
# onsets below the melody and consonant with it to about the real PIANO + BRIDGE parts' own
# shares (0.88 and 0.84 against 0.86 and 0.84; the model alone 0.83 and 0.78),
# docs/models.md "pop-duet".
DUET_UNDER_MELODY = 1.0
DUET_CLASH = 0.5
# A model that reads the beat draws its waits onto the lines by default (`GridPull`): on 16
# held-out POP909 openings continued, pop's onsets on the primer's eighth grid went from 61% to
# 79%, notes/s, polyphony and median length within 11% of the songs'; on 8 melodies, pop-duet's
# own onsets (off the melody's) on the song's eighth grid from 46% to 60%.
TIGHT = 4.0
# A model that is not voice-packed learnt the whole arrangement, the tune's register included:
# playing a duet (play --mode duet) it takes more to keep under your note (a held G4: 93% of
# its notes above it free, 54% at 1 nat, 2% at 3; chorale-folk, tests/live/test_controls.py).
PLAIN_DUET_UNDER_MELODY = 3.0


def model_rules(info, rules: Rules | None = None, **changes) -> Rules:
    """``rules``, or the default rules with the longest note from the model's training data
    where the model knows it (the music ends its notes; the cap only stops a slip), for a
    voice-packed model a band that keeps under the melody and out of its way (the DUET_*
    offsets), and for one that reads the beat the TIGHT pull onto its lines."""
    if rules is not None:
        return rules
    data_max = info.summary.get("max_note_s") if info is not None else None
    if data_max and "max_note_s" not in changes:
        changes["max_note_s"] = float(data_max)
    if info is not None and info.scheme.voiced:
        changes.setdefault("under_melody", DUET_UNDER_MELODY)
        changes.setdefault("clash", DUET_CLASH)
    controls = getattr(info, "controls", None)
    if controls is not None and controls.beat:
        changes.setdefault("tight", TIGHT)
    return Rules(**changes)


class NoteTracker:
    """The state of one stream's notes, and the events allowed next."""

    def __init__(self, rules: Rules = Rules(), settings: EncoderSettings = DEFAULT_SETTINGS):
        self.rules = rules
        self.settings = settings
        self.max_steps = max(1, round(rules.max_note_s * settings.steps_per_second))
        self.count = np.zeros(128, np.int64)  # open notes per pitch
        self.onsets: list[list[int]] = [[] for _ in range(128)]  # their start steps, oldest first
        self.first_onset = np.full(128, NO_NOTE, np.int64)  # oldest open start step per pitch
        self.other = np.zeros(128, np.int64)  # notes another part holds (the player's, live)
        self.step = 0
        self.last_was_velocity = False
        s = settings
        self._in_range = np.zeros(128, bool)
        self._in_range[rules.pitch_low:rules.pitch_high + 1] = True
        self._free = self._in_range.copy()  # in range and not held by another part
        self._allowed = np.zeros(s.vocab_size, bool)
        self._kind, self._value = s.kinds.tolist(), s.values.tolist()  # per token, for update
        self._shift_steps = np.arange(1, s.max_shift_steps + 1)
        self.end_steps = min(self.max_steps - 1, round(rules.end_from * self.max_steps))
        self._age = np.zeros(128, np.float64)
        self._nudge = np.zeros(s.vocab_size, np.float64)

    @property
    def sounding(self) -> int:
        """How many notes are open."""
        return int(self.count.sum())

    def update(self, token: int, own: bool = True) -> None:
        """Take one event of the stream into account.

        ``own=False`` marks a note event of another part sharing the stream (the musician, live):
        its pitches are kept out of our NOTE_ONs and its notes are not ours to end. Time and
        velocity events are shared whoever plays them.
        """
        tok = int(token)
        kind, value = self._kind[tok], self._value[tok]
        self.last_was_velocity = kind == Event.VELOCITY
        if not own and kind <= Event.NOTE_OFF:
            if kind == Event.NOTE_ON:
                self.other[value] += 1
            elif self.other[value]:
                self.other[value] -= 1
            self._free[value] = self._in_range[value] and not self.other[value]
            return
        if kind == Event.NOTE_ON:
            self.onsets[value].append(self.step)
            self.count[value] += 1
            self.first_onset[value] = self.onsets[value][0]
        elif kind == Event.NOTE_OFF:
            if self.count[value]:
                self.onsets[value].pop(0)  # decoding closes the earliest open note
                self.count[value] -= 1
                self.first_onset[value] = self.onsets[value][0] if self.onsets[value] else NO_NOTE
        elif kind == Event.TIME_SHIFT:
            self.step += value

    def holds(self, voice: int, pitch: int) -> bool:
        """Whether an own note of ``pitch`` is open (one voice: ``voice`` is ignored)."""
        return bool(self.count[pitch])

    def overdue(self) -> np.ndarray:
        """Pitches whose oldest open note has reached the maximum length."""
        return np.flatnonzero(self.step - self.first_onset >= self.max_steps)

    def endings(self) -> np.ndarray | None:
        """The logit bonus of ending each long note (a reused buffer over the vocabulary), or
        None while no note is held past ``end_from`` of the longest: rising linearly from 0
        there to ``end_push`` nats at the cap."""
        if not self.rules.end_push or self.step - int(self.first_onset.min()) <= self.end_steps:
            return None
        age, s = self._age, self.settings
        np.subtract(self.step, self.first_onset, out=age, casting="unsafe")  # open: huge < 0
        age -= self.end_steps
        np.clip(age, 0.0, self.max_steps - self.end_steps, out=age)
        age *= self.rules.end_push / (self.max_steps - self.end_steps)
        self._nudge[s.span(Event.NOTE_OFF)] = age
        return self._nudge

    def allowed(self) -> np.ndarray:
        """Boolean mask over the vocabulary of the events allowed next (a reused buffer)."""
        s, a = self.settings, self._allowed
        late = self.overdue()
        a.fill(False)
        if len(late):  # only the NOTE_OFFs of notes held too long
            a[s.note_off + late] = True
            return a
        if self.sounding < self.rules.max_polyphony:
            a[s.span(Event.NOTE_ON)] = self._free
        np.less(self.first_onset, self.step, out=a[s.span(Event.NOTE_OFF)])  # open, not new
        oldest = int(self.first_onset.min())
        room = s.max_shift_steps if oldest == NO_NOTE else self.max_steps - (self.step - oldest)
        a[s.span(Event.TIME_SHIFT)] = self._shift_steps <= room
        a[s.span(Event.VELOCITY)] = not self.last_was_velocity
        return a

    def save(self) -> tuple:
        """A copy of the whole state, to take back events fed on trial (a proposed wait and
        what follows it)."""
        return (self.count.copy(), [list(o) for o in self.onsets], self.first_onset.copy(),
                self.other.copy(), self._free.copy(), self.step, self.last_was_velocity)

    def restore(self, state: tuple) -> None:
        """Return to a `save`d state."""
        count, onsets, first, other, free, self.step, self.last_was_velocity = state
        np.copyto(self.count, count)
        self.onsets = [list(o) for o in onsets]
        np.copyto(self.first_onset, first)
        np.copyto(self.other, other)
        np.copyto(self._free, free)

    def closing_tokens(self) -> list[int]:
        """NOTE_OFFs for every open note, oldest pitch first: the end of a piece, no hangers."""
        order = np.argsort(self.first_onset, kind="stable")
        return [self.settings.note_off + int(p) for p in order for _ in range(self.count[p])]


GRID_LINES = 2  # the pull's lines per beat: the eighths, where pop accompaniment sits
GRID_NEAR_S = 0.02  # a wait ending this close to a line ends on it (half the on-grid tolerance)
# The waits ending within this share of an eighth before a line, or after it, are drawn to it:
# wider draws more sixteenths onto the eighths. A wait that ends before a line, drawn to it, holds
# the note it ends longer; one that ends after it, drawn back, less. On 48 held-out openings
# (docs/groove.md) 0.375 each way held the notes 29% longer than the songs' at 0.68 of onsets on
# the grid; 0.3 before and 0.5 after, 20% at the same 0.68, live the same.
GRID_WINDOW_BEFORE = 0.3
GRID_WINDOW_AFTER = 0.5
GRID_AT = 0.25  # the band stands at a line this near it (a share of an eighth)


class GridPull:
    """``Rules.tight`` as a logit nudge over the vocabulary, for where the stream stands in the
    beat, as a quantiser snaps: of the waits that end near an eighth line (from
    GRID_WINDOW_BEFORE of an eighth before it to GRID_WINDOW_AFTER after it), those within
    GRID_NEAR_S of it gain ``tight`` nats over the rest, and the near waits as a whole stay as
    likely as the model made them. So the model still decides whether to play now or wait, and
    what, and a wait that ends well away from a line (a note let go before the next chord, a
    rolled chord's next note) keeps its chance. (Pulling the NOTE_ONs on a line too, or pushing
    those off it, thinned a duet band by up to 40% or thickened a solo's chords by 45%; weighing
    the line's waits against every wait held each note on to the next line, its median length
    +57%.) Buffers are built once."""

    def __init__(self, tight: float, shift_s: np.ndarray):
        self.tight = float(tight)
        self.shift_s = np.asarray(shift_s, np.float64)  # each token's wait (0: not a wait)
        self.waits = self.shift_s > 0
        where = np.flatnonzero(self.waits)
        self._span = slice(int(where[0]), int(where[-1]) + 1)  # the waits: one run of tokens
        if not self.waits[self._span].all():
            raise ValueError("a pull needs the vocabulary's waits in one run")
        self._wait_s = self.shift_s[self._span]
        n = len(self._wait_s)
        self._line = np.empty(n, np.float64)
        self._gap = np.empty(n, np.float64)
        self._near = np.empty(n, bool)
        self._group = np.empty(n, bool)
        self._inside = np.empty(n, bool)
        self._on = np.empty(n, bool)
        self._x = np.empty(n, np.float64)
        self._bonus = np.empty(n, np.float64)
        self._nudge = np.zeros(len(self.shift_s), np.float64)

    def nudge(self, logits: np.ndarray, allowed: np.ndarray, beat_pos: float, period_s: float,
              also: np.ndarray | None = None) -> np.ndarray:
        """The nudge for a draw from ``logits`` over the ``allowed`` events at ``beat_pos``
        beats into the bar, beats of ``period_s`` (a reused buffer), plus ``also`` (a tracker's
        `endings`, or None). About 100 waits' arithmetic: a few tens of microseconds."""
        span, out = self._span, self._nudge
        if also is None:
            out.fill(0.0)
        else:
            np.copyto(out, also)
        line_s = period_s / GRID_LINES
        line, gap, near, x, bonus = self._line, self._gap, self._near, self._x, self._bonus
        now = (beat_pos % 1.0) * period_s
        group, on, inside = self._group, self._on, self._inside
        np.add(self._wait_s, now, out=gap)  # where each wait ends
        gap /= line_s
        np.rint(gap, out=line)  # ... its nearest line
        gap -= line  # ... and how far after it (< 0: before), in eighths
        near_e = GRID_NEAR_S / line_s
        mask = allowed[span]
        np.greater_equal(gap, -near_e, out=near)
        np.less_equal(gap, near_e, out=on)
        near &= on
        near &= mask
        if not near.any():
            return out
        # Each line's window: the waits drawn to it, its near ones always among them (at fast
        # tempi GRID_WINDOW_BEFORE of an eighth is under GRID_NEAR_S).
        np.greater_equal(gap, -max(GRID_WINDOW_BEFORE, near_e), out=inside)
        np.less_equal(gap, max(GRID_WINDOW_AFTER, near_e), out=on)
        inside &= on
        inside &= mask
        np.add(logits[span], out[span], out=x)
        x -= np.max(x, where=mask, initial=-np.inf)
        np.exp(x, out=x)
        bonus.fill(0.0)
        gain = np.expm1(self.tight)
        # The line the band stands at, if near it: the waits back to it are a chord's next
        # notes a step or two on, left to the model (drawn to the line, they came in bursts).
        here = round(now / line_s)
        if abs(now / line_s - here) > GRID_AT and abs(now / line_s - here) * line_s > GRID_NEAR_S:
            here = None
        first = int(np.min(line, where=near, initial=np.inf))
        last = int(np.max(line, where=near, initial=-np.inf))
        for at in range(first, last + 1):  # the lines some wait ends on: their windows' waits
            if at == here:
                continue
            np.equal(line, at, out=group)
            np.logical_and(group, near, out=on)
            if not on.any():
                continue
            group &= inside
            share = np.sum(x, where=on) / np.sum(x, where=group)
            np.subtract(bonus, np.log1p(gain * share), out=bonus, where=group)
            np.add(bonus, self.tight, out=bonus, where=on)
        out[span] += bonus
        return out


def pulled(pull: GridPull | None, stepper, stream: int, logits: np.ndarray,
           allowed: np.ndarray, endings: np.ndarray | None) -> np.ndarray | None:
    """A draw's nudge: a tracker's ``endings``, plus the grid's pull where the stream is on a
    beat (`GridPull`)."""
    if pull is None or not stepper.beat_streams[stream]:
        return endings
    return pull.nudge(logits, allowed, float(stepper.beat_pos[stream]),
                      float(stepper.beat_period_s[stream]), endings)


class Sampler:
    """Temperature and top-p sampling over allowed events, from a seeded generator.

    ``temperature`` and ``bias`` may change between draws (the live controls): ``bias`` is a
    logit offset over the vocabulary (None: none; -inf keeps an event out), so a knob steers
    the draw without touching the grammar. Buffers are allocated once: a draw on the real-time
    path allocates nothing per event. ``waits`` (a mask over the vocabulary: the TIME_SHIFTs)
    makes them one choice for top-p; None (text, a grid's steps): every class is its own.
    """

    def __init__(self, rules: Rules = Rules(), seed: int | None = None, vocab_size: int = 388,
                 waits: np.ndarray | None = None):
        self.rules = rules
        self.temperature = rules.temperature
        self.bias: np.ndarray | None = None
        self.measure = False  # set: each draw's entropy is kept in ``entropy`` (nats)
        self.entropy = float("nan")
        self.rng = np.random.default_rng(seed)
        self._p = np.empty(vocab_size, np.float64)
        self._x = np.empty(vocab_size, np.float64)
        self._blocked = np.empty(vocab_size, bool)
        self._order = np.empty(vocab_size, np.int64)
        self.waits = None if waits is None or not np.any(waits) else np.asarray(waits, bool)
        if self.waits is not None:
            if self.waits.shape != (vocab_size,):
                raise ValueError(f"the waits mask covers {self.waits.shape[0]} classes, "
                                 f"not {vocab_size}")
            self._first_wait = int(np.argmax(self.waits))  # stands for them all in the nucleus
            self._waits_f = self.waits.astype(np.float64)
            self._not_wait = ~self.waits
            self._choice = np.empty(vocab_size, np.float64)

    def sample(self, logits: np.ndarray, allowed: np.ndarray,
               nudge: np.ndarray | None = None) -> int:
        """One event drawn from softmax((logits + nudge + bias) / T) restricted to ``allowed``
        and to top-p; ``nudge`` is a tracker's `endings` (None: none). Where the bias leaves
        nothing the grammar allows, it is dropped for this draw (the grammar always wins)."""
        p, blocked = self._p, self._blocked
        np.logical_not(allowed, out=blocked)
        for bias in (self.bias, None) if self.bias is not None else (None,):
            if nudge is None:
                np.copyto(p, logits)
            else:
                np.add(logits, nudge, out=p)
            if bias is not None:
                p += bias
            p[blocked] = -np.inf
            top = p.max()
            if top > -np.inf:
                break
        p -= top
        p /= self.temperature
        if self.measure:
            np.maximum(p, -1e300, out=self._x)  # finite, so that 0 * x is 0
        np.exp(p, out=p)
        if self.measure:  # H = log Z - E[x] of the tempered, masked distribution
            z = p.sum()
            self.entropy = float(np.log(z) - np.dot(p, self._x) / z)
        if self.rules.top_p < 1.0:
            self._nucleus(p)
        np.cumsum(p, out=p)
        return int(min(np.searchsorted(p, self.rng.random() * p[-1], side="right"), len(p) - 1))

    def _nucleus(self, p: np.ndarray) -> None:
        """Top-p in place over ``p`` (unnormalised probabilities): keep the likeliest choices
        until they hold top_p of the mass, drop the rest; the waits are one choice, kept or
        dropped together."""
        x = p
        if self.waits is not None:
            x = self._choice
            np.copyto(x, p)
            x[self.waits] = 0.0
            x[self._first_wait] = np.dot(p, self._waits_f)  # the mass of waiting at all
        self._order[:] = np.argsort(x)[::-1]
        sorted_x = x[self._order]
        np.cumsum(sorted_x, out=sorted_x)
        cut = int(np.searchsorted(sorted_x, self.rules.top_p * sorted_x[-1])) + 1
        drop = self._order[cut:]
        if self.waits is not None:
            if x[self._first_wait] > 0 and self._first_wait in drop:
                p[self.waits] = 0.0
            drop = drop[self._not_wait[drop]]
        p[drop] = 0.0
