"""A grid model live: a clock ticks every grid step; at each tick the player's notes become the
lead's state, the model answers with the band's states and the band's notes go out.

Where `neuralband.live.engine` follows the player event by event, a grid model (`encoders.grid`)
counts steps: tick n's grid line is at ``t0 + n * step_s``. Its decision is taken ``grace_s``
later (30 ms by default, at most half a step), so that a note played a little behind the beat
still lands on it; the band's notes for tick n therefore sound grace_s after the grid line (plus
one model step), and ``stats.timing_s`` measures them against that decision time. The tempo is
the player's choice (``step_s``): the model counts steps, not seconds.

Three parts, each testable alone: `grid_voices.LeadReader` (the player's messages -> the lead's
state at a tick), `grid_voices.BandVoices` (the band's states -> MIDI through
`notes_out.OutputNotes`, so `close` leaves nothing sounding) and `GridEngine` (the clock and the
turn-taking, with `Engine`'s interface, so `neuralband.live.session` runs either). Two threads,
as in the engine: the MIDI callback only queues.

When the band may not play (duet with the player silent, call before its answer, a lost output)
its notes end at the next tick, and the model goes on hearing every tick with the band resting:
its state follows the music as it sounded, and it comes back in from silence, as it learned to.
An optional click (channel 10) sounds each beat of 4 steps on the grid line itself, so a player
who plays with it lands in the grace window rather than on its edge.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np

from neuralband.encoders.grid import (
    HOLD,
    NEW,
    REST,
    default_registers,
    output_packer,
    voice_pitch,
)
from neuralband.encoders.keys import parse_key, scale_mask
from neuralband.grid_band import GridBand
from neuralband.live.band_bias import DENSITY_GAIN, DENSITY_REF
from neuralband.live.band_events import LATE_NOTE_S
from neuralband.live.beat import CLICK_ACCENT, CLICK_CHANNEL, CLICK_PITCH, CLICK_VELOCITY
from neuralband.live.grid_voices import BandVoices, LeadReader
from neuralband.live.loop import LiveLoop
from neuralband.live.notes_out import NOTE_OFF, NOTE_ON
from neuralband.live.panel import INDEX, KEYS
from neuralband.live.sync import CONTINUE, START, STOP, ClockFollower, ClockSender, LinkFollower
from neuralband.live.turns import PlaySettings
from neuralband.runtime import Stepper
from neuralband.sampling import Rules, Sampler

GRACE_S = 0.03  # the decision for a tick waits this long after its grid line
BEAT_STEPS = 4  # grid steps per beat (a sixteenth-note grid) for the click
BAR_STEPS = 4 * BEAT_STEPS  # the end control stops the band on a bar line


def bpm_step_s(bpm: float) -> float:
    """The grid step at ``bpm`` beats per minute, `BEAT_STEPS` steps a beat (sixteenths)."""
    if not 0 < bpm < math.inf:
        raise ValueError(f"the tempo must be a positive number of beats per minute, got {bpm}")
    return 60.0 / (bpm * BEAT_STEPS)


def step_bpm(step_s: float) -> float:
    """The tempo of a grid step, `BEAT_STEPS` steps a beat."""
    return 60.0 / (step_s * BEAT_STEPS)


class GridEngine(LiveLoop):
    """A grid model's band on a clock; the same interface as `neuralband.live.engine.Engine`."""

    def __init__(self, stepper: Stepper, send: Callable[[list[int]], None],
                 settings: PlaySettings | None = None, rules: Rules | None = None,
                 seed: int | None = None, clock: Callable[[], float] = time.perf_counter,
                 record: bool = False, step_s: float | None = None, grace_s: float = GRACE_S,
                 click: bool = False, sync: str = "internal", clock_out: bool = False):
        settings = settings or PlaySettings()
        rules = rules or Rules()
        super().__init__(send, settings, rules, clock, record)
        self.band = GridBand(stepper, rules, seed)  # a ValueError for a model without a grid
        self.band.sampler.measure = True  # the band's confidence, per tick (`Stats.entropy`)
        self.step_s = float(self.band.grid.step_s if step_s is None else step_s)
        if not 0 < self.step_s < math.inf:
            raise ValueError(f"the grid step must be a positive number of seconds, "
                             f"got {self.step_s}")
        if not grace_s >= 0:
            raise ValueError(f"grace must be >= 0 seconds, got {grace_s}")
        # Past half a step a late note rounds to the next tick anyway: waiting longer only delays.
        self.grace_s = min(float(grace_s), self.step_s / 2)
        self.reader = LeadReader(self.step_s)
        self.voices = BandVoices(self.out, self.band.grid.voices, settings.channel)
        self.click = click
        if click and CLICK_CHANNEL in self.voices.channels:
            raise ValueError("the click sounds on channel 10, which a band voice uses: "
                             "choose another channel for the band")
        if sync not in ("internal", "midi", "link"):
            raise ValueError(f"the clock is 'internal', 'midi' or 'link', not {sync!r}")
        if sync != "internal" and (click or clock_out):
            raise ValueError(f"with --clock {sync} the clock's source keeps the time: --click "
                             "and --clock-out are for the band's own clock")
        # Following an external clock (`neuralband.live.sync`): a MIDI clock's pulses, or an
        # Ableton Link session's beat, are the grid lines.
        self.follower: ClockFollower | LinkFollower | None = None
        if sync == "midi":
            self.follower = ClockFollower(BEAT_STEPS)
        elif sync == "link":
            self.follower = LinkFollower(step_bpm(self.step_s), self.wake.set, BEAT_STEPS)
        self.clock_out = clock_out
        self.sender: ClockSender | None = None
        self._next_tick = 0
        self._next_beat = 0
        self._due: float | None = None  # the current tick's decision time, until a note goes out
        # The live controls (`_steer`): which band classes start new notes, on which pitch
        # classes (-1: none), for the density and key offsets; the end control's bar line.
        grid = self.band.grid
        fields = np.stack(output_packer(grid).unpack(np.arange(grid.output_classes)), axis=1)
        self._new_count = (fields >= NEW).sum(axis=1)
        self._new_pc = np.where(fields >= NEW, fields - NEW, -1)
        self._class_bias = np.zeros(grid.output_classes)
        self._end_tick: int | None = None
        # The next tick computed ahead for every state the lead can have then (`_speculate`):
        # the model's state before it, and per lead state the band's states and the model's
        # state after it (buffers made once).
        n_lead = NEW + 12
        self._spec_next = n_lead  # the next lead state to compute ahead (n_lead: none to do)
        self._spec_round = 0  # counts the ticks computed ahead; a lead's entry is done when
        self._spec_done = [-1] * n_lead  # it holds the current round (no list per tick)
        self._spec_snap = stepper.snapshot()
        self._spec_after = [stepper.snapshot() for _ in range(n_lead)]
        self._spec_states: list[tuple[int, ...]] = [()] * n_lead
        self._spec_cost = [(0.0, 0.0)] * n_lead  # (step seconds, entropy) of each

    # --- the loop -----------------------------------------------------------------------------

    def due(self, n: int) -> float:
        """When tick ``n`` is decided: its grid line plus the grace."""
        return self.t0 + n * self.step_s + self.grace_s

    def start(self) -> None:
        """The grid starts now: the band silent, the model fresh, tick 0 on this instant."""
        self._drop_spec()
        self.band.reset()
        self.reader.reset()
        self.voices.reset()
        self.t0 = self._next_check = self.clock()
        self._next_tick = self._next_beat = 0
        if isinstance(self.follower, LinkFollower):
            self.follower.start()
        if self.clock_out:  # a drum machine following us starts from the top with us
            self.sender = ClockSender(self.t0, self.step_s, BEAT_STEPS)
            self._send_raw([START])

    def _turn(self, now: float) -> None:
        self.pump(now)

    def pump(self, now: float) -> None:
        """Everything due by ``now``: the click, the tick (input up to its decision first), the
        rest of the input, the note-length limit. More than a tick behind (the CPU was starved),
        it skips to the latest tick rather than play the missed ones in a burst."""
        if self.follower is not None:
            self._pump_synced(now)
            return
        if self.sender is not None:
            while self.sender.due(now):
                self._send_raw([0xF8])
        if self.click and now >= self._beat_time(self._next_beat):
            self._click(now)
        if now >= self.due(self._next_tick):
            n = max(self._next_tick, math.floor((now - self.t0 - self.grace_s) / self.step_s))
            if n > self._next_tick:
                self.stats.late += 1
            self._absorb_inbox(until=self.due(n))
            self._check_panel(now)
            self._tick(n)
            self._next_tick = n + 1
        self._absorb_inbox()
        self._check_panel(now)
        self._check_lengths(now)
        self._speculate_some()

    def _pump_synced(self, now: float) -> None:
        """`pump` on an external clock: the queued messages in order of arrival, and each grid
        line the clock's pulses made, decided ``grace_s`` after its pulse (messages that came
        before the decision first). More than one line due (the CPU was starved): the latest."""
        lines = self.follower.lines
        while True:
            nxt = self.inbox[0][0] if self.inbox else math.inf
            if lines and lines[0][1] + self.grace_s <= min(now, nxt):
                while len(lines) > 1 and lines[1][1] + self.grace_s <= now:
                    lines.popleft()
                    self.stats.late += 1
                n, at = lines.popleft()
                if isinstance(self.follower, LinkFollower):
                    self.step_s = bpm_step_s(self.follower.bpm)
                self._check_panel(now)
                self._tick(n, at + self.grace_s)
                self._next_tick = n + 1
            elif nxt <= now:
                self._take(*self.inbox.popleft())
            else:
                break
        self._check_panel(now)
        self._check_lengths(now)
        self._speculate_some()

    def _clock_message(self, t: float, data: list[int]) -> None:
        """A message of the external clock: lines for `_pump_synced`, the tempo; Start and
        Stop end the band's notes (Start: from the top, the player's notes forgotten)."""
        event = self.follower.message(t, data)
        if event == "line":
            pulse_s = self.follower.pulse_s
            if pulse_s:
                self.step_s = pulse_s * self.follower.pulses_per_step
            return
        if event in ("start", "stop", "position"):
            if self._end_tick is not None:  # an ending's bar line is gone with the song's
                self._end_tick = None
                self._rest()
            self._next_tick = self.follower.pulse // self.follower.pulses_per_step
        if event in ("start", "stop"):
            self._silence()
            self._log_sent()  # shown on the timeline they ended on, before a Start moves it
            if event == "start":
                self.reader.reset()
                self.t0 = t

    def _silence(self) -> None:
        """The band's notes end now; the model hears it resting from the next tick."""
        self._drop_spec()
        try:
            if self.output_ok:
                self.voices.silence()
        except Exception:
            self.output_ok = False
        self.band.band = (REST,) * len(self.band.band)

    def _send_raw(self, data: list[int]) -> None:
        """A clock message out (not a note: `OutputNotes` does not track it)."""
        if self.output_ok:
            try:
                self.out.send(data)
            except Exception:
                self.output_ok = False

    def _close(self) -> int:
        """Release every sounding note; how many could not be sent. Tried even after a failed
        send (a port that failed once may still carry the note-offs); never raises."""
        self.closed_at = self.clock()
        self._drop_spec()  # the band is where its last tick left it
        if isinstance(self.follower, LinkFollower):
            self.follower.close()
        if self.sender is not None:
            self._send_raw([STOP])
        if self.output_ok:
            try:
                self.voices.silence()  # the voices learn they are silent; all_off is the net
            except Exception:
                self.output_ok = False
        failed = self.out.all_off(again_after_s=0.01)
        self.out.forget()
        self.voices.forget()
        return failed

    def player_gone(self) -> None:
        """The input vanished: the player's held notes end now, for the lead and at the output."""
        held = list(self.reader.held)
        self.reader.release_all()
        if self.settings.thru and self.output_ok:
            for channel, pitch in held:
                self._thru(channel, pitch, 0, self.clock())

    # --- input ----------------------------------------------------------------------------------

    def _absorb(self, t: float, data: list[int]) -> None:
        if isinstance(self.follower, ClockFollower) and data and data[0] in (
                0xF8, START, CONTINUE, STOP, 0xF2):
            self._clock_message(t, data)
            return
        status = data[0] & 0xF0 if len(data) >= 3 else 0
        if status not in (NOTE_ON, NOTE_OFF):
            self.stats.ignored += 1
            return
        is_on = status == NOTE_ON and data[2] > 0
        if self._our_echo(t, data, is_on):
            return
        if self.follower is not None:
            self.reader.at_step(self.follower.position(t), data)
        else:
            self.reader.message(t - self.t0, data)
        self.turns.heard(t, is_on)  # in call mode, an answer then ends at the next tick
        self._absorbed(t, data, is_on, thru=True)

    def _band_may_play(self, now: float) -> bool:
        """The turn-taking's word, but an ending plays to its bar line, and mute always wins."""
        return self.output_ok and not self.turns.muted and (
            self._end_tick is not None or self.turns.band_may_play(now, bool(self.reader.held)))

    # --- the band -------------------------------------------------------------------------------

    def _tick(self, n: int, due: float | None = None) -> None:
        """Tick n: the lead's state into the model, the band's out, or silence where it may not
        play (the model then hears the band resting, as it sounds). ``due``: its decision time
        (by default from the band's own clock)."""
        due = self.due(n) if due is None else due
        lead = self.reader.tick(n)
        if self._end_tick is not None and n >= self._end_tick:  # the ending's bar line
            self._end_tick = None
            self._rest()
        may_play = self._band_may_play(due)
        states = self._take_spec(lead)
        if states is None:
            t = self.clock()
            states = self.band.step(lead)
            self.stats.step_s.add(self.clock() - t)
            self.stats.entropy.add(self.band.sampler.entropy)
        late = self.clock() - due > LATE_NOTE_S  # a starved loop: this tick's notes would
        if late and may_play:  # sound late, so the band rests (and the model hears it rest)
            self.stats.late += 1
        if not may_play or late:
            states = self.band.band = (REST,) * len(states)
        if not self.output_ok:
            self.voices.forget()
            return
        self._log_sent()  # what went out before the tick (a panic, a clock's Stop) is not its
        self._due = due
        try:
            self.voices.play(states, self.reader.velocity, self.clock())
            if self.click and n % BEAT_STEPS:
                self.out.note_off(CLICK_CHANNEL, CLICK_PITCH)
        except Exception:
            self.output_ok = False  # the port went away mid-send; `poll` will say so
        self._log_sent()  # the tick's messages, the first timed against ``due``
        self._due = None
        self._speculate()

    def _speculate(self) -> None:
        """Right after a tick: from now on `_speculate_some` computes the next tick ahead."""
        self.band.stepper.snapshot(into=self._spec_snap)
        self._spec_round += 1
        self._spec_next = 0

    def _speculate_some(self) -> None:
        """Off the critical path, between ticks: the next tick's model step for each state the
        lead can have then (a rest, a hold, a new note of each pitch class: 14 steps, a few
        milliseconds of the step's hundred), one at a time, back to the input whenever a message
        waits. The next tick then only picks one and sends: its reaction to the grid line (or a
        clock's pulse) is a copy, not a model step. The model is back at the last tick's state
        after each."""
        stepper, band = self.band.stepper, self.band
        before = band.band
        due = self.due(self._next_tick) if self.follower is None else math.inf
        while (self._spec_next < len(self._spec_done) and not self.inbox
               and self.clock() < due):
            lead = self._spec_next
            t = self.clock()
            self._spec_states[lead] = band.step(lead)
            self._spec_cost[lead] = (self.clock() - t, band.sampler.entropy)
            stepper.snapshot(into=self._spec_after[lead])
            stepper.restore(self._spec_snap)
            band.band = before  # the band is still where the last tick left it
            self._spec_done[lead] = self._spec_round
            self._spec_next += 1

    def _take_spec(self, lead: int) -> tuple[int, ...] | None:
        """The band's states computed ahead for ``lead``, the model moved on past them; None
        where that one was not computed."""
        done = self._spec_done[lead] == self._spec_round
        self._drop_spec()
        if not done:
            return None
        self.band.stepper.restore(self._spec_after[lead])
        states = self.band.band = self._spec_states[lead]
        step_s, entropy = self._spec_cost[lead]
        self.stats.step_s.add(step_s)  # a step per tick, whenever it was computed
        self.stats.entropy.add(entropy)
        return states

    def _drop_spec(self) -> None:
        """Forget what was computed ahead (also before the band's states change between ticks:
        a forced end, panic, the controls); the model never left the last tick's state."""
        self._spec_next = len(self._spec_done)
        self._spec_round += 1

    # --- what the view shows (`neuralband.live.view`) -----------------------------------------

    def voice_names(self) -> dict[int, str]:
        names = {c + 1: f"voice {k + 1}" for k, c in enumerate(self.voices.channels)}
        if self.click:
            names[CLICK_CHANNEL + 1] = "click"
        return names

    def plan(self) -> list[dict]:
        """The next tick as computed ahead for the lead as it is now (holding or resting):
        each voice's new note or rest, at that tick's grid line."""
        lead = HOLD if self.reader.held else REST
        if self._spec_done[lead] != self._spec_round:
            return []
        states, at = self._spec_states[lead], round(self.due(self._next_tick) - self.t0, 4)
        events = []
        for k, state in enumerate(states):
            voice = f"voice {k + 1}"
            if state >= NEW:
                pitch = voice_pitch(int(state) - NEW, self.voices.previous[k],
                                    self.voices.registers[k])
                events.append({"type": "note_on", "pitch": pitch, "t": at, "voice": voice})
            elif state == REST and self.voices.sounding[k] is not None:
                events.append({"type": "note_off", "pitch": self.voices.sounding[k], "t": at,
                               "voice": voice})
        return events

    def _band_sent(self, t: float, data: list[int]) -> None:
        """A band message went out at ``t``: recorded and shown (`LiveLoop`), counted, and timed
        against its tick."""
        super()._band_sent(t, data)
        self.stats.band_events += 1
        if self._due is not None:  # the tick's first message measures its lateness
            self.stats.timing_s.add(t - self._due)
            self._due = None

    def _beat_time(self, beat: int) -> float:
        return self.t0 + beat * BEAT_STEPS * self.step_s

    def _click(self, now: float) -> None:
        """The metronome on the grid line itself (not the decision time): the latest beat due."""
        beat = max(self._next_beat, math.floor((now - self.t0) / (BEAT_STEPS * self.step_s)))
        self._next_beat = beat + 1
        if self.output_ok:
            try:
                velocity = CLICK_ACCENT if beat % 4 == 0 else CLICK_VELOCITY
                self.out.note_on(CLICK_CHANNEL, CLICK_PITCH, velocity, now, own=False)
            except Exception:
                self.output_ok = False

    def _force_overdue(self, now: float) -> None:
        """Belt and braces: a band note held past the limit by the wall clock ends, and the
        model hears that voice resting from the next tick on."""
        late = self.voices.overdue(now) if self.output_ok else []
        if not late:
            return
        self._drop_spec()
        states = list(self.band.band)
        try:
            for k in late:
                self.voices.end(k)
                states[k] = REST
                self.stats.forced_off += 1
        except Exception:
            self.output_ok = False
        self.band.band = tuple(states)

    # --- the live controls ---------------------------------------------------------------------

    def _sampler(self) -> Sampler:
        return self.band.sampler

    def _control(self, name: str, value: float, now: float) -> None:
        """A control changed: the tick computed ahead was drawn under the old values."""
        self._drop_spec()
        super()._control(name, value, now)

    def _steer(self, name: str, value: float, now: float) -> None:
        """register: the band voices' registers move together, their mean on the value; density
        and key: logit offsets on the band's classes (DENSITY_GAIN nats per new note per e-fold
        above DENSITY_REF; none with a new note outside the scale); end: the band plays to the
        next bar line at least a beat away, and rests there."""
        if name == "end":
            if self._end_tick is None:
                if self._band_may_play(now) or any(p is not None for p in self.voices.sounding):
                    ahead = self._next_tick + BEAT_STEPS
                    self._end_tick = -(-ahead // BAR_STEPS) * BAR_STEPS
                else:
                    self._rest()
            return
        if name == "register":
            defaults = default_registers(self.band.grid.voices)[1:]
            shift = 0.0 if math.isnan(value) else value - sum(defaults) / len(defaults)
            self.voices.registers = [int(round(r + shift)) for r in defaults]
            self.voices.previous = list(self.voices.registers)
            return
        b, values = self._class_bias, self.panel.values
        b.fill(0.0)
        density, key = values[INDEX["density"]], int(values[INDEX["key"]])
        if not math.isnan(density):
            b += self._new_count * (DENSITY_GAIN * math.log(density / DENSITY_REF))
        if key > 0:
            scale = np.append(scale_mask(*parse_key(KEYS[key])), True)  # [-1]: no new note
            b[~scale[self._new_pc].all(axis=1)] = -np.inf
        self.band.sampler.bias = b if b.any() else None

    def _panic(self, now: float) -> None:
        """Every note off now; the model hears the band rest from the next tick; then the band
        rests until the player plays."""
        self._end_tick = None
        self._silence()
        if self.output_ok and self.out.panic():
            self.output_ok = False
        self._rest()

    @property
    def ending(self) -> bool:
        return self._end_tick is not None

    # --- waiting ------------------------------------------------------------------------------

    def _next_deadline(self, now: float) -> float:
        if self.follower is not None:
            lines = self.follower.lines
            line = lines[0][1] + self.grace_s if lines else math.inf
            return max(now, min(line, self._next_check))
        beat = self._beat_time(self._next_beat) if self.click else math.inf
        pulse = self.sender.next_time() if self.sender is not None else math.inf
        return min(self.due(self._next_tick), beat, pulse, self._next_check)
