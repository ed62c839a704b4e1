"""The band's half of the event engine: its events drawn from the model, its waits on trial, what
goes out of the port.

If the mode lets the band play (`Engine` decides), `BandEvents._play` keeps a proposal ready: the
next event sampled from the model under the grammar of `sampling.NoteTracker`. A note or velocity
event is played at once. A TIME_SHIFT is a proposed wait: the state is snapshotted, the shift fed
on trial (`trial.Trial`) and the events after it sampled ahead, so they can go out the moment the
wait ends. Player input during the wait takes the proposal back (restore the snapshot), the
player's events go in, and the model proposes again. Events that can no longer go out on time
are dropped, never sent late (`LATE_NOTE_S`).

Player and band share one token stream, the way the model was trained on one performance: the
grammar keeps the band off the player's held pitches and lets it end only its own notes. With a
voice-packed model (`encoders.voices`, through `voicing.Voicing`) the player's events are the lead
voice's and the band samples only its own voices, each on its own channel from ``channel`` up.
Every outgoing note passes through `notes_out.OutputNotes`, so `close` leaves nothing sounding.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from neuralband.encoders.live_encoder import LiveEncoder
from neuralband.encoders.performance import DEFAULT_SETTINGS, Event
from neuralband.encoders.schemes import EventScheme
from neuralband.live.band_bias import BandBias
from neuralband.live.loop import LiveLoop
from neuralband.live.turns import PlaySettings
from neuralband.runtime import Stepper
from neuralband.sampling import Rules, Sampler, pulled
from neuralband.trial import Trial
from neuralband.voicing import Voicing, from_info

MAX_CHAIN = 16  # events sampled ahead after a wait
# A band event that would leave this long after its time is not sent: its turn is dropped and
# the stream follows the clock (a CPU-starved loop plays nothing late; under 10 ms heard with
# JACK's 2.7 ms period at 128 frames / 48 kHz).
LATE_NOTE_S = 0.005


class BandEvents(LiveLoop):
    """The shared stream and the band's part in it: feeding, drawing, waiting on trial, sending.
    `Engine` adds the player's input, the turns, the controls and the clocks."""

    def __init__(self, stepper: Stepper, send: Callable[[list[int]], None],
                 settings: PlaySettings, rules: Rules, seed: int | None,
                 clock: Callable[[], float], record: bool, keep_tokens: bool,
                 conditioned: bool):
        if stepper.batch != 1:
            raise ValueError("the live engine runs one stream")
        super().__init__(send, settings, rules, clock, record)
        self.stepper = stepper
        es = stepper.info.encoder if stepper.info else DEFAULT_SETTINGS
        self.voicing = v = from_info(stepper.info) if stepper.info else Voicing(EventScheme(es))
        self.enc = LiveEncoder(es)
        self.tracker = v.tracker(rules)
        self.sampler = Sampler(rules, seed, v.vocab_size, v.is_shift)
        self.sampler.measure = True  # the band's confidence, per draw (`Stats.entropy`)
        self._pull = v.grid_pull(rules) if stepper.reads_beat else None  # onto the beat's lines
        self.tokens: list[int] | None = [] if keep_tokens else None  # the committed stream
        # Token layout shortcuts: model token -> voice, Performance token, TIME_SHIFT steps.
        self._off = es.note_off
        self._kind, self._value = es.kinds.tolist(), es.values.tolist()  # per Performance token
        self._sps = es.steps_per_second
        self._voice, self._base = v.voice_list, v.base_list
        self._steps = v.shift_steps.tolist()
        self._shift_steps = v.shift_steps  # the same as an array (0: not a wait)
        self._soon = np.zeros(v.vocab_size, bool)  # the events an answer's opening allows
        self._player = v.player.tolist()
        # Each band voice's channel, and the channel's voice.
        self._channel = {voice: (settings.channel + max(voice - 1, 0)) % 16
                         for voice in v.band_voices}
        self._band_voice = {c: voice for voice, c in self._channel.items()}
        # Proposal state: a TIME_SHIFT fed on trial, and the event sampled after it.
        self._trial = Trial(stepper)
        self._chain: list[int] = []  # the events after the wait, fed on trial, sent at its end
        self._deadline_step = 0
        self._next: int | None = None  # sampled from the current (committed or trial) state
        self._velocity = [100] * 16  # each band voice's current MIDI velocity
        self._expects_player = False  # the wait on trial ends where the model expects the player
        # Only a duet's band waits for a player it expects; alone (solo, a call's answer) it
        # plays on its own clock.
        self._duet = v.voiced and settings.mode == "duet"
        self._mask = np.empty(v.vocab_size, bool)
        self._lead = v.lead_list
        self._longest = es.max_shift_steps
        self._shift0 = es.time_shift  # the encoder's TIME_SHIFT(1)
        self._on_time: float | None = None  # when the band's current step was due
        # The live controls' reach into the draw: logit offsets the sampler adds.
        self.bias = BandBias(v, self.sampler, rules, conditioned=conditioned)
        self.bias.under = settings.mode == "duet"  # the band keeps under the player's melody
        self._opening: float | None = None  # an answer's first note is due by then
        self._pc = np.zeros(12)  # pitch classes heard and played: an ending's key, unconditioned

    # --- the band's events ----------------------------------------------------------------------

    def _band_stops(self, now: float) -> None:
        """The band's turn is over: end its notes, in the stream and at the output."""
        self._take_back()
        self._catch_up(now)
        for tok in self.tracker.closing_tokens():
            self._commit(tok, None)

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
        return self._draw(allowed)

    def _draw(self, allowed: np.ndarray) -> int:
        if self.bias.ending is not None:
            self.bias.ramp(self.clock())
        if self._opening is not None:  # an answer's first note is due: no wait past it
            step = self._deadline_step if self._trial.open else self.enc.step
            room = math.floor((self._opening - self.t0) * self._sps) - step
            np.less_equal(self._shift_steps, max(room, 0), out=self._soon)
            self._soon &= allowed
            if self._soon.any():
                allowed = self._soon
        logits = self.stepper.logits()[0]
        tok = self.sampler.sample(logits, allowed, pulled(self._pull, self.stepper, 0, logits,
                                                          allowed, self.tracker.endings()))
        self.stats.entropy.add(self.sampler.entropy)
        return tok

    def _play(self, now: float) -> None:
        """Perform due events and keep one proposal ready."""
        if not self._trial.open and self._next is None:
            self._catch_up(now)
            self._on_time = None  # the turn starts now: no schedule to keep
            t = self.clock()
            self._next = self._sample()
            self.stats.step_s.add(self.clock() - t)
        while True:
            if self._trial.open:  # a wait on trial: has it ended?
                if self.clock() - self.t0 < self._deadline_step / self._sps:
                    return
                if self._expects_player and self._wait_longer():
                    continue
                if self._too_late(self.t0 + self._deadline_step / self._sps):
                    continue
                self._trial.commit()  # the wait happened: it and its chain are committed
                self._on_time = self.t0 + self._deadline_step / self._sps
                for tok in [self._trial.shift, *self._chain]:
                    self._send(tok, self._on_time)
                    self._observe(tok)
                    if self.tokens is not None:
                        self.tokens.append(tok)
                    self.stats.band_events += 1
                self._chain.clear()
                if self.inbox:
                    return
            tok = self._next
            if tok is None:
                return
            # An event that goes out now must still be on time; a wait goes out as nothing: it
            # is judged at its end (a wait drawn again after the player did not come starts
            # where the stream is, long before now, and is not late for that).
            if self._on_time is not None and self._voice[tok] >= 0 \
                    and self._too_late(self._on_time):
                continue
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

    def _too_late(self, on_time: float) -> bool:
        """Whether the band's next events, due at ``on_time``, can no longer go out on time
        (the loop was starved of CPU); if so they are dropped, never sent late: the wait on
        trial (or the event drawn ahead) is taken back, the stream catches up with the clock
        and the band draws afresh from now. Its notes sounding stay in the tracker, ended as
        the model or the length limit says."""
        now = self.clock()
        if now - on_time <= LATE_NOTE_S:
            return False
        self._take_back(late=True)
        self._catch_up(now)
        self._on_time = None
        self._next = self._sample()
        self.stats.late += 1
        return True

    def voice_names(self) -> dict[int, str]:
        many = len(self._channel) > 1
        return {c + 1: f"band {voice}" if many else "band" for voice, c in self._channel.items()}

    def plan(self) -> list[dict]:
        """A wait on trial and the events after it (a chord, say): they go out at its end,
        unless the player comes in first."""
        if not self._trial.open:
            return []
        at = round(self._deadline_step / self._sps, 4)
        events = []
        for tok in list(self._chain):  # a copy: the engine's thread may change it meanwhile
            voice, base = self._voice[tok], self._base[tok]
            if voice >= 0 and self._kind[base] != Event.VELOCITY:
                kind = "note_on" if self._kind[base] == Event.NOTE_ON else "note_off"
                events.append({"type": kind, "pitch": self._value[base], "t": at,
                               "voice": self.voice_name(self._channel[voice])})
        return events

    def _propose_wait(self, shift: int) -> None:
        """Feed a sampled TIME_SHIFT on trial, then sample on until the next TIME_SHIFT: the
        events that follow the wait (a chord, say) are ready to go out together at its end."""
        self.stepper.prepare()  # the snapshot the player's input returns to: ready for it
        self._trial.begin(shift, self.tracker)
        self._deadline_step = self.enc.step + self._steps[shift]
        self._next = self._sample(expect_player=self._duet)
        self._expects_player = self._lead[self._next]
        if self._expects_player:  # the model expects the player then: the band has nothing
            self._next = None
            return
        # A message waiting ends the chain here: it takes the wait back (or, a control, the
        # proposal), so the rest would be drawn for nothing while it waits.
        while self._voice[self._next] >= 0 and len(self._chain) < MAX_CHAIN and not self.inbox:
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
        later = self._trial.again(self.voicing, self._mask, after)
        if later is None:  # a note reaches its cap at the trial's end: the wait happened
            self._next = self._sample()  # the note's NOTE_OFF, the grammar says
            return False
        self.stats.expected += 1
        self._next = self._draw(later)
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
        kind, value = self._kind[base], self._value[base]
        if kind == Event.VELOCITY:
            self._velocity[voice] = int(self.enc.settings.bin_to_velocity(value))
            return
        ch = self._channel[voice]
        pitch = value
        now = self.clock()
        try:
            if kind == Event.NOTE_ON:
                self.out.note_on(ch, pitch, self._velocity[voice], now)
                self._opening = None  # an answer's first note is out
                self._pc[pitch % 12] += 1
                self.bias.note_on(now, self._applied)
            elif not self.out.note_off(ch, pitch):
                return
        except Exception:
            self.output_ok = False  # the port went away mid-send; `poll` will say so
            return
        if scheduled is not None:  # events after one of the band's own waits keep its clock
            self.stats.timing_s.add(now - scheduled)

    def _take_back(self, late: bool = False) -> None:
        """Undo a wait on trial (the player came in first, or ``late``: it is past its time),
        or drop a sampled-ahead event."""
        if self._trial.open:
            self._trial.take_back()
            self._chain.clear()
            self.stats.taken_back += not late
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
