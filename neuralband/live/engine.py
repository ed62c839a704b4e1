"""The real-time loop: the player's notes go into the model as they happen, the band's come out.

Two threads only. The MIDI callback calls `Engine.receive`, which timestamps nothing itself (the
port did), appends to a deque and wakes the engine: no parsing, no inference. Everything else runs
in the engine thread (`Engine.run`), one pass at a time:

1. absorb every queued message: it becomes events at its real arrival time (the elapsed time as
   TIME_SHIFTs, then VELOCITY / NOTE_ON / NOTE_OFF, by `encoders.live_encoder.LiveEncoder`) fed to
   the model one by one;
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

import math
import time
from collections.abc import Callable
from dataclasses import replace

import numpy as np

from encoders.keys import estimate_key, parse_key, scale_mask
from encoders.live_encoder import LiveEncoder
from encoders.performance import DEFAULT_SETTINGS, Event
from encoders.schemes import EventScheme
from neuralband.live.beat import (
    CLICK_ACCENT,
    CLICK_CHANNEL,
    CLICK_PITCH,
    CLICK_VELOCITY,
    Grid,
    LiveBeat,
)
from neuralband.live.loop import CHECK_EVERY_S, LiveLoop
from neuralband.live.panel import INDEX, KEYS, control
from neuralband.live.sync import PPQN, ClockFollower, LinkFollower
from neuralband.live.turns import PlaySettings
from neuralband.runtime import Stepper
from neuralband.sampling import Rules, Sampler, pulled
from neuralband.steering import FOLLOW, FREE, ControlChoice, steer
from neuralband.trial import Trial
from neuralband.voicing import MelodyNote, Voicing, from_info

MAX_CHAIN = 16  # events sampled ahead after a wait
CLICK_LATE_S = 0.02  # the click: a beat this far behind is still sounded
# A band event that would leave this long after its time is not sent: its turn is dropped and
# the stream follows the clock (a CPU-starved loop plays nothing late; under 10 ms heard with
# JACK's 2.7 ms period at 128 frames / 48 kHz).
LATE_NOTE_S = 0.005
ANSWER_START_S = 0.25  # a call answer's first note comes this soon after the player's pause
START_STEPS = 10  # the stream opens with TIME_SHIFT(10): "nothing yet", as `generate` starts
# The live controls (`neuralband.live.panel`) on a model that reads no density or key control:
DENSITY_REF = 4.0  # notes/s that leave the NOTE_ONs' logits as they are
DENSITY_GAIN = 2.0  # nats added to every NOTE_ON per e-fold of density asked above DENSITY_REF
DENSITY_WINDOW_S = 2.5  # ... then the band's own notes/s over this window
DENSITY_RATE = 0.1  # nats of offset per e-fold of error, every CHECK_EVERY_S
DENSITY_MAX_BIAS = 10.0
DENSITY_BURST_S = 1.0  # ... and a ceiling: at most density x this many notes in a burst
REGISTER_SPAN = 18  # the register control keeps new notes within this many semitones
BEAT_DRIFT = 0.02  # beats the model's beat clock may be off the band's before it is placed again
TEMPO_DRIFT = 0.005  # and the share its beat's length may be off
END_S = 2.5  # the end control: the band closes within this long (a bar at 96 bpm)
LEARNT_REST_S = 0.3  # `play --learn-me`: a new version comes in once the player is this quiet
LEARNT_FEEDS = 32  # ... and at most this many events behind the stream (it is fed them then)


class Engine(LiveLoop):
    """The instrument's state and loop; ports, signals and printing live in
    `neuralband.live.session`."""

    def __init__(self, stepper: Stepper, send: Callable[[list[int]], None],
                 settings: PlaySettings | None = None, rules: Rules | None = None,
                 seed: int | None = None, clock: Callable[[], float] = time.perf_counter,
                 record: bool = False, keep_tokens: bool = False,
                 controls: ControlChoice | None = None, sync: str = "internal",
                 beat: LiveBeat | None = None, click: bool = False):
        if stepper.batch != 1:
            raise ValueError("the live engine runs one stream")
        settings = settings or PlaySettings()
        rules = rules or Rules()
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
        # A conditioned model's key and density: fixed, free, or following the player's notes.
        self.steering = steer(stepper, controls)
        # With keep_tokens, each change of the controls: (tokens committed before it, vector),
        # so the committed stream replays exactly into a fresh model.
        self.control_changes: list[tuple[int, np.ndarray]] = []
        # `play --learn-me` (`neuralband.live.learner`): a learnt version waiting for a pause, and
        # the version the band plays (0: the model it started with).
        self.learnt = None
        self.version = 0
        self._follow = self.steering is not None and not self.steering.choice.fixed
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
        self._under = settings.mode == "duet"  # the band keeps under the player's melody note
        self._mask = np.empty(v.vocab_size, bool)
        self._lead = v.lead_list
        self._longest = es.max_shift_steps
        self._shift0 = es.time_shift  # the encoder's TIME_SHIFT(1)
        self._on_time: float | None = None  # when the band's current step was due
        # The live controls' reach into the draw (`_steer`): each band NOTE_ON's pitch (-1 for
        # other events), and logit offsets over the vocabulary.
        band = ~v.is_shift & ~v.is_lead
        kinds = es.kinds[v.base_of]
        self._on_pitch = np.where(band & (kinds == Event.NOTE_ON), es.values[v.base_of], -1)
        self._is_on = self._on_pitch >= 0
        self._on_f = self._is_on.astype(np.float64)
        self._off_f = (band & (kinds == Event.NOTE_OFF)) * 1.0
        self._notes_f = self._on_f + self._off_f  # busier: more notes, and shorter ones
        self._steer_bias = np.zeros(v.vocab_size)  # density, register, key
        self._static_bias = np.zeros(v.vocab_size)  # register, key
        self._density_tmp = np.zeros(v.vocab_size)
        self._density_bias = 0.0  # nats on every band NOTE_ON (a model without controls)
        self._chase = False  # whether that offset follows the band's measured density
        self._pace = math.nan  # a call answer's density: its phrase's (`Turns.pace`)
        self._answer_seen: float | None = None  # the answer `_pace` and `_opening` are for
        self._opening: float | None = None  # an answer's first note is due by then
        self._chased = DENSITY_REF  # the density that offset was last set for
        self._next_chase = 0.0
        self._blocked_bias = np.zeros(v.vocab_size)  # the same, with no NOTE_ON at all
        self._no_on = np.where(self._is_on, -np.inf, 0.0)  # added to shut every NOTE_ON
        self._tokens, self._tokens_at = 0.0, 0.0  # the ceiling's bucket: notes it may play now
        self._onsets = np.full(256, -np.inf)  # the band's last NOTE_ON times (a ring)
        self._n_onsets = 0
        self._biased = False
        # A duet band keeps under the player's melody note and out of its way: that note's row
        # of offsets (`Voicing.melody_offsets`), picked per player note, added in
        # `_compose_bias`.
        self._melody = MelodyNote()
        self._melody_offsets = v.melody_offsets(rules)
        self._melody_row: np.ndarray | None = None
        self._end_bias, self._end_tmp = np.zeros(v.vocab_size), np.zeros(v.vocab_size)
        self._end_base = self._end_last = self._steer_bias
        self._ending: float | None = None  # when an ending began
        self.end_key: tuple[int, str] | None = None  # the key it closed in, where known
        self._pc = np.zeros(12)  # pitch classes heard and played: an ending's key, unconditioned
        # An external MIDI clock (`neuralband.live.sync`): ``wait_s`` and ``answer_s`` are then in
        # beats, turned into seconds at its tempo (120 bpm until it is known); Stop rests the
        # band until Start or Continue.
        if sync not in ("internal", "midi", "link"):
            raise ValueError(f"the clock is 'internal', 'midi' or 'link', not {sync!r}")
        if sync == "link" and not stepper.reads_beat:
            raise ValueError("--link puts the band on the session's beat: a grid model, or a "
                             "model that reads the beat (trained with --beat)")
        self.follower = (ClockFollower() if sync == "midi" else
                         LinkFollower(120.0, self.wake.set) if sync == "link" else None)
        self._beats = (settings.wait_s, settings.answer_s)
        self._bpm = 0.0
        self._clock_stopped = False
        if self.follower is not None:
            self._follow_tempo(120.0)
        # A model that reads the beat plays on `beat` (the followed clock's, --bpm, taps, else
        # the player's, tracked): its clock in the model is placed whenever that beat moves.
        self.beat = (beat or LiveBeat()) if stepper.reads_beat else None
        self.beat_changes: list[tuple[int, tuple | None]] = []  # with keep_tokens, as controls
        self._click = click and self.beat is not None
        if self._click and CLICK_CHANNEL in self._band_voice:
            raise ValueError("the click sounds on channel 10, which a band voice uses: "
                             "move the band with --channel")
        self._click_next, self._click_off = 0.0, None  # the next beat to sound, its end
        self._click_last = -math.inf  # the last beat sounded
        self._unset_density = FOLLOW
        if self.steering is not None:  # the panel starts from the choice
            choice = self.steering.choice
            if isinstance(choice.density, str):
                self._unset_density = choice.density
            else:
                self._reflect("density", float(choice.density))
                # unset, a duet band follows you where its model knows how (`steering`)
                self._unset_density = (FOLLOW if not v.voiced or self.steering.arrangement
                                       is not None else FREE)
            if choice.key not in (FOLLOW, FREE):
                self._reflect("key", float(control("key").index(choice.key)))

    # --- the engine thread --------------------------------------------------------------------

    def start(self) -> None:
        """Open the stream: reset the model and feed "nothing yet", dated so that it ends now."""
        self.stepper.reset()
        if self.steering is not None:
            self._set_controls(self.steering.vector)
        self.enc = LiveEncoder(self.enc.settings)
        self.tracker = self.voicing.tracker(self.rules)
        self._melody.clear()
        self._melody_row = None
        self._feed_shared(self.voicing.shift(START_STEPS))
        self.t0 = self.clock() - START_STEPS / self._sps
        self._next_check = self.clock()
        if self.beat is not None:
            self.beat.start(self.clock())
            self._place_beat()
        if isinstance(self.follower, LinkFollower):
            self.follower.start()

    def _turn(self, now: float) -> None:
        """The player's messages in, then the band plays (or stops, or takes a wait back), then
        the note-length limit."""
        if self._click:
            self._tick_click(now)
        if isinstance(self.follower, LinkFollower) and self.follower.lines:
            self._link_lines()
        self._absorb_inbox()
        self._check_panel(now)
        if self._ending is not None and now >= self._ending + END_S:
            self._finish_end(now)
        if self._band_may_play(now):
            self._play(now)
        elif self.tracker.sounding:
            self._band_stops(now)
        else:
            self._take_back()
        self._check_lengths(self.clock())
        if self._chase and now >= self._next_chase:
            self._chase_density(now)
        if self.learnt is not None:
            self._take_learnt(now)

    def _take_learnt(self, now: float) -> None:
        """A learnt version takes the model's place at a pause: no note of the band's sounding,
        no key held, the player quiet a moment. A wait on trial is taken back (the new version
        draws again); the version, its state rebuilt on this stream elsewhere, is fed the last
        few events and its weights rebound (`Stepper.adopt`): no step's worth of work here."""
        offer = self.learnt
        if (self.tracker.sounding or self.enc.open_pitches or offer.behind(self) > LEARNT_FEEDS
                or now - self.turns.last_player_s < LEARNT_REST_S):
            return
        self._take_back()
        if offer.bring_up(self):
            self.stepper.adopt(offer.stepper)
            self.learnt, self.version = None, offer.version

    def close(self) -> int:
        """Release every sounding note; how many could not be sent (0 unless the port is gone)."""
        self.closed_at = self.clock()
        if isinstance(self.follower, LinkFollower):
            self.follower.close()
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
        if isinstance(self.follower, ClockFollower) and data and data[0] >= 0xF0:
            self._clock_message(t, data)
            return
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
        if is_on:
            self._pc[data[1] % 12] += 1
        for tok in tokens:
            self._feed(self._player[tok], own=False)
        if is_on and self.beat is not None:  # analysed while waiting (`_ahead`)
            self.beat.heard(t, data[2], data[1])
        if self._melody_offsets is not None and status != 0xB0:
            now = self._melody.update(data[1], is_on)
            self._melody_row = None if now is None else self._melody_offsets[now]
            if self._under:  # alone (solo, call) the band ignores the row: nothing to compose
                self._compose_bias()
        self._absorbed(t, data, is_on, thru=status != 0xB0)
        if is_on and self._follow:  # the band keeps to the key and pace the player sets
            # After the note's own events, which the state computed ahead (`_ahead`) was
            # computed for; the controls count from the next event on.
            self._set_controls(self.steering.heard(seconds, data[1]))

    def _set_controls(self, vector: np.ndarray) -> None:
        self.stepper.set_controls(vector)
        if self.tokens is not None:
            self.control_changes.append((len(self.tokens), vector.copy()))

    def _place_beat(self) -> None:
        """Put the model's beat clock where the band's beat is at the stream's time (the last
        event fed), where it has moved off it (a tempo or phase change, a beat found or let
        go); a wait on trial is then taken back first (its end was planned on the old beat).
        A followed clock's every sixteenth asks, and costs a comparison while the beat holds."""
        grid = self.beat.grid()
        stepper = self.stepper
        if grid is None:
            if stepper.beat_on:
                self._take_back()
                stepper.place_beat(None)
                self._beat_placed(None)
            return
        at = self.t0 + self.enc.step / self._sps
        beat = grid.beat_at(at)
        if stepper.beat_on:
            # where the committed stream's clock is (a wait on trial moved the model's on)
            pos = float(self._trial.snap.beat[0] if self._trial.open else stepper.beat_pos[0])
            drift = abs(beat - pos) % grid.bar_beats
            drift = min(drift, grid.bar_beats - drift)
            if (drift < BEAT_DRIFT and stepper.bar_beats[0] == grid.bar_beats
                    and abs(stepper.beat_period_s[0] / grid.period_s - 1) < TEMPO_DRIFT):
                return  # the model's clock is where the beat is
        self._take_back()
        stepper.place_beat(beat, grid.period_s, grid.bar_beats)
        self._beat_placed((beat, grid.period_s, grid.bar_beats))

    def _beat_placed(self, where: tuple | None) -> None:
        if self.tokens is not None:
            self.beat_changes.append((len(self.tokens), where))

    # --- turn-taking ------------------------------------------------------------------------------

    def _band_may_play(self, now: float) -> bool:
        """The turn-taking's word, but an ending plays to its close; mute and a stopped
        external clock always win."""
        may = self.output_ok and not self.turns.muted and not self._clock_stopped and (
            self._ending is not None
            or self.turns.band_may_play(now, bool(self.enc.open_pitches)))
        if self.turns.answer_start != self._answer_seen:
            self._answer_begins(self.turns.answer_start)
        return may

    def _answer_begins(self, start: float | None) -> None:
        """A call's answer begins at ``start`` (None: it is over): its first note within
        ANSWER_START_S, at the pace of the phrase it answers (unless a density is asked)."""
        self._answer_seen = start
        self._opening = None if start is None else start + ANSWER_START_S
        self._pace = math.nan if start is None else self.turns.pace()
        self._update_bias()

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
        return self._draw(allowed)

    def _draw(self, allowed: np.ndarray) -> int:
        if self._ending is not None:
            self._end_ramp(self.clock())
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
            if self._on_time is not None and self._too_late(self._on_time):
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
                self._onsets[self._n_onsets % len(self._onsets)] = now
                self._n_onsets += 1
                if self._chase:
                    self._refill(now)
                    self._tokens -= 1.0
                    if self._tokens < 1.0:
                        self._gate()
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

    # --- an external clock ----------------------------------------------------------------------

    def _clock_message(self, t: float, data: list[int]) -> None:
        event = self.follower.message(t, data)
        self.follower.lines.clear()  # an event model keeps no grid of steps: tempo and beat
        if event == "line":
            bpm = self.follower.bpm
            if bpm and abs(bpm - self._bpm) > 0.01 * self._bpm:
                self._follow_tempo(bpm)
            if self.beat is not None and bpm:  # the clock's beat: a bar from its Start
                step, at = self.follower.last_line
                per_beat = PPQN // self.follower.pulses_per_step  # the follower's steps a beat
                grid = Grid(at, (step / per_beat) % self.beat.bar_beats, 60.0 / bpm,
                            self.beat.bar_beats)
                if self.beat.clocked(grid):
                    self._place_beat()
        elif event == "stop":
            self._clock_stopped = True  # `_turn` ends the band's notes
            if self.beat is not None and self.beat.clocked(None):
                self._place_beat()
        elif event in ("start", "continue"):
            self._clock_stopped = False

    def _link_lines(self) -> None:
        """An Ableton Link session's latest sixteenth (its thread queues them): the band's beat
        is the session's, bars of its quantum."""
        lines = self.follower.lines
        step, at = lines[-1]
        lines.clear()
        bpm = self.follower.bpm
        if abs(bpm - self._bpm) > 0.01 * max(self._bpm, 1.0):
            self._follow_tempo(bpm)
        bar = self.beat.bar_beats
        grid = Grid(at, (step / self.follower.steps_per_beat) % bar, 60.0 / bpm, bar)
        if self.beat.clocked(grid):
            self._place_beat()

    def _follow_tempo(self, bpm: float) -> None:
        """--wait and --answer are beats: their seconds at ``bpm``."""
        self._bpm = bpm
        beat_s = 60.0 / bpm
        self._settings(wait_s=self._beats[0] * beat_s, answer_s=self._beats[1] * beat_s)

    # --- the live controls ---------------------------------------------------------------------

    def _sampler(self) -> Sampler:
        return self.sampler

    def _tap(self, now: float) -> None:
        """The tap control: the band's beat from the player's taps."""
        if self.beat is not None and self.beat.tap(now):
            self._place_beat()

    def _answer(self, value: float) -> None:
        """On an external clock the answer is in beats, as --answer is."""
        if self.follower is None:
            super()._answer(value)
            return
        self._beats = (self._beats[0], value)
        self._follow_tempo(self._bpm)

    def _control(self, name: str, value: float, now: float) -> None:
        """A control changed: the next event is drawn under it (a proposal is taken back)."""
        self._take_back()
        super()._control(name, value, now)
        self._duet = self.voicing.voiced and self.settings.mode == "duet"
        self._under = self.settings.mode == "duet"
        if name == "mode":
            self._compose_bias()  # the melody's offsets hold in a duet only

    def _steer(self, name: str, value: float, now: float) -> None:
        """density and key: a conditioned model is told them (`steering`); one that reads no
        controls is steered by logit offsets on the band's NOTE_ONs (`_update_bias`), as is
        register on every model. end: the band closes the piece (`_begin_end`)."""
        if name == "end":
            self._begin_end(now)
            return
        if self.steering is not None and name in ("density", "key"):
            choice = self.steering.choice
            if name == "density":
                choice = replace(choice, density=self._unset_density if math.isnan(value)
                                 else float(value))
            else:
                choice = replace(choice, key=FOLLOW if value == 0 else KEYS[int(value)])
            self._set_controls(self.steering.choose(choice))
            self._follow = not choice.fixed
        self._update_bias()

    def _update_bias(self) -> None:
        """The band's NOTE_ON offsets: density (chased; without a density control a first
        guess of DENSITY_GAIN nats per e-fold above DENSITY_REF), register (none further than
        REGISTER_SPAN from its centre), key (without controls: none outside the scale)."""
        b, values = self._static_bias, self.panel.values
        b.fill(0.0)
        density, register = self._density_asked(values), values[INDEX["register"]]
        key = int(values[INDEX["key"]])
        # A density asked is chased on any model: a ceiling (`_refill`) and a NOTE_ON offset
        # that `_chase_density` moves towards it. A model that reads the density control is
        # told it, the offset starting from none at each new density; one that does not gets
        # the offset's first guess (feed-forward).
        chase = not math.isnan(density)
        if not chase:
            self._density_bias = 0.0
        elif self.steering is None:
            start = self._chased if self._chase else DENSITY_REF
            self._density_bias = self._clamp(self._density_bias * self._chase
                                             + DENSITY_GAIN * math.log(density / start))
        elif not self._chase or density != self._chased:
            self._density_bias = 0.0
        self._chased = density if chase else self._chased
        self._chase = chase
        if not math.isnan(register):
            b[self._is_on & (np.abs(self._on_pitch - register) > REGISTER_SPAN)] = -np.inf
        if self.steering is None and key > 0:
            scale = scale_mask(*parse_key(KEYS[key]))
            b[self._is_on & ~scale[self._on_pitch % 12]] = -np.inf
        self._compose_bias()

    def _compose_bias(self) -> None:
        """The static offsets plus the density offset on the band's NOTE_ONs, plus in a duet the
        melody note's offsets; no allocation."""
        np.multiply(self._notes_f, self._density_bias, out=self._density_tmp)
        np.add(self._static_bias, self._density_tmp, out=self._steer_bias)
        melody = self._melody_row is not None and self._under
        if melody:
            self._steer_bias += self._melody_row
        np.add(self._steer_bias, self._no_on, out=self._blocked_bias)  # no allocation
        self._biased = (bool(self._density_bias) or bool(self._static_bias.any())
                        or melody)
        self._gate()

    def _gate(self) -> None:
        """The sampler's offsets now: none, the steering ones, or (a chased density whose
        bucket is empty) those with every NOTE_ON shut, until the bucket refills."""
        if self._ending is not None:
            return
        if self._chase and self._tokens < 1.0:
            self.sampler.bias = self._blocked_bias
        else:
            self.sampler.bias = self._steer_bias if self._biased else None

    def _refill(self, now: float) -> None:
        """The ceiling's bucket: it fills at the density asked, up to DENSITY_BURST_S of it
        (one note at least); every band NOTE_ON takes one out."""
        target = self._density_asked(self._applied)
        cap = max(3.0, target * DENSITY_BURST_S)
        self._tokens = min(cap, self._tokens + (now - self._tokens_at) * target)
        self._tokens_at = now

    def _chase_density(self, now: float) -> None:
        """A density asked: every CHECK_EVERY_S while the band plays, move its NOTE_ON offset
        by the log ratio of the density asked to the one it played over the last
        DENSITY_WINDOW_S (an integral controller: a knob's density is what comes out)."""
        self._next_chase = now + CHECK_EVERY_S
        self._refill(now)
        if not self._band_may_play(now) or self._ending is not None:
            self._gate()
            return
        played = int(np.count_nonzero(self._onsets > now - DENSITY_WINDOW_S))
        rate = max(played, 0.5) / DENSITY_WINDOW_S
        target = self._density_asked(self._applied)  # as applied: a source may be writing
        step = DENSITY_RATE * math.log(target / rate)
        self._density_bias = self._clamp(self._density_bias + step)
        self._compose_bias()

    def _density_asked(self, values: np.ndarray) -> float:
        """The density the band keeps to: the panel's, else a call answer's pace (NaN: none)."""
        density = values[INDEX["density"]]
        return self._pace if math.isnan(density) else float(density)

    @staticmethod
    def _clamp(bias: float) -> float:
        return min(DENSITY_MAX_BIAS, max(-DENSITY_MAX_BIAS, bias))

    def _begin_end(self, now: float) -> None:
        """The end control: for `END_S` the band thins out (NOTE_ONs less likely, then none;
        NOTE_OFFs likelier), its new notes on the key's tonic chord where a key is known; then
        its last notes end and it rests until the player plays again."""
        if self._ending is not None:
            return
        if not self._band_may_play(now) and not self.tracker.sounding:
            self._rest()  # nothing to close
            return
        self._ending = now
        base = self._steer_bias.copy()
        self.end_key = key = self._ending_key()
        if key is not None:
            tonic, mode = key
            chord = np.zeros(12, bool)
            chord[[tonic, (tonic + (4 if mode == "major" else 3)) % 12, (tonic + 7) % 12]] = True
            base[self._is_on & ~chord[self._on_pitch % 12]] = -np.inf
        last = self._steer_bias.copy()
        last[self._is_on] = -np.inf
        self._end_base, self._end_last = base, last
        self.sampler.bias = self._end_bias

    def _ending_key(self) -> tuple[int, str] | None:
        key = int(self.panel.values[INDEX["key"]])
        if key > 0:
            return parse_key(KEYS[key])
        if self.steering is not None and self.steering.key() is not None:
            return self.steering.key()
        return estimate_key(self._pc) if self._pc.any() else None

    def _end_ramp(self, now: float) -> None:
        """An ending's offsets at ``now``: NOTE_ONs down 3 nats by half way, then none at all;
        NOTE_OFFs up to 4 nats."""
        f = min(1.0, (now - self._ending) / END_S)
        b = self._end_bias
        if f < 0.5:
            np.multiply(self._on_f, -6.0 * f, out=b)
            b += self._end_base
        else:
            np.copyto(b, self._end_last)
        np.multiply(self._off_f, 4.0 * f, out=self._end_tmp)
        b += self._end_tmp

    def _finish_end(self, now: float) -> None:
        self._band_stops(now)
        self._ending = None
        self._gate()
        self._rest()

    def _panic(self, now: float) -> None:
        """Every note off now (the model hears the band's end), then rest until the player
        plays."""
        self._ending = None
        self._gate()
        self._take_back()
        if self.output_ok and self.out.panic():  # every NOTE_OFF out first, at once,
            self.output_ok = False
        self._band_stops(now)  # then the model hears them (a step each: after, not between)
        self._rest()

    @property
    def ending(self) -> bool:
        return self._ending is not None

    # --- waiting ------------------------------------------------------------------------------

    def _ahead(self, now: float) -> float:
        """While waiting: make the player's next message cheap to absorb. It is fed onto the
        committed state (the snapshot, when a wait is on trial), usually as a TIME_SHIFT of the
        time since the stream's last event and then its note: that state is prepared, and the
        states after this step's and the next step's shift are computed ahead
        (`Stepper.speculate`), so absorbing costs a copy and the note's input product instead of
        two model steps; where one key is held, its release after each shift too (a melody's
        next message, often), so absorbing that is two copies. Returns when to look again: where
        the shift would change; never, once the longest shift is reached (a message then starts
        with one, however late). First, the beat tracker's work on the notes heard (off the
        path from a key to the band's answer: finding a beat costs a few tenths of a ms)."""
        if self.beat is not None and self.beat.analyse():
            self._place_beat()
        base = self._trial.snap if self._trial.open else None
        if base is None:
            self.stepper.prepare()
        release = self.enc.sole_release()
        step = self.enc.to_step(now - self.t0)
        for gap in (step - self.enc.step, step + 1 - self.enc.step):
            if self.inbox:
                return now
            after = base
            if gap > 0:
                after = self.stepper.speculate(
                    self._player[self._shift0 + min(gap, self._longest) - 1], base)
            if release is not None and not self.inbox:
                self.stepper.speculate(self._player[release], after)
        if step - self.enc.step >= self._longest:
            return np.inf
        return self.t0 + (step + 0.5) / self._sps

    def _next_deadline(self, now: float) -> float:
        times = [np.inf]
        if self._ending is not None:
            times.append(self._ending + END_S)
        if self._trial.open:
            times.append(self.t0 + self._deadline_step / self._sps)
        if self._click:
            times.append(self._click_off if self._click_off is not None else self._click_next)
        times.append(self.turns.next_change(now))
        return max(now, min(times))

    # --- the click ------------------------------------------------------------------------------

    def _tick_click(self, now: float) -> None:
        """``--click``: a wood block on channel 10 on each beat of the band's beat (louder on
        the downbeat), ended 50 ms later; a beat already past is not sounded late."""
        if self._click_off is not None and now >= self._click_off:
            self._click_off = None
            if self.output_ok:
                try:
                    self.out.note_off(CLICK_CHANNEL, CLICK_PITCH)
                except Exception:
                    self.output_ok = False
        grid = self.beat.grid() if self.beat is not None else None
        if grid is None:
            self._click_next = now + 0.1
            return
        beat = grid.beat_at(now)
        nearest = round(beat)
        at = now - (beat - nearest) * grid.period_s  # the nearest beat's time
        if (at <= now and now - at <= CLICK_LATE_S and at - self._click_last > grid.period_s / 2
                and self._click_off is None and self.output_ok):
            try:
                downbeat = nearest % grid.bar_beats == 0
                self.out.note_on(CLICK_CHANNEL, CLICK_PITCH,
                                 CLICK_ACCENT if downbeat else CLICK_VELOCITY, now, own=False)
                self._click_off, self._click_last = now + 0.05, at
            except Exception:
                self.output_ok = False
        self._click_next = at + grid.period_s if at <= now else at

