"""The real-time loop both bands run (`LiveLoop`): the MIDI callback's queue, the thread that
absorbs it, the output's notes, the panel's controls, the status line's figures (`Stats`,
`Ring`); the event engine (`engine.Engine`) and the grid engine (`grid_engine.GridEngine`)
supply the band."""

from __future__ import annotations

import math
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from neuralband.live.clock import SPIN_S, Stop, wait_for_input
from neuralband.live.midimap import MidiMap, Source
from neuralband.live.notes_out import NOTE_ON, OutputNotes, echo
from neuralband.live.panel import CONTROLS, INDEX, PLAY_MODES, Panel
from neuralband.live.turns import PlaySettings, Turns
from neuralband.sampling import Rules, Sampler

SWITCH_S = 0.0002  # GIL switch interval while playing
CHECK_EVERY_S = 0.1  # the wall-clock note-length limit is checked this often


class Ring:
    """The last N measurements, preallocated; percentiles on demand."""

    def __init__(self, size: int = 4096):
        self.values = np.zeros(size)
        self.count = 0

    def add(self, value: float) -> None:
        self.values[self.count % len(self.values)] = value
        self.count += 1

    def percentile(self, q: float) -> float:
        n = min(self.count, len(self.values))
        return float(np.percentile(self.values[:n], q)) if n else float("nan")


@dataclass
class Stats:
    """What the status line shows, and what tests and benchmarks check."""

    received: int = 0  # messages the callback queued
    absorbed: int = 0  # note messages turned into events
    ignored: int = 0  # other message types, drums, and echoes of our own output
    echoes: int = 0  # of which caught by the feedback guard
    band_events: int = 0  # events the band committed
    taken_back: int = 0  # proposed waits the player interrupted
    expected: int = 0  # waits drawn again: they ended where the model expected the player
    forced_off: int = 0  # band notes ended by the wall-clock length limit
    late: int = 0  # turns dropped: due more than LATE_NOTE_S ago (the loop was starved)
    controls: int = 0  # messages a MIDI map took for the panel

    def __post_init__(self) -> None:
        self.absorb_s = Ring()  # arrival -> fed to the model
        self.timing_s = Ring()  # band event sent - its scheduled time
        self.step_s = Ring()  # one band event: feed + sample
        self.entropy = Ring()  # of each distribution the band drew from (nats)


class LiveLoop:
    """What both live loops (`Engine`, `gridplay.GridEngine`) share: the MIDI callback's queue,
    the stop flag, the output note tracker with the recording and the feedback guard behind it,
    and what becomes of a player's message once the loop has taken it in."""

    def __init__(self, send: Callable[[list[int]], None], settings: PlaySettings, rules: Rules,
                 clock: Callable[[], float], record: bool):
        self.settings = settings
        self.rules = rules
        self.out = OutputNotes(send, rules.max_note_s, clock=clock, log_sent=True)
        self.clock = clock
        self.stats = Stats()
        self.inbox: deque[tuple[float, list[int]]] = deque()
        self.wake = threading.Event()
        self._stop = Stop()  # a plain flag: safe to raise from a signal handler
        self.output_ok = True  # False while the output port is gone
        self.recording: list[tuple[float, str, list[int]]] | None = [] if record else None
        self.closed_at: float | None = None  # when `close` ended the take (the recording's end)
        self.t0 = 0.0
        self.turns = Turns(settings)
        # The live controls: sources write the panel, the loop applies it once per turn.
        self.panel = Panel(rules.temperature, settings.mode, settings.answer_s)
        self.panel.on_change = self.wake.set
        self.midimap = MidiMap(self.panel, {})
        self._applied = self.panel.values.copy()
        self._panel_seen = self.panel.version
        self._next_check = 0.0  # when the wall-clock note-length limit is next checked
        self.view: Any = None  # a `neuralband.live.view_feed.ViewFeed` while a page may watch
        self.realtime = "off"  # what the loop's thread was granted (`clock.realtime_scheduling`)
        self._ahead_s = 0.0  # what a look ahead has cost lately: it is left out when a deadline
        # is nearer than that (and the spin before it)

    @property
    def stopping(self) -> bool:
        """Whether `stop()` was asked."""
        return self._stop.up

    def run(self, seconds: float | None = None) -> None:
        """Play until `stop()` (or ``seconds``)."""
        for _ in self.running(seconds):
            pass

    def running(self, seconds: float | None = None, every_s: float = math.inf) -> Iterator[float]:
        """Play until `stop()` (or ``seconds``), coming back to the caller every ``every_s``
        between two turns (yielding the time): the session checks its ports and shows its
        status line there, in the loop's own thread. Close it (`contextlib.closing`) if the
        caller may leave early."""
        # The MIDI callback runs in the driver's thread (JACK's process thread) and needs the
        # GIL: a short switch interval keeps it from waiting 5 ms (Python's default) for it.
        switch = sys.getswitchinterval()
        sys.setswitchinterval(SWITCH_S)
        try:
            yield from self._run(seconds, every_s)
        finally:
            sys.setswitchinterval(switch)

    def _run(self, seconds: float | None, every_s: float) -> Iterator[float]:
        """The shell: a turn of the loop's own work, then the caller's when due, then sleep until
        the next deadline or new input."""
        self.start()
        now = self.clock()
        end = np.inf if seconds is None else now + seconds
        back = now + every_s
        while not self.stopping:
            now = self.clock()
            if now >= end:
                break
            self.turn(now)
            now = self.clock()
            if now >= back:
                yield now
                now = self.clock()
                back = now + every_s
            until = min(self._next_deadline(now), self.out.next_repeat(), back, end)
            look = np.inf
            if until - now > SPIN_S + self._ahead_s:  # room to look ahead before the deadline
                t = self.clock()
                look = self._ahead(now)
                self._ahead_s = max(self.clock() - t, 0.9 * self._ahead_s)  # a recent worst
            if look < until:  # only a look ahead is due: sleep to it, no spin
                wait_for_input(look, self.inbox, self.wake, self._stop, self.clock, spin=False)
            else:
                wait_for_input(until, self.inbox, self.wake, self._stop, self.clock)

    def turn(self, now: float) -> None:
        """One turn: the loop's own work (`_turn`), the NOTE_OFFs due again (in case JACK lost a
        period), and what the band sent logged (the recording, the view)."""
        self._turn(now)
        if self.output_ok:
            self.out.repeat_offs(self.clock())
        self._log_sent()

    def close(self) -> int:
        """End the take: every sounding note released (`_close`), what went out logged; how many
        note-offs could not be sent (0 unless the port is gone)."""
        failed = self._close()
        self._log_sent()
        return failed

    def _close(self) -> int:
        raise NotImplementedError  # each loop knows its notes and its clocks

    def start(self) -> None:
        raise NotImplementedError  # each loop opens its own way

    def _turn(self, now: float) -> None:
        raise NotImplementedError  # a stream of events and a clock of ticks work differently

    def _next_deadline(self, now: float) -> float:
        raise NotImplementedError

    def _ahead(self, now: float) -> float:
        """Work done ahead while waiting (none here); when to do it again."""
        return np.inf

    def _check_lengths(self, now: float) -> None:
        """The wall-clock note-length limit, every `CHECK_EVERY_S`: called after the sends, off
        the critical path."""
        if now >= self._next_check:
            self._force_overdue(now)
            self._next_check = now + CHECK_EVERY_S

    def _force_overdue(self, now: float) -> None:
        raise NotImplementedError  # each loop knows which notes are the band's and how to end them

    # --- the callback's side ------------------------------------------------------------------

    def receive(self, t: float, data: list[int]) -> None:
        """MIDI callback target: queue and wake the loop; nothing else."""
        self.inbox.append((t, data))
        self.wake.set()

    def stop(self, from_signal: bool = False) -> None:
        """Ask the loop to end. From a signal handler only the flag is set: the handler runs
        inside the loop's thread, possibly within `Event.wait`, whose lock `set()` would need
        (a self-deadlock); the loop sees the flag within one sleep slice."""
        self._stop.up = True
        if not from_signal:
            self.wake.set()

    # --- the player's messages, in the loop's thread ------------------------------------------

    def map_midi(self, pairs: dict[Source, str]) -> None:
        """Knobs, pads and pedals onto the controls (`neuralband.live.midimap`)."""
        self.midimap = MidiMap(self.panel, pairs)

    def _absorb_inbox(self, until: float = np.inf) -> None:
        while self.inbox and self.inbox[0][0] <= until:
            self._take(*self.inbox.popleft())

    def _take(self, t: float, data: list[int]) -> None:
        """One queued message: the panel's if mapped, dropped if from another channel than
        ``--in-channel``, else the loop's to hear."""
        self.stats.received += 1
        in_channel = self.settings.in_channel
        if self.midimap.handle(data):
            self.stats.controls += 1
        elif in_channel is not None and data and 0x80 <= data[0] < 0xF0 \
                and data[0] & 0x0F != in_channel:
            self.stats.ignored += 1  # another channel's (a second controller, drums)
        else:
            self._absorb(t, data)

    def _absorb(self, t: float, data: list[int]) -> None:
        raise NotImplementedError  # each loop hears the player its own way

    def _our_echo(self, t: float, data: list[int], is_on: bool) -> bool:
        """With ``--feedback-guard``: whether this note repeats one the band just sent (a synth
        that echoes); such a message is counted and dropped."""
        guard = self.settings.feedback_guard_s
        if guard > 0 and t - self.out.last_sent[int(is_on), data[1]] <= guard:
            self.stats.ignored += 1
            self.stats.echoes += 1
            return True
        return False

    def _absorbed(self, t: float, data: list[int], is_on: bool, thru: bool) -> None:
        """The player's message is in: recorded, echoed to the output (``--thru``), counted."""
        if self.recording is not None:
            self.recording.append((t, "player", list(data)))
        view = self.view  # read once: `ViewServer.close` may clear it from another thread
        if thru and view is not None:
            view.note(t - self.t0, False, data[0] & 0x0F, data[1], data[2] if is_on else 0)
        if thru and self.settings.thru and self.output_ok:
            self._thru(data[0] & 0x0F, data[1], data[2] if is_on else 0, t)
        self.stats.absorbed += 1
        self.stats.absorb_s.add(self.clock() - t)

    def _thru(self, channel: int, pitch: int, velocity: int, t: float) -> None:
        if not echo(self.out, channel, pitch, velocity, t):
            self.output_ok = False

    # --- the live controls ---------------------------------------------------------------------

    def _check_panel(self, now: float) -> None:
        """Apply what changed on the panel since the last look: one comparison when nothing did
        (the per-event cost), the control's own action for each value that changed."""
        if self.panel.version == self._panel_seen:
            return
        self._panel_seen = self.panel.version
        values, applied = self.panel.values, self._applied
        for i, c in enumerate(CONTROLS):
            value = float(values[i])
            if value == applied[i] or (math.isnan(value) and math.isnan(applied[i])):
                continue
            applied[i] = value
            self._control(c.name, value, now)

    def _control(self, name: str, value: float, now: float) -> None:
        """One control's new value: the turn-taking ones here, the music's in each loop."""
        if name == "temperature":
            self._sampler().temperature = value
        elif name == "mode":
            self._settings(mode=PLAY_MODES[int(value)])
        elif name == "answer":
            self._answer(value)
        elif name == "mute":
            self.turns.muted = bool(value)
        elif name == "handover":
            self.turns.hand(to_band=value == 1)
        elif name == "panic":
            self._panic(now)
        elif name == "tap":
            self._tap(now)
        else:
            self._steer(name, value, now)

    def _answer(self, value: float) -> None:
        self._settings(answer_s=value)

    def _settings(self, **changes: Any) -> None:
        self.settings = replace(self.settings, **changes)
        self.turns.settings = self.settings

    def _reflect(self, name: str, value: float) -> None:
        """The loop changed a control itself (an ending hands the turn back): the panel shows
        it, and it is not applied again."""
        i = INDEX[name]
        if self.panel.values[i] == self._applied[i]:  # else a source's new value is pending:
            self.panel.values[i] = value  # it stays, differs from applied, and is applied next
        self._applied[i] = value

    def _rest(self) -> None:
        self.turns.rest()
        self._reflect("handover", 0.0)

    def _sampler(self) -> Sampler:
        raise NotImplementedError

    def _tap(self, now: float) -> None:
        """The tap control (a loop that plays on the player's beat takes it)."""

    def _panic(self, now: float) -> None:
        raise NotImplementedError

    def _steer(self, name: str, value: float, now: float) -> None:
        raise NotImplementedError  # density, key, register, end: each loop its own way

    # --- the band's messages ------------------------------------------------------------------

    def _log_sent(self) -> None:
        """What the band sent since the last look (`OutputNotes.sent`), in order, to the
        recording and the view."""
        sent = self.out.sent
        while sent:
            self._band_sent(*sent.popleft())

    def _band_sent(self, t: float, data: list[int]) -> None:
        """A band note message that went out at ``t``, by whichever path (a release on stop
        too): the recording and the view learn of it."""
        if self.recording is not None:
            self.recording.append((t, "band", data))
        view = self.view
        if view is not None:
            view.note(t - self.t0, True, data[0] & 0x0F, data[1],
                      data[2] if data[0] & 0xF0 == NOTE_ON else 0)

    # --- what the view shows (`neuralband.live.view`), read from its own thread -----------------

    def voice_names(self) -> dict[int, str]:
        """The band's output channels (1-16) and what each plays."""
        return {self.settings.channel + 1: "band"}

    def voice_name(self, channel: int) -> str:
        return self.voice_names().get(channel + 1, "band")

    def plan(self) -> list[dict]:
        """The band's next events, drawn but not yet sent: [{type, pitch, voice, t}]."""
        return []
