"""The real-time loop: the player's notes go into the model as they happen, the band's come out.

Two threads only. The MIDI callback calls `Engine.receive`, which timestamps nothing itself (the
port did), appends to a deque and wakes the engine: no parsing, no inference. Everything else runs
in the engine thread (`Engine.run`), one pass at a time:

1. absorb every queued message: it becomes events at its real arrival time (the elapsed time as
   TIME_SHIFTs, then VELOCITY / NOTE_ON / NOTE_OFF, by `encoders.live.LiveEncoder`) fed to the
   model one by one;
2. if the mode lets the band play, make sure it has a proposal: the next event sampled from the
   model under the grammar of `sampling.NoteTracker`. A note or velocity event is played at once.
   A TIME_SHIFT is a proposed wait: the state is snapshotted, the shift fed on trial and the event
   after it sampled ahead, so it can go out the moment the wait ends. Player input during the
   wait takes the proposal back (restore the snapshot), feeds the real elapsed time and the
   player's event, and the model proposes again;
3. sleep until the next deadline or input, then spin for the last stretch (`time.sleep` alone
   drifts by a millisecond or more).

Player and band share one token stream, the way the model was trained on one performance: the
grammar keeps the band off the player's held pitches and lets it end only its own notes. With a
voice-packed model (`encoders.voices`, through `voicing.Voicing`) the player's events are the lead
voice's and the band samples only its own voices, each on its own channel from ``channel`` up.
Every outgoing note passes through `notes.OutputNotes`, so `close` leaves nothing sounding.
"""

from __future__ import annotations

import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from encoders.live import LiveEncoder
from encoders.performance import DEFAULT_SETTINGS
from neuralband.clock import wait_for_input
from neuralband.notes import NOTE_ON, OutputNotes, echo
from neuralband.runtime import Stepper
from neuralband.sampling import Rules, Sampler
from neuralband.steering import ControlChoice, steer
from neuralband.voicing import Voicing, from_info

MODES = ("call", "solo", "duet")
SWITCH_S = 0.0002  # GIL switch interval while playing
MAX_CHAIN = 16  # events sampled ahead after a wait
LATE_S = 0.02  # a wait that ended this late re-times the stream to the clock
CHECK_EVERY_S = 0.1  # the wall-clock note-length limit is checked this often
START_STEPS = 10  # the stream opens with TIME_SHIFT(10): "nothing yet", as `generate` starts


@dataclass(frozen=True)
class PlaySettings:
    """How the band takes turns with the player."""

    mode: str = "call"
    wait_s: float = 1.0  # call: silence before the band answers; duet: how long it plays on
    answer_s: float = 4.0  # call: the longest answer
    channel: int = 0  # the band's MIDI channel (0-based); band voice k of a voiced model: +k-1
    thru: bool = False  # echo the player's notes to the output
    feedback_guard_s: float = 0.0  # ignore input equal to our own output this recent (0: off)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if self.wait_s < 0 or self.answer_s <= 0:
            raise ValueError("wait must be >= 0 and answer > 0 seconds")
        if not 0 <= self.channel <= 15:
            raise ValueError(f"channel must be 1..16, got {self.channel + 1}")


class Turns:
    """Whose turn it is, from the mode and the player's note times alone (the event engine and
    the grid engine share it): solo always the band's; duet while the player holds a note or
    played within ``wait_s``; call an answer of at most ``answer_s`` after ``wait_s`` of
    silence, over as soon as the player plays again."""

    def __init__(self, settings: PlaySettings):
        self.settings = settings
        self.last_player_s = -np.inf  # time of the player's last note message
        self.answer_start: float | None = None
        self.played_since_answer = False

    def heard(self, t: float, note_on: bool) -> None:
        """A note message of the player's at ``t``."""
        self.last_player_s = t
        if note_on:
            self.played_since_answer = True
            if self.settings.mode == "call":
                self.answer_start = None  # the player comes in: the answer is over

    def player_active(self, now: float, holding: bool) -> bool:
        return holding or now - self.last_player_s < self.settings.wait_s

    def band_may_play(self, now: float, holding: bool) -> bool:
        """Whether the band plays at ``now`` (``holding``: the player holds a note)."""
        mode = self.settings.mode
        if mode == "solo":
            return True
        if mode == "duet":
            return self.player_active(now, holding)
        if self.answer_start is not None:
            if now - self.answer_start < self.settings.answer_s:
                return True
            self.answer_start = None
            self.played_since_answer = False
            return False
        if self.played_since_answer and not self.player_active(now, holding):
            self.answer_start = now
            return True
        return False

    def next_change(self) -> float:
        """When `band_may_play` may next change with no new input (inf: not before input)."""
        s = self.settings
        if s.mode == "call":
            if self.answer_start is not None:
                return self.answer_start + s.answer_s
            if self.played_since_answer:
                return self.last_player_s + s.wait_s
        elif s.mode == "duet":
            return self.last_player_s + s.wait_s
        return np.inf


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
    late: int = 0  # waits that ended more than LATE_S late (the engine was starved)

    def __post_init__(self) -> None:
        self.absorb_s = Ring()  # arrival -> fed to the model
        self.timing_s = Ring()  # band event sent - its scheduled time
        self.step_s = Ring()  # one band event: feed + sample


class LiveLoop:
    """What both live loops (`Engine`, `gridplay.GridEngine`) share: the MIDI callback's queue,
    the stop flag, the output note tracker with the recording and the feedback guard behind it,
    and what becomes of a player's message once the loop has taken it in."""

    def __init__(self, send: Callable[[list[int]], None], settings: PlaySettings, rules: Rules,
                 clock: Callable[[], float], record: bool):
        self.settings = settings
        self.rules = rules
        self.out = OutputNotes(send, rules.max_note_s, on_sent=self._band_sent, clock=clock,
                               on_repeat=self._repeat_sent)
        self.clock = clock
        self.stats = Stats()
        self.inbox: deque[tuple[float, list[int]]] = deque()
        self.wake = threading.Event()
        self.stopping = False  # a plain flag: safe to set from a signal handler
        self.output_ok = True  # False while the output port is gone
        self.recording: list[tuple[float, str, list[int]]] | None = [] if record else None
        self.closed_at: float | None = None  # when `close` ended the take (the recording's end)
        self.t0 = 0.0
        self.turns = Turns(settings)
        self._stopped = lambda: self.stopping
        self._last_sent = np.full((2, 128), -np.inf)  # feedback guard: [off/on, pitch] -> time
        self._next_check = 0.0  # when the wall-clock note-length limit is next checked

    def run(self, seconds: float | None = None, poll: Callable[[], None] | None = None,
            poll_every_s: float = 0.5, status: Callable[[Any], None] | None = None,
            status_every_s: float = 1.0) -> None:
        """Play until `stop()` (or ``seconds``); `poll` checks the ports now and then, `status`
        is handed the loop every ``status_every_s``."""
        # The MIDI callback runs in the driver's thread (JACK's process thread) and needs the
        # GIL: a short switch interval keeps it from waiting 5 ms (Python's default) for it.
        switch = sys.getswitchinterval()
        sys.setswitchinterval(SWITCH_S)
        try:
            self._run(seconds, poll, poll_every_s, status, status_every_s)
        finally:
            sys.setswitchinterval(switch)

    def _run(self, seconds: float | None, poll: Callable[[], None] | None, poll_every_s: float,
             status: Callable[[Any], None] | None, status_every_s: float) -> None:
        """The shell: a turn of the loop's own work, then the ports and the status line when
        due, then sleep until the next deadline or new input."""
        self.start()
        now = self.clock()
        end = np.inf if seconds is None else now + seconds
        next_poll, next_status = now + poll_every_s, now + status_every_s
        while not self.stopping:
            now = self.clock()
            if now >= end:
                break
            self._turn(now)
            now = self.clock()
            if self.output_ok:
                self.out.repeat_offs(now)  # NOTE_OFFs again, in case JACK lost a period
            if poll is not None and now >= next_poll:
                poll()
                next_poll = now + poll_every_s
            if status is not None and now >= next_status:
                status(self)
                next_status = now + status_every_s
            until = min(self._next_deadline(now), self.out.next_repeat(),
                        next_poll if poll else np.inf, next_status if status else np.inf, end)
            wait_for_input(until, self.inbox, self.wake, self._stopped, self.clock)

    def start(self) -> None:
        raise NotImplementedError  # each loop opens its own way

    def _turn(self, now: float) -> None:
        raise NotImplementedError  # a stream of events and a clock of ticks work differently

    def _next_deadline(self, now: float) -> float:
        raise NotImplementedError

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
        self.stopping = True
        if not from_signal:
            self.wake.set()

    # --- the player's messages, in the loop's thread ------------------------------------------

    def _absorb_inbox(self, until: float = np.inf) -> None:
        while self.inbox and self.inbox[0][0] <= until:
            t, data = self.inbox.popleft()
            self.stats.received += 1
            self._absorb(t, data)

    def _absorb(self, t: float, data: list[int]) -> None:
        raise NotImplementedError  # each loop hears the player its own way

    def _our_echo(self, t: float, data: list[int], is_on: bool) -> bool:
        """With ``--feedback-guard``: whether this note repeats one the band just sent (a synth
        that echoes); such a message is counted and dropped."""
        guard = self.settings.feedback_guard_s
        if guard > 0 and t - self._last_sent[int(is_on), data[1]] <= guard:
            self.stats.ignored += 1
            self.stats.echoes += 1
            return True
        return False

    def _absorbed(self, t: float, data: list[int], is_on: bool, thru: bool) -> None:
        """The player's message is in: recorded, echoed to the output (``--thru``), counted."""
        if self.recording is not None:
            self.recording.append((t, "player", list(data)))
        if thru and self.settings.thru and self.output_ok:
            self._thru(data[0] & 0x0F, data[1], data[2] if is_on else 0, t)
        self.stats.absorbed += 1
        self.stats.absorb_s.add(self.clock() - t)

    def _thru(self, channel: int, pitch: int, velocity: int, t: float) -> None:
        if not echo(self.out, channel, pitch, velocity, t):
            self.output_ok = False

    # --- the band's messages ------------------------------------------------------------------

    def _repeat_sent(self, data: list[int]) -> None:
        """A NOTE_OFF went out again (`OutputNotes.repeat_offs`): the feedback guard learns of
        it; the recording already holds the note's end."""
        self._last_sent[0, data[1]] = self.clock()

    def _band_sent(self, data: list[int]) -> float:
        """A band note message went out, by whichever path (a release on stop too): the feedback
        guard and the recording learn of it. Returns when."""
        now = self.clock()
        self._last_sent[int(data[0] & 0xF0 == NOTE_ON), data[1]] = now
        if self.recording is not None:
            self.recording.append((now, "band", data))
        return now


class Engine(LiveLoop):
    """The instrument's state and loop; ports, signals and printing live in `neuralband.play`."""

    def __init__(self, stepper: Stepper, send: Callable[[list[int]], None],
                 settings: PlaySettings | None = None, rules: Rules | None = None,
                 seed: int | None = None, clock: Callable[[], float] = time.perf_counter,
                 record: bool = False, keep_tokens: bool = False,
                 controls: ControlChoice | None = None):
        if stepper.batch != 1:
            raise ValueError("the live engine runs one stream")
        settings = settings or PlaySettings()
        rules = rules or Rules()
        super().__init__(send, settings, rules, clock, record)
        self.stepper = stepper
        es = stepper.info.encoder if stepper.info else DEFAULT_SETTINGS
        self.voicing = v = from_info(stepper.info) if stepper.info else Voicing(es)
        self.enc = LiveEncoder(es)
        self.tracker = v.tracker(rules)
        self.sampler = Sampler(rules, seed, v.vocab_size)
        self.tokens: list[int] | None = [] if keep_tokens else None  # the committed stream
        # A conditioned model's key and density: fixed, free, or following the player's notes.
        self.steering = steer(stepper, controls)
        # With keep_tokens, each change of the controls: (tokens committed before it, vector),
        # so the committed stream replays exactly into a fresh model.
        self.control_changes: list[tuple[int, np.ndarray]] = []
        self._follow = self.steering is not None and not self.steering.choice.fixed
        # Token layout shortcuts: model token -> voice, Performance token, TIME_SHIFT steps.
        self._vel, self._off = es.velocity, es.note_off
        self._sps = es.steps_per_second
        self._voice, self._base = v.voice_list, v.base_list
        self._steps = v.shift_steps.tolist()
        self._player = v.player.tolist()
        # Each band voice's channel, and the channel's voice.
        self._channel = {voice: (settings.channel + max(voice - 1, 0)) % 16
                         for voice in v.band_voices}
        self._band_voice = {c: voice for voice, c in self._channel.items()}
        # Proposal state: a TIME_SHIFT fed on trial, and the event sampled after it.
        self._snap = stepper.snapshot()
        self._mark: tuple | None = None  # the grammar's saved state while a wait is on trial
        self._chain: list[int] = []  # the events after the wait, fed on trial, sent at its end
        self._deadline_step = 0
        self._next: int | None = None  # sampled from the current (committed or trial) state
        self._velocity = [100] * 16  # each band voice's current MIDI velocity
        self._trial_shift = 0
        self._expects_player = False  # the wait on trial ends where the model expects the player
        # Only a duet's band waits for a player it expects; alone (solo, a call's answer) it
        # plays on its own clock.
        self._duet = v.voiced and settings.mode == "duet"
        self._mask = np.empty(v.vocab_size, bool)
        self._lead = v.lead_list
        self._longest = es.max_shift_steps
        self._on_time: float | None = None  # when the band's current step was due

    # --- the engine thread --------------------------------------------------------------------

    def start(self) -> None:
        """Open the stream: reset the model and feed "nothing yet", dated so that it ends now."""
        self.stepper.reset()
        if self.steering is not None:
            self._set_controls(self.steering.vector)
        self.enc = LiveEncoder(self.enc.settings)
        self.tracker = self.voicing.tracker(self.rules)
        self._feed_shared(self.voicing.shift(START_STEPS))
        self.t0 = self.clock() - START_STEPS / self._sps
        self._next_check = self.clock()

    def _turn(self, now: float) -> None:
        """The player's messages in, then the band plays (or stops, or takes a wait back), then
        the note-length limit."""
        self._absorb_inbox()
        if self._band_may_play(now):
            self._play(now)
        elif self.tracker.sounding:
            self._band_stops(now)
        else:
            self._take_back()
        self._check_lengths(self.clock())

    def close(self) -> int:
        """Release every sounding note; how many could not be sent (0 unless the port is gone)."""
        self.closed_at = self.clock()
        self._take_back()  # a wait still on trial never happened
        failed = self.out.all_off(again_after_s=0.01) if self.output_ok else 0
        if not self.output_ok:
            self.out.forget()
        return failed

    def player_gone(self) -> None:
        """The input vanished: the player's held notes end now, in the stream and at the output."""
        self._take_back()
        for tok in self.enc.close(self.clock() - self.t0):
            self._feed(self._player[tok], own=False)
        for channel, pitch in self.out.sounding_notes():  # the thru echo of held keys
            if self._band_off(channel, pitch) is None:
                self._thru(channel, pitch, 0, self.clock())

    # --- input ----------------------------------------------------------------------------------

    def _absorb(self, t: float, data: list[int]) -> None:
        status = data[0] & 0xF0 if data else 0
        if status not in (0x80, 0x90, 0xB0) or len(data) < 3:
            self.stats.ignored += 1
            return
        is_on = status == 0x90 and data[2] > 0
        channel = data[0] & 0x0F
        if status != 0xB0 and self._our_echo(t, data, is_on):
            return
        self._take_back()
        seconds = t - self.t0
        if status == 0xB0:
            tokens = self.enc.control_change(seconds, data[1], data[2], channel)
        elif is_on:
            tokens = self.enc.note_on(seconds, data[1], data[2], channel)
        else:
            tokens = self.enc.note_off(seconds, data[1], channel)
        if status != 0xB0:
            self.turns.heard(t, is_on)
        if is_on and self._follow:  # the band keeps to the key and pace the player sets
            self._set_controls(self.steering.heard(seconds, data[1]))
        for tok in tokens:
            self._feed(self._player[tok], own=False)
        self._absorbed(t, data, is_on, thru=status != 0xB0)

    def _set_controls(self, vector: np.ndarray) -> None:
        self.stepper.set_controls(vector)
        if self.tokens is not None:
            self.control_changes.append((len(self.tokens), vector.copy()))

    # --- turn-taking ------------------------------------------------------------------------------

    def _band_may_play(self, now: float) -> bool:
        return self.output_ok and self.turns.band_may_play(now, bool(self.enc.open_pitches))

    def _band_stops(self, now: float) -> None:
        """The band's turn is over: end its notes, in the stream and at the output."""
        self._take_back()
        self._catch_up(now)
        for tok in self.tracker.closing_tokens():
            self._commit(tok, None)

    # --- the band's events ----------------------------------------------------------------------

    def _feed(self, tok: int, own: bool = True) -> None:
        """One committed event into the model and the grammar (and the kept stream)."""
        self.stepper.feed(tok)
        self.tracker.update(tok, own)
        if self.tokens is not None:
            self.tokens.append(tok)

    def _feed_shared(self, tok: int) -> None:
        """A TIME_SHIFT (or other shared event) both parts hear."""
        self._feed(tok)
        self._observe(tok)

    def _observe(self, tok: int) -> None:
        """Tell the player's encoder about a band event: the time it moves, and in a shared
        (plain) stream its notes and velocity too; a band voice's events are its own."""
        if self._voice[tok] < 0 or not self.voicing.voiced:
            self.enc.observe(self._base[tok])

    def _catch_up(self, now: float) -> None:
        """Feed the time that passed since the stream's last event (no proposal on trial)."""
        for tok in self.enc.advance(now - self.t0):
            self._feed(self._player[tok], own=False)

    def _sample(self, expect_player: bool = False) -> int:
        """The band's next event from the model's current state; with ``expect_player`` (a
        duet's draw after a wait on trial) the player's events may be drawn too: the model
        expects the player then (`Voicing.band_mask`)."""
        allowed = self.tracker.allowed()
        if expect_player:
            allowed = self.voicing.band_mask(allowed, self._mask, expect_lead=True)
        return self.sampler.sample(self.stepper.logits()[0], allowed, self.tracker.endings())

    def _play(self, now: float) -> None:
        """Perform due events and keep one proposal ready."""
        if self._mark is None and self._next is None:
            self._catch_up(now)
            self._on_time = None  # the turn starts now: no schedule to keep
            t = self.clock()
            self._next = self._sample()
            self.stats.step_s.add(self.clock() - t)
        while True:
            if self._mark is not None:  # a wait on trial: has it ended?
                if self.clock() - self.t0 < self._deadline_step / self._sps:
                    return
                if self._expects_player and self._wait_longer():
                    continue
                self._mark = None  # the wait happened: it and its chain are committed
                self._on_time = self.t0 + self._deadline_step / self._sps
                for tok in [self._trial_shift, *self._chain]:
                    self._send(tok, self._on_time)
                    self._observe(tok)
                    if self.tokens is not None:
                        self.tokens.append(tok)
                    self.stats.band_events += 1
                self._chain.clear()
                now = self.clock()
                if now - self._on_time > LATE_S:
                    # Fallen behind (CPU starved): the stream follows real time, not the plan.
                    self._catch_up(now)
                    self._on_time = None
                    self._next = self._sample()
                    self.stats.late += 1
                if self.inbox:
                    return
            tok = self._next
            if tok is None:
                return
            t = self.clock()
            if self._voice[tok] < 0:
                self._propose_wait(tok)
                self.stats.step_s.add(self.clock() - t)
                continue
            self._commit(tok, self._on_time)
            self._next = self._sample()
            self.stats.step_s.add(self.clock() - t)
            if self.inbox:
                return

    def _propose_wait(self, shift: int) -> None:
        """Feed a sampled TIME_SHIFT on trial, then sample on until the next TIME_SHIFT: the
        events that follow the wait (a chord, say) are ready to go out together at its end."""
        self.stepper.snapshot(into=self._snap)
        self._mark = self.tracker.save()
        self._trial_shift = shift
        self._deadline_step = self.enc.step + self._steps[shift]
        self.stepper.feed(shift)
        self.tracker.update(shift)
        self._next = self._sample(expect_player=self._duet)
        self._expects_player = self._lead[self._next]
        if self._expects_player:  # the model expects the player then: the band has nothing
            self._next = None
            return
        while self._voice[self._next] >= 0 and len(self._chain) < MAX_CHAIN:
            self.stepper.feed(self._next)
            self.tracker.update(self._next)
            self._chain.append(self._next)
            self._next = self._sample()

    def _wait_longer(self) -> bool:
        """The wait on trial ended where the model expected the player, who did not come: take
        it back and draw again from the times after it (`Voicing.band_mask`); False where the
        wait was already the longest the grammar allows (it is then committed as it is)."""
        self._expects_player = False
        after = self._deadline_step - self.enc.step
        if after >= self._longest:  # a second of nothing: the encoding's longest wait, kept
            self._next = self._sample()  # what the band does at its end
            return False
        self.tracker.restore(self._mark)
        later = self.voicing.band_mask(self.tracker.allowed(), self._mask, after=after)
        if not later.any():  # a note reaches its cap at the trial's end: the wait happened
            self.tracker.update(self._trial_shift)  # back to the trial's end (the model is)
            self._next = self._sample()  # the note's NOTE_OFF, the grammar says
            return False
        self.stepper.restore(self._snap)
        self._mark = None
        self.stats.expected += 1
        self._next = self.sampler.sample(self.stepper.logits()[0], later, self.tracker.endings())
        return True

    def _commit(self, tok: int, scheduled: float | None) -> None:
        """A band event happens now: out of the port first, then into the stream."""
        self._send(tok, scheduled)
        self._feed(tok)
        self._observe(tok)
        self.stats.band_events += 1

    def _send(self, tok: int, scheduled: float | None) -> None:
        voice, base = self._voice[tok], self._base[tok]
        if voice < 0:
            return
        if base >= self._vel:
            self._velocity[voice] = int(self.enc.settings.bin_to_velocity(base - self._vel + 1))
            return
        ch = self._channel[voice]
        pitch = base % 128
        now = self.clock()
        try:
            if base < self._off:
                self.out.note_on(ch, pitch, self._velocity[voice], now)
            elif not self.out.note_off(ch, pitch):
                return
        except Exception:
            self.output_ok = False  # the port went away mid-send; `poll` will say so
            return
        if scheduled is not None:  # events after one of the band's own waits keep its clock
            self.stats.timing_s.add(now - scheduled)

    def _take_back(self) -> None:
        """Undo a wait on trial (the player came in first), or drop a sampled-ahead event."""
        if self._mark is not None:
            self.stepper.restore(self._snap)
            self.tracker.restore(self._mark)
            self._mark = None
            self._chain.clear()
            self.stats.taken_back += 1
        self._next = None
        self._expects_player = False

    def _force_overdue(self, now: float) -> None:
        """Belt and braces: a band note held past the limit by the wall clock is ended."""
        late = [(c, p) for c, p in self.out.overdue(now) if c in self._band_voice]
        if not late or not self.tracker.sounding:
            return
        self._take_back()
        self._catch_up(now)
        for channel, pitch in late:
            tok = self._band_off(channel, pitch)
            if tok is not None:
                self._commit(tok, None)
                self.stats.forced_off += 1

    def _band_off(self, channel: int, pitch: int) -> int | None:
        """The token that ends the band's note (channel, pitch), or None if it holds none."""
        voice = self._band_voice.get(channel)
        if voice is None or not self.tracker.holds(voice, pitch):
            return None
        return self.voicing.token(voice, self._off + pitch)

    # --- waiting ------------------------------------------------------------------------------

    def _next_deadline(self, now: float) -> float:
        times = [np.inf]
        if self._mark is not None:
            times.append(self.t0 + self._deadline_step / self._sps)
        times.append(self.turns.next_change())
        return max(now, min(times))

