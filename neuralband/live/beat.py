"""The band's beat, live: where the beat is now, how long it lasts, and how sure the band is.

It comes from, in order: an external clock the band follows (`--clock midi`: its pulses), a
fixed ``--bpm``, taps (the ``tap`` control: a pad or a pedal), else `BeatTracker` following the
player's own notes. Each is a `Grid` in wall-clock seconds (a beat count at an anchor time, and
the beat's length) or None (no beat: the model runs free). Nothing here does I/O or keeps a
thread; every method takes the time, so the engine drives it from the messages it already takes
in, and tests drive it with any times they like.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from neuralband.encoders.beats import estimate_period

CLICK_CHANNEL = 9  # the metronome (--click): channel 10, General MIDI percussion
CLICK_PITCH = 76  # Hi Wood Block
CLICK_ACCENT, CLICK_VELOCITY = 110, 70  # the first beat of a bar, the others
CLICK_LATE_S = 0.02  # a beat this far behind is still sounded
MIN_PERIOD_S, MAX_PERIOD_S = 60.0 / 200, 60.0 / 50  # 50..200 BPM
CHORD_S = 0.03  # onsets this close are one (a chord's notes)
SURE_RATE = 0.2  # how fast the confidence follows each onset being on the grid or not
PHASE_GAIN, TEMPO_GAIN = 0.7, 0.35  # the share of an onset's error the grid's phase and tempo take
FIND_TOLERANCE_S = 0.03  # a beat is found where its eighth lines hold onsets this close
PROBATION = 0.65  # a beat just found starts this sure, whatever fit it had
REFIND_S = 3.0  # a beat let go is looked for again among the onsets of this long before
CAPTURE = 0.4  # an onset further than this share of an eighth from a line moves nothing
# A pulse faster than this is a slow beat's eighths: on 8 held-out POP909 melodies the tracker
# locked at twice the annotated tempo on all 5 ballads (57-72 BPM), its eighths their sixteenths.
# POP909's annotated beats lie under 115 BPM 90% of the time; twice too slow costs the band's
# eighth lines nothing (they are all on the true grid), twice too fast half of them.
HALVE_ABOVE_BPM = 110.0


@dataclass(frozen=True)
class Grid:
    """A steady beat in wall-clock seconds: ``beat`` beats after a bar's downbeat at
    ``anchor_t``, beats of ``period_s``, bars of ``bar_beats``."""

    anchor_t: float
    beat: float
    period_s: float
    bar_beats: int = 4

    @property
    def bpm(self) -> float:
        return 60.0 / self.period_s

    def beat_at(self, t: float) -> float:
        """Beats after a downbeat at ``t`` (0 <= beat < bar_beats)."""
        return (self.beat + (t - self.anchor_t) / self.period_s) % self.bar_beats

    def moved(self, t: float) -> Grid:
        """The same grid anchored at ``t`` (small numbers, whatever the session's length)."""
        return Grid(t, self.beat_at(t), self.period_s, self.bar_beats)


def steady(bpm: float, start_t: float, bar_beats: int = 4) -> Grid:
    """``--bpm``: a downbeat at ``start_t``, then every beat at ``bpm``."""
    if not 20 <= bpm <= 400:
        raise ValueError(f"a tempo is 20..400 BPM, got {bpm:g}")
    return Grid(start_t, 0.0, 60.0 / bpm, bar_beats)


class TapTempo:
    """The ``tap`` control: the tempo from the median of the last taps' intervals (2 taps give
    one), the beat on the last tap, the first tap of a run a downbeat. A gap of over 2 s (or
    of more than twice the beat) starts a new run."""

    def __init__(self, bar_beats: int = 4, keep: int = 4):
        self.bar_beats = bar_beats
        self.keep = keep
        self.times: list[float] = []

    def tap(self, t: float) -> Grid | None:
        """One tap at ``t``; the grid the taps so far set (None after the first)."""
        if self.times and (t - self.times[-1] > 2.0 or t <= self.times[-1]):
            self.times.clear()
        elif len(self.times) >= 2:
            typical = float(np.median(np.diff(self.times)))
            if t - self.times[-1] > 2 * typical:
                self.times.clear()
        self.times.append(t)
        del self.times[:-(self.keep + 1)]
        if len(self.times) < 2:
            return None
        period = float(np.median(np.diff(self.times)))
        period = min(max(period, MIN_PERIOD_S), MAX_PERIOD_S)
        count = len(self.times) - 1  # taps since the run's first: its downbeat
        return Grid(t, float(count % self.bar_beats), period, self.bar_beats)


class BeatTracker:
    """Follows a player's beat from their onsets.

    Unlocked, it waits for ``min_onsets`` onsets within ``window_s``, takes the tempo from their
    autocorrelation (as the offline tracker does) and the phase that puts most of them on the
    eighth-note lines (the beat, of the two halves, where the louder notes fall), kept where at
    least ``lock`` of the recent onsets lie on it. Then every onset refits the grid: each recent
    onset is given its nearest eighth line and a weighted line through them (recent onsets
    weigh most, ``memory_s``) gives the phase and the beat's length, so a tempo change is
    followed as it happens. The confidence is a running share of onsets that came where the grid
    said they would (within 40 ms, or an eighth of an eighth, of a line), judged before the
    refit so that a grid bent to fit cannot vouch for itself; under ``release`` the player plays
    rubato and the beat is let go (None). When the player stops, the grid stays: the band keeps
    the tempo it had. Bars: the beat in the bar where low, loud notes fall most."""

    def __init__(self, bar_beats: int = 4, window_s: float = 8.0, memory_s: float = 2.0,
                 lock: float = 0.8, release: float = 0.5, min_onsets: int = 5):
        self.bar_beats = bar_beats
        self.window_s, self.memory_s = window_s, memory_s
        self.lock, self.release, self.min_onsets = lock, release, min_onsets
        size = 256
        self._t = np.zeros(size)  # onset times (a ring)
        self._w = np.zeros(size)  # their weights (velocity, chords summed)
        self._low = np.zeros(size)  # their weight as bass (low notes count more for bars)
        self._n = 0
        self._grid: Grid | None = None  # the pulse the onsets are tracked on
        self.pulses = 1  # pulses a beat: 2 where the pulse is a slow beat's eighths
        self.confidence = 0.0
        self._bar_weight = np.zeros(2 * bar_beats)  # where the downbeat falls, decaying
        self._since = -math.inf  # onsets before this (the last let-go) find no new beat
        self._last_t: float | None = None  # the last onset that moved the grid
        self._done = 0  # onsets analysed

    @property
    def _bar(self) -> int:
        """Pulses to the bar."""
        return self.bar_beats * self.pulses

    @property
    def grid(self) -> Grid | None:
        """The beat the player plays: the pulse tracked, or where that is faster than
        HALVE_ABOVE_BPM, a beat of two pulses (a sung ballad's eighths are its pulse)."""
        pulse = self._grid
        if pulse is None or self.pulses == 1:
            return pulse
        return Grid(pulse.anchor_t, pulse.beat / self.pulses, pulse.period_s * self.pulses,
                    self.bar_beats)

    def onset(self, t: float, velocity: int = 100, pitch: int = 60) -> bool:
        """A player's NOTE_ON at ``t`` heard and analysed; whether the grid changed."""
        self.hear(t, velocity, pitch)
        return self.analyse()

    def hear(self, t: float, velocity: int = 100, pitch: int = 60) -> None:
        """A player's NOTE_ON at ``t``, kept for `analyse` (a few array writes: the engine
        hears it as it comes and analyses when it has time to spare)."""
        w = velocity / 127.0
        low = w * (2.0 if pitch < 55 else 0.5)
        size = len(self._t)
        last = (self._n - 1) % size
        if self._n and t - self._t[last] < CHORD_S:  # a chord: one onset, heavier
            self._w[last] += w
            self._low[last] += low
            return
        i = self._n % size
        self._t[i], self._w[i], self._low[i] = t, w, low
        self._n += 1

    @property
    def unheard(self) -> bool:
        """Whether onsets wait for `analyse`."""
        return self._done < self._n

    def analyse(self) -> bool:
        """The onsets heard since the last call, in order: each finds or moves the grid as it
        would have at its time; whether the grid changed."""
        before = self.grid
        size = len(self._t)
        self._done = max(self._done, self._n - size)  # a ring overrun: the oldest are gone
        while self._done < self._n:
            i = self._done % size
            self._done += 1
            now = float(self._t[i])
            if self._grid is None:
                self._find(now)
            else:
                self._refit(now, float(self._low[i]))
        return self.grid != before

    def _recent(self, now: float, seconds: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        n = min(self._n, len(self._t))
        t, w, low = self._t[:n], self._w[:n], self._low[:n]
        keep = (t > now - seconds) & (t <= now)
        order = np.argsort(t[keep])
        return t[keep][order], w[keep][order], low[keep][order]

    def _find(self, now: float) -> None:
        """Unlocked: a tempo and phase from the last window's onsets, kept if they fit."""
        t, w, low = self._recent(now, min(self.window_s, now - self._since))
        if len(t) < self.min_onsets or t[-1] - t[0] < 4 * MIN_PERIOD_S:
            return
        env_t = t - t[0]
        frames = np.round(env_t / 0.01).astype(np.int64)
        env = np.bincount(frames, weights=w, minlength=int(frames.max()) + 2)
        env = np.convolve(env, np.array([0.25, 0.5, 1.0, 0.5, 0.25]), mode="same")
        period, strength = estimate_period(env)
        if strength <= 0:
            return
        # The tempo, or half, twice, two thirds or three halves of it (autocorrelation often
        # hears the eighths, the half bar or a dotted rhythm): whichever grid holds most onsets
        # beyond what its lines would hold by chance (a finer grid holds more of anything).
        best = None
        for candidate in (period, period / 2, period * 2, period * 2 / 3, period * 3 / 2):
            if not MIN_PERIOD_S <= candidate <= MAX_PERIOD_S:
                continue
            grid = self._phase(candidate, t, w, now)
            grid = self._fit(grid, t, w) or grid
            fits = self._fits(grid, t, w) - 4 * FIND_TOLERANCE_S / grid.period_s
            if best is None or fits > best[0]:
                best = (fits, grid)
        if best is None:
            return
        excess, grid = best
        confidence = self._fits(grid, t, w)
        if confidence >= self.lock and excess >= self.lock - 0.25:
            # On probation: two onsets off the new grid let it go again.
            slow = grid.bpm > HALVE_ABOVE_BPM and 2 * grid.period_s <= MAX_PERIOD_S
            self.pulses = 2 if slow else 1
            self._grid = Grid(grid.anchor_t, grid.beat, grid.period_s, self._bar)
            self.confidence = min(confidence, PROBATION)
            self._last_t = now
            self._bar_weight[:] = 0.0
            self._learn_bars(t, low)

    def _phase(self, period: float, t: np.ndarray, w: np.ndarray, now: float) -> Grid:
        """The grid of beat ``period`` whose eighth lines hold the onsets best (their weighted
        circular mean at twice the beat's rate), its beat on the half where they weigh more."""
        angle = np.angle(np.sum(w * np.exp(2j * np.pi * 2 * t / period))) / (2 * np.pi)
        eighth0 = angle / 2 * period  # a time on an eighth line
        best = None
        for offset in (0.0, period / 2):
            beat0 = eighth0 + offset
            phase = ((t - beat0) / period) % 1.0
            score = float(np.sum(w[np.minimum(phase, 1.0 - phase) < 0.15]))
            if best is None or score > best[0]:
                best = (score, beat0)
        return Grid(now, ((now - best[1]) / period) % self.bar_beats, period, self.bar_beats)

    def _refit(self, now: float, low: float) -> None:
        """Locked: was the new onset where the grid said (the confidence: a running share of
        onsets on the predicted eighth lines, judged before the grid moves, so that a grid bent
        to fit cannot vouch for itself); the beat is let go under ``release``. Else the grid is
        pulled towards the onset as a phase-locked loop does: part of the error moves its phase
        (``PHASE_GAIN``), part of the error per eighth since the last onset its beat's length
        (``TEMPO_GAIN``), so a steady player's jitter averages out and a tempo change is caught
        within a few onsets."""
        grid = self._grid
        eighth = grid.period_s / 2
        position = (grid.beat + (now - grid.anchor_t) / grid.period_s) * 2
        line = round(position)
        error = (position - line) * eighth  # seconds: + the onset came after its line
        on = abs(error) <= max(0.04, eighth / 8)
        self.confidence += SURE_RATE * (float(on) - self.confidence)
        if self.confidence < self.release:
            self._grid = None  # rubato, or a new tempo: found again from the last onsets
            self._since = now - REFIND_S
            return
        if abs(error) > CAPTURE * eighth:  # between the lines: not the beat's to follow
            return
        eighths = 1.0 if self._last_t is None else max(1.0, round((now - self._last_t) / eighth))
        period = grid.period_s * (1.0 + TEMPO_GAIN * error / (eighths * eighth))
        period = min(max(period, MIN_PERIOD_S), MAX_PERIOD_S)
        moved = grid.moved(now)  # the grid's beat at the onset, then the phase pulled
        beat = (moved.beat - PHASE_GAIN * error / grid.period_s) % self._bar
        pulled = Grid(now, beat, period, self._bar)
        # The beat's length from the line through the recent onsets (steadier than one
        # onset's error), where they are on the pulled grid's lines.
        t, w, _ = self._recent(now, self.window_s)
        fitted = self._fit(pulled, t, w)
        if fitted is not None:
            pulled = Grid(now, beat, fitted.period_s, self._bar)
        self._grid = pulled
        self._last_t = now
        self._learn_bars(np.array([now]), np.array([low]))

    def _fit(self, grid: Grid, t: np.ndarray, w: np.ndarray) -> Grid | None:
        """The weighted line through the onsets near the grid's eighth lines: eighth index k
        against time, recent onsets weighing most."""
        now = float(t[-1])
        eighth = grid.period_s / 2
        position = (grid.beat + (t - grid.anchor_t) / grid.period_s) * 2  # in eighths
        k = np.round(position)
        near = np.abs(position - k) * eighth < max(0.06, eighth / 3)
        if near.sum() < 3:
            return None
        weight = w[near] * np.exp(-(now - t[near]) / self.memory_s)
        x, y = k[near], t[near]
        xm = np.sum(weight * x) / np.sum(weight)
        ym = np.sum(weight * y) / np.sum(weight)
        var = np.sum(weight * (x - xm) ** 2)
        if var <= 0:
            return None
        slope = np.sum(weight * (x - xm) * (y - ym)) / var  # seconds per eighth
        period = float(min(max(2 * slope, MIN_PERIOD_S), MAX_PERIOD_S))
        if abs(period / grid.period_s - 1) > 0.2:  # no such jump in one onset: keep the old
            period = grid.period_s
        at = ym + (np.round(xm) - xm) * slope  # a time on an eighth line, near the middle
        line = float(np.round(xm))
        beat_at = (line / 2) % grid.bar_beats
        return Grid(float(at), beat_at, period, grid.bar_beats).moved(now)

    @staticmethod
    def _fits(grid: Grid, t: np.ndarray, w: np.ndarray) -> float:
        """The weighted share of the onsets within ``FIND_TOLERANCE_S`` of the grid's eighth
        lines: how well a grid just found explains what was played."""
        eighth = grid.period_s / 2
        position = (grid.beat + (t - grid.anchor_t) / grid.period_s) * 2
        off = np.abs(position - np.round(position)) * eighth
        on = off <= FIND_TOLERANCE_S
        return float(np.sum(w[on]) / np.sum(w))

    def _learn_bars(self, t: np.ndarray, low: np.ndarray) -> None:
        """The downbeat: the beat of the bar where low, loud onsets on a beat fall most."""
        grid = self._grid
        if grid is None:
            return
        self._bar_weight *= 0.97
        for when, weight in zip(t.tolist(), low.tolist(), strict=True):
            beat = grid.beat_at(when)
            whole = round(beat) % self._bar
            if abs(beat - round(beat)) < 0.15:
                self._bar_weight[whole] += weight
        first = int(np.argmax(self._bar_weight[:self._bar]))
        if first and self._bar_weight[first] > 1.5 * self._bar_weight[0]:
            # the downbeat is elsewhere: renumber the beats so that it is beat 0
            self._grid = Grid(grid.anchor_t, (grid.beat - first) % self._bar,
                              grid.period_s, self._bar)
            self._bar_weight[:self._bar] = np.roll(self._bar_weight[:self._bar], -first)


class LiveBeat:
    """The beat the band plays on, from the first source that has one: the followed clock's
    grid, ``--bpm``, taps, the tracker. ``source`` names it for the status line."""

    def __init__(self, bar_beats: int = 4, bpm: float | None = None, follow: bool = True):
        self.bar_beats = bar_beats
        self.fixed: Grid | None = None
        self._bpm = bpm
        self.clock: Grid | None = None
        self.taps = TapTempo(bar_beats)
        self.tapped: Grid | None = None
        self.tracker = BeatTracker(bar_beats) if follow else None

    def start(self, t: float) -> None:
        """The session starts at ``t``: a fixed --bpm's first downbeat."""
        if self._bpm is not None:
            self.fixed = steady(self._bpm, t, self.bar_beats)

    def grid(self) -> Grid | None:
        for grid in (self.clock, self.fixed, self.tapped):
            if grid is not None:
                return grid
        return self.tracker.grid if self.tracker is not None else None

    @property
    def source(self) -> str:
        if self.clock is not None:
            return "clock"
        if self.fixed is not None:
            return "bpm"
        if self.tapped is not None:
            return "taps"
        if self.tracker is not None and self.tracker.grid is not None:
            return "tracker"
        return "free"

    def heard(self, t: float, velocity: int, pitch: int) -> None:
        """A player's NOTE_ON, kept for the tracker (`analyse`)."""
        if self.tracker is not None:
            self.tracker.hear(t, velocity, pitch)

    def analyse(self) -> bool:
        """The tracker's work on the notes heard since; whether the beat the band plays on
        may have moved."""
        if self.tracker is None or not self.tracker.unheard:
            return False
        changed = self.tracker.analyse()
        return changed and self.clock is None and self.fixed is None and self.tapped is None

    def tap(self, t: float) -> bool:
        grid = self.taps.tap(t)
        if grid is None:
            return False
        self.tapped = grid
        return self.clock is None and self.fixed is None

    def clocked(self, grid: Grid | None) -> bool:
        """The followed clock's grid (None: it stopped or is not known yet)."""
        changed = grid != self.clock
        self.clock = grid
        return changed

    def describe(self, t: float) -> str:
        """``96.0 BPM, beat 3/4 (tracker 0.82)``, or ``no beat``."""
        grid = self.grid()
        if grid is None:
            sure = (f" (tracker {self.tracker.confidence:.2f})" if self.tracker is not None
                    else "")
            return "no beat" + sure
        beat = int(math.floor(grid.beat_at(t))) + 1
        sure = (f" {self.tracker.confidence:.2f}" if self.source == "tracker" else "")
        return f"{grid.bpm:.1f} BPM, beat {beat}/{grid.bar_beats} ({self.source}{sure})"


class Click:
    """``--click``: a wood block on channel 10 on each beat of the band's beat (louder on the
    downbeat), ended 50 ms later; a beat already past by CLICK_LATE_S is not sounded late."""

    def __init__(self) -> None:
        self.next, self.off = 0.0, None  # the next beat to sound, the sounding one's end
        self.last = -math.inf  # the last beat sounded

    def due(self) -> float:
        """When `tick` has something to do next."""
        return self.off if self.off is not None else self.next

    def tick(self, now: float, grid: Grid | None, out) -> None:
        """End the sounding click, sound the beat now due on ``grid`` (None: no beat) through
        ``out`` (`notes_out.OutputNotes`; a vanished port raises). With ``out`` None (the port
        is gone) the beats pass unsounded: the next one is still due when it is."""
        if self.off is not None and now >= self.off:
            self.off = None
            if out is not None:
                out.note_off(CLICK_CHANNEL, CLICK_PITCH)
        if grid is None:
            self.next = now + 0.1
            return
        beat = grid.beat_at(now)
        nearest = round(beat)
        at = now - (beat - nearest) * grid.period_s  # the nearest beat's time
        sound = (at <= now and now - at <= CLICK_LATE_S and at - self.last > grid.period_s / 2
                 and self.off is None and out is not None)
        self.next = at + grid.period_s if at <= now else at  # first: a failed send moves on too
        if sound:
            downbeat = nearest % grid.bar_beats == 0
            out.note_on(CLICK_CHANNEL, CLICK_PITCH, CLICK_ACCENT if downbeat else CLICK_VELOCITY,
                        now, own=False)
            self.off, self.last = now + 0.05, at
