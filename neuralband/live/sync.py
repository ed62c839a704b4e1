"""Tempo sync: following an external MIDI clock, and sending one.

A MIDI clock sends 24 pulses (0xF8) per quarter note, with Start (0xFA: from the top at the next
pulse), Stop (0xFC), Continue (0xFB) and Song Position (0xF2: where Continue resumes, in
sixteenths). `ClockFollower` turns those messages, timestamped on arrival, into grid lines (a
sixteenth every 6 pulses: the grid model's step) and a tempo; it does no I/O and keeps no thread,
so the live loops drive it from the messages they already take in. `ClockSender` is the other
way round: pulses at the band's own tempo, for a drum machine to follow.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from neuralband.live.beat import Grid

PPQN = 24  # MIDI clock pulses per quarter note
CLOCK, START, CONTINUE, STOP, SONG_POSITION = 0xF8, 0xFA, 0xFB, 0xFC, 0xF2
TEMPO_PULSES = 6  # the tempo is the mean of the last 6 pulse intervals: a sixteenth's worth
PULSE_S_RANGE = (60 / (300 * PPQN), 60 / (20 * PPQN))  # 300 down to 20 bpm
MAX_GAP_PULSES = 4  # a longer gap is a pause in the clock, not pulses lost
SETTLE_PULSES = 4  # after a long gap, this many pulses on time say its pulses were lost
COPY_WITHIN = 0.35  # a pulse this soon (in intervals) after the last is a copy of it


class ClockFollower:
    """An external clock's messages in; grid lines (step index, time) and the tempo out.

    Until a Start, Continue or Stop is heard, pulses run the grid from the first one (many
    devices send a clock all the time and no Start); after a Stop only Start or Continue runs it
    again. ``lines`` holds the grid lines not yet taken by the loop, oldest first.

    An overloaded JACK graph loses a client's period of MIDI now and then, and may hand on a
    late client's stale buffer again (a pulse twice); either would put every later line a pulse
    off. So a pulse within `COPY_WITHIN` of an interval after the last is a copy and counts for
    nothing; a pulse after a gap of two intervals or more counts for the gap, rounded (two after
    a gap of two: one was lost), and the pulses after it settle that: one whose time since the
    pulse before the gap holds fewer intervals than were counted counts for nothing (the long
    one was only late, or a stall held several back and delivers them at once), and a few on
    time confirm the loss. Jitter of under half an interval rounds away. The interval is the
    mean of the last few, each divided by its count, once there are a few; a gap of more than
    `MAX_GAP_PULSES` is a pause, counted once.
    """

    def __init__(self, steps_per_beat: int = 4):
        if PPQN % steps_per_beat:
            raise ValueError(f"a MIDI clock's {PPQN} pulses do not divide into "
                             f"{steps_per_beat} steps a beat")
        self.pulses_per_step = PPQN // steps_per_beat
        self.running = False
        self.stopped = False  # a Stop was heard: pulses alone do not run the grid
        self.pulse = 0  # the index of the next pulse while running
        self.lines: deque[tuple[int, float]] = deque()
        self.last_line: tuple[int, float] | None = None
        self._intervals = np.zeros(TEMPO_PULSES)  # the last intervals, each per pulse
        self._count = 0  # intervals recorded
        self._last_t: float | None = None
        self._extra = 0  # pulses counted for a gap and not yet settled by the ones after it
        self._anchor_t = 0.0  # the pulse before that gap
        self._counted = 0  # pulses counted since the anchor
        self._after = 0  # pulses heard since the gap
        self.lost = 0  # pulses counted for gaps (the status line shows them)

    @property
    def pulse_s(self) -> float | None:
        """Seconds per pulse (mean of the last few intervals); None before two pulses."""
        n = min(self._count, len(self._intervals))
        if n < 1:
            return None
        low, high = PULSE_S_RANGE
        return float(min(high, max(low, self._intervals[:n].mean())))

    @property
    def bpm(self) -> float | None:
        p = self.pulse_s
        return None if p is None or p <= 0 else 60.0 / (p * PPQN)

    def message(self, t: float, data: list[int]) -> str | None:
        """One message at ``t`` (seconds): "line" (a grid line was added), "start", "stop",
        "continue", "position", "pulse", or None (not a clock message)."""
        status = data[0] if data else 0
        if status == CLOCK:
            count = self._pulses_in(t)
            if not self.running:
                if self.stopped:
                    return "pulse"
                self.running = True  # a clock with no Start: run from here
            first, self.pulse = self.pulse, self.pulse + count
            event = "pulse"
            for index in range(first, self.pulse):  # a line, even if its own pulse was lost
                if index % self.pulses_per_step == 0:
                    line = (index // self.pulses_per_step, t)
                    self.lines.append(line)
                    self.last_line = line
                    event = "line"
            return event
        if status == START:
            self.running, self.stopped, self.pulse = True, False, 0
            self._restart()
            self.lines.clear()
            self.last_line = None
            return "start"
        if status == CONTINUE:
            self.running, self.stopped = True, False
            self._restart()
            return "continue"
        if status == STOP:
            self.running, self.stopped = False, True
            self.lines.clear()
            return "stop"
        if status == SONG_POSITION and len(data) >= 3:
            sixteenths = data[1] | (data[2] << 7)  # MIDI beats: 6 pulses each
            self.pulse = sixteenths * 6
            return "position"
        return None

    def _restart(self) -> None:
        """Start or Continue: the tempo may have changed while stopped; measure it afresh."""
        self._last_t = None
        self._count = self._extra = 0

    def _pulses_in(self, t: float) -> int:
        """How many pulses this one stands for (see the class): its gap in intervals."""
        if self._last_t is None:
            self._last_t = t
            return 1
        gap = t - self._last_t  # since the last pulse that counted: a copy does not shorten it
        pulse_s = self.pulse_s
        if pulse_s is None or self._count < 3:  # no tempo to measure gaps by yet
            count = 1
        elif self._extra:
            count = self._settle(t, gap, pulse_s)
        else:
            count = max(1, round(gap / pulse_s))
            if gap < COPY_WITHIN * pulse_s:
                return 0  # a copy of the last pulse, not a new one
            if count > MAX_GAP_PULSES:
                self._last_t = t
                return 1  # the clock paused: one pulse, and the gap says nothing of the tempo
            if count > 1:  # owed until the pulses after it say whether they were lost
                self._extra, self._anchor_t, self._counted = count - 1, t - gap, count
                self._after = 0
                self.lost += count - 1
        self._last_t = t
        if count:
            self._intervals[self._count % len(self._intervals)] = gap / count
            self._count += 1
        return count

    def _settle(self, t: float, gap: float, pulse_s: float) -> int:
        """A pulse after a long gap: 0 where the time since the pulse before the gap holds fewer
        intervals than were counted (the long one was late, a stall held this one back, or it is
        a copy), 1 where it holds them (pulses were lost); a few on time settle what is owed."""
        if round(gap / pulse_s) > 1:
            # Long twice running: the tempo fell (to 60 from 120, say), no pulses were lost.
            # The extra count is taken back and the tempo starts afresh.
            if self.running:
                self.pulse -= self._extra
            self.lost -= self._extra
            self._intervals.fill(gap)
            self._count = len(self._intervals)
            self._extra = 0
            return 1
        self._after += 1
        if self._counted + 1 > round((t - self._anchor_t) / pulse_s):
            self._extra -= 1
            self.lost -= 1
            return 0
        self._counted += 1
        if self._after >= SETTLE_PULSES:
            self._extra = 0
        return 1

    def position(self, t: float) -> float:
        """Where ``t`` falls, in grid steps, from the last line and the tempo (for rounding a
        player's onset to its step)."""
        if self.last_line is None:
            return 0.0
        step, at = self.last_line
        pulse_s = self.pulse_s
        if pulse_s is None or pulse_s <= 0:
            return float(step)
        return step + (t - at) / (pulse_s * self.pulses_per_step)


class ClockSender:
    """Pulses at a steady tempo from ``t0``: `due` says which are due; the loop sends them."""

    def __init__(self, t0: float, step_s: float, steps_per_beat: int = 4):
        self.t0 = t0
        self.pulse_s = step_s * steps_per_beat / PPQN
        self.next = 0

    def next_time(self) -> float:
        return self.t0 + self.next * self.pulse_s

    def due(self, now: float) -> int:
        """How many pulses to send now (one, normally; none if not yet). A loop that fell more
        than a beat behind skips ahead instead of sending a burst."""
        if now < self.next_time():
            return 0
        behind = int((now - self.t0) / self.pulse_s) - self.next
        if behind > PPQN:
            self.next += behind
        self.next += 1
        return 1


class LinkFollower:
    """An Ableton Link session's beat (aalink, an optional extra) as grid lines: the band joins
    the session, and a thread of its own waits for each sixteenth of the session's beat and
    queues it as a line, so the band's grid falls on Link's beat phase (quantum 4: a bar of the
    session is a bar of the grid). The same interface as `ClockFollower` for the grid engine."""

    def __init__(self, bpm: float, wake, steps_per_beat: int = 4, quantum: float = 4.0):
        try:
            import aalink  # noqa: F401
        except ImportError:
            raise ValueError("--link needs aalink: pip install 'neuralband[link]'") from None
        self.pulses_per_step = PPQN // steps_per_beat
        self.steps_per_beat = steps_per_beat
        self.quantum = quantum
        self.lines: deque[tuple[int, float]] = deque()
        self.last_line: tuple[int, float] | None = None
        self.running = True
        self.stopped = False
        self.peers = 0
        self.lost = 0  # (a MIDI clock's; a session loses nothing)
        self._bpm = float(bpm)
        self._wake = wake
        self._closing = False
        self._ready = None
        self._thread = None

    @property
    def bpm(self) -> float:
        return self._bpm

    @property
    def pulse_s(self) -> float:
        return 60.0 / (self._bpm * PPQN)

    def start(self) -> None:
        """Join the session (a thread with its own asyncio loop)."""
        import threading

        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="neuralband-link", daemon=True)
        self._thread.start()
        self._ready.wait(timeout=5)

    def close(self) -> None:
        self._closing = True
        if self._thread is not None:
            self._thread.join(timeout=2)

    def message(self, t: float, data: list[int]) -> str | None:
        return None  # no MIDI clock: the session is the clock

    def position(self, t: float) -> float:
        """Where ``t`` falls, in grid steps, from the last line and the session's tempo."""
        if self.last_line is None:
            return 0.0
        step, at = self.last_line
        return step + (t - at) * self._bpm / 60.0 * self.steps_per_beat

    def _serve(self) -> None:
        import asyncio
        import time
        import warnings

        async def follow() -> None:
            from aalink import Link

            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)  # aalink's loop argument
                link = Link(self._bpm, asyncio.get_running_loop())
            link.quantum = self.quantum
            link.enabled = True
            self._ready.set()
            step = 1.0 / self.steps_per_beat
            try:
                while not self._closing:
                    try:
                        beat = await asyncio.wait_for(link.sync(step), timeout=1.0)
                    except asyncio.TimeoutError:
                        continue
                    now = time.perf_counter()
                    self._bpm, self.peers = float(link.tempo), int(link.num_peers)
                    line = (int(round(beat * self.steps_per_beat)), now)
                    self.last_line = line  # first: the engine reads it once a line is queued
                    self.lines.append(line)
                    self._wake()
            finally:
                link.enabled = False

        asyncio.run(follow())


def beat_grid(follower: ClockFollower | LinkFollower, bar_beats: int) -> Grid | None:
    """The followed clock's beat at its last sixteenth, bars counted from its Start (None: no
    line or no tempo yet)."""
    bpm = follower.bpm
    if follower.last_line is None or not bpm:
        return None
    step, at = follower.last_line
    per_beat = PPQN // follower.pulses_per_step  # its sixteenths a beat
    return Grid(at, (step / per_beat) % bar_beats, 60.0 / bpm, bar_beats)
