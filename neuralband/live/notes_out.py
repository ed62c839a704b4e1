"""The output note tracker: every note that leaves the instrument goes through here.

It knows what is sounding on which channel and since when, so that nothing is ever left hanging:
a re-struck pitch is released first, a note held past the maximum length can be found and ended,
and `all_off` releases everything on exit, Ctrl-C, SIGTERM, an error or a lost port. A failed
send (the port went away) never raises out of `all_off`: the notes it could not end are reported.
The band's own notes (not the thru echo or the click) are logged on and off as they go out
(``sent``, for the loop to take: its recording and view), whichever path ends them, so a
recording of what left the instrument has no open notes; ``last_sent`` keeps when each pitch last
went out, for the feedback guard.

Every NOTE_OFF goes out a second time `REPEAT_OFF_S` later, unless the pitch sounds again by
then (`repeat_offs`, which the live loops call each turn, and every send too): JACK drops a
whole period of MIDI when a client misses its cycle, and a lost NOTE_OFF left a band note
sounding for 13 s. A second NOTE_OFF for a silent note is harmless to any synth.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

import numpy as np

NOTE_ON, NOTE_OFF, CONTROL = 0x90, 0x80, 0xB0
ALL_NOTES_OFF = 123
REPEAT_OFF_S = 0.04  # a NOTE_OFF goes out again this much later (a lost JACK period or two)


class OutputNotes:
    """Sounding notes per (channel, pitch), with their start times, in front of a raw sender."""

    def __init__(self, send: Callable[[list[int]], None], max_note_s: float = 5.0,
                 clock: Callable[[], float] = time.perf_counter,
                 repeat_off_s: float = REPEAT_OFF_S, log_sent: bool = False):
        self.send = send
        self.max_note_s = max_note_s
        self.clock = clock
        self.repeat_off_s = repeat_off_s  # 0: no second NOTE_OFF
        self._repeats: deque[tuple[float, int, int]] = deque()  # (due, channel, pitch)
        self.log_sent = log_sent  # keep ``sent`` (someone takes it)
        self.sent: deque[tuple[float, list[int]]] = deque()  # (time, message) of own notes
        self.last_sent = np.full((2, 128), -np.inf)  # [off/on, pitch] -> when an own message
        # (or a repeated NOTE_OFF) last went out: a synth's echo of it is no player's note
        self.started = np.full((16, 128), np.inf)  # start time of each sounding note, inf if silent
        self.own = np.zeros((16, 128), dtype=bool)  # whether the sounding note is the band's own
        self.sent_on = 0
        self.sent_off = 0
        self.channels_used: set[int] = set()

    @property
    def sounding(self) -> int:
        """How many notes are sounding now."""
        return int(np.count_nonzero(self.started != np.inf))

    def is_sounding(self, channel: int, pitch: int) -> bool:
        return self.started[channel, pitch] != np.inf

    def note_on(self, channel: int, pitch: int, velocity: int, now: float,
                own: bool = True) -> None:
        """Start a note; a pitch already sounding on the channel is released first. ``own``
        False (the thru echo, the click) keeps the note and its release out of the log."""
        if self.is_sounding(channel, pitch):
            self.note_off(channel, pitch)
        data = [NOTE_ON | channel, pitch, max(1, min(127, velocity))]
        self.send(data)
        self.started[channel, pitch] = now
        self.own[channel, pitch] = own
        self.sent_on += 1
        self.channels_used.add(channel)
        if own:
            self._sent(1, data)
        self.repeat_offs(now)  # any due: a loop kept busy still repeats on time

    def note_off(self, channel: int, pitch: int) -> bool:
        """End a note if it sounds; False (nothing sent) if it does not."""
        if not self.is_sounding(channel, pitch):
            return False
        self.started[channel, pitch] = np.inf  # forgotten first: a failed send must not repeat
        data = [NOTE_OFF | channel, pitch, 0]
        self.send(data)
        self.sent_off += 1
        if self.repeat_off_s > 0:
            now = self.clock()
            self.repeat_offs(now)
            self._repeats.append((now + self.repeat_off_s, channel, pitch))
        if self.own[channel, pitch]:
            self._sent(0, data)
        return True

    def _sent(self, on: int, data: list[int]) -> None:
        """An own message went out: when, for the guard, and (with ``log_sent``) to the log."""
        now = self.clock()
        self.last_sent[on, data[1]] = now
        if self.log_sent:
            self.sent.append((now, data))

    def repeat_offs(self, now: float) -> None:
        """Send the NOTE_OFFs due again by ``now`` (not for a pitch that sounds again: that
        would end the new note); a failed send is left to the port watch."""
        repeats = self._repeats
        while repeats and repeats[0][0] <= now:
            _, channel, pitch = repeats.popleft()
            if not self.is_sounding(channel, pitch):
                data = [NOTE_OFF | channel, pitch, 0]
                try:
                    self.send(data)
                except Exception:
                    repeats.clear()
                    return
                self.last_sent[0, pitch] = self.clock()

    def next_repeat(self) -> float:
        """When the next NOTE_OFF is due again (inf: none)."""
        return self._repeats[0][0] if self._repeats else np.inf

    def overdue(self, now: float) -> list[tuple[int, int]]:
        """(channel, pitch) of notes sounding for longer than the maximum note length."""
        late = np.argwhere(self.started <= now - self.max_note_s)
        return [(int(c), int(p)) for c, p in late]

    def sounding_notes(self) -> list[tuple[int, int]]:
        return [(int(c), int(p)) for c, p in np.argwhere(self.started != np.inf)]

    def all_off(self, again_after_s: float = 0.0) -> int:
        """Release every sounding note; returns how many could not be sent (port gone).

        With ``again_after_s`` the NOTE_OFFs waiting to be repeated (`repeat_offs`) and an All
        Notes Off (CC 123) on every channel used follow that much later (the end of a take: no
        loop will repeat them): a MIDI transport that drops a whole period of messages when a
        client misses its cycle (JACK without real-time scheduling does) still gets the word.
        """
        failed = 0
        for channel, pitch in self.sounding_notes():
            try:
                self.note_off(channel, pitch)
            except Exception:  # the port is gone: nothing more can reach it
                failed += 1
        if again_after_s > 0 and self.channels_used and not failed:
            time.sleep(again_after_s)
            self.repeat_offs(np.inf)  # the repeats not yet due: nothing will send them later
            for channel in sorted(self.channels_used):
                try:
                    self.send([CONTROL | channel, ALL_NOTES_OFF, 0])
                except Exception:
                    break
        return failed

    def panic(self) -> int:
        """Everything off at once (the panic control): every sounding note's NOTE_OFF, then an
        All Notes Off on every channel used, with no wait; how many sends failed."""
        failed = self.all_off()
        for channel in sorted(self.channels_used):
            try:
                self.send([CONTROL | channel, ALL_NOTES_OFF, 0])
            except Exception:
                return failed + 1
        return failed

    def forget(self) -> None:
        """The output vanished and its notes with it: nothing is sounding any more."""
        self.started.fill(np.inf)
        self._repeats.clear()


def echo(out: OutputNotes, channel: int, pitch: int, velocity: int, now: float) -> bool:
    """The player's note to the output (``--thru``): on, or off at velocity 0; False if the
    port failed (it is gone), never raising."""
    try:
        if velocity:
            out.note_on(channel, pitch, velocity, now, own=False)
        else:
            out.note_off(channel, pitch)
    except Exception:
        return False
    return True
