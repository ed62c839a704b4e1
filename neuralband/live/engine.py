"""The real-time loop: the player's notes go into the model as they happen, the band's come out.

Two threads only. The MIDI callback calls `Engine.receive`, which timestamps nothing itself (the
port did), appends to a deque and wakes the engine: no parsing, no inference. Everything else runs
in the engine thread (`Engine.run`), one pass at a time:

1. absorb every queued message: it becomes events at its real arrival time (the elapsed time as
   TIME_SHIFTs, then VELOCITY / NOTE_ON / NOTE_OFF, by `encoders.live_encoder.LiveEncoder`) fed to
   the model one by one;
2. if the turns (`turns.Turns`), the controls and the clock let the band play, it plays
   (`band_events.BandEvents`: a proposal kept ready, a wait fed on trial and taken back when the
   player comes in first);
3. sleep until the next deadline or input, computing the state the player's next message will
   need ahead (`Engine._ahead`), then spin for the last stretch (`time.sleep` alone drifts by a
   millisecond or more).

The controls steer the draw through `band_bias.BandBias`; a model that reads the beat is kept on
the band's beat (`beat.LiveBeat`: a followed clock's, --bpm, taps, or the player's, tracked).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import replace

import numpy as np

from neuralband.encoders.keys import estimate_key, parse_key
from neuralband.encoders.live_encoder import LiveEncoder
from neuralband.live.band_bias import END_S
from neuralband.live.band_events import BandEvents
from neuralband.live.beat import CLICK_CHANNEL, Click, LiveBeat
from neuralband.live.panel import INDEX, KEYS, control
from neuralband.live.sync import ClockFollower, LinkFollower, beat_grid
from neuralband.live.turns import PlaySettings
from neuralband.runtime import Stepper
from neuralband.sampling import Rules, Sampler
from neuralband.steering import FOLLOW, FREE, ControlChoice, steer

ANSWER_START_S = 0.25  # a call answer's first note comes this soon after the player's pause
START_STEPS = 10  # the stream opens with TIME_SHIFT(10): "nothing yet", as `generate` starts
BEAT_DRIFT = 0.02  # beats the model's beat clock may be off the band's before it is placed again
TEMPO_DRIFT = 0.005  # and the share its beat's length may be off
LEARNT_REST_S = 0.3  # `play --learn-me`: a new version comes in once the player is this quiet
LEARNT_FEEDS = 32  # ... and at most this many events behind the stream (it is fed them then)


class Engine(BandEvents):
    """The instrument's state and loop; ports, signals and printing live in
    `neuralband.live.session`."""

    def __init__(self, stepper: Stepper, send: Callable[[list[int]], None],
                 settings: PlaySettings | None = None, rules: Rules | None = None,
                 seed: int | None = None, clock: Callable[[], float] = time.perf_counter,
                 record: bool = False, keep_tokens: bool = False,
                 controls: ControlChoice | None = None, sync: str = "internal",
                 beat: LiveBeat | None = None, click: bool = False):
        settings = settings or PlaySettings()
        # A conditioned model's key and density: fixed, free, or following the player's notes.
        steering = steer(stepper, controls)
        super().__init__(stepper, send, settings, rules or Rules(), seed, clock, record,
                         keep_tokens, conditioned=steering is not None)
        self.steering = steering
        # With keep_tokens, each change of the controls: (tokens committed before it, vector),
        # so the committed stream replays exactly into a fresh model.
        self.control_changes: list[tuple[int, np.ndarray]] = []
        # `play --learn-me` (`neuralband.live.learner`): a learnt version waiting for a pause, and
        # the version the band plays (0: the model it started with).
        self.learnt = None
        self.version = 0
        self._follow = self.steering is not None and not self.steering.choice.fixed
        self._answer_seen: float | None = None  # the answer its pace and `_opening` are for
        self.end_key: tuple[int, str] | None = None  # the key it closed in, where known
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
        self.click = Click() if click and self.beat is not None else None
        if self.click is not None and CLICK_CHANNEL in self._band_voice:
            raise ValueError("the click sounds on channel 10, which a band voice uses: "
                             "move the band with --channel")
        self._unset_density = FOLLOW
        if self.steering is not None:  # the panel starts from the choice
            choice = self.steering.choice
            if isinstance(choice.density, str):
                self._unset_density = choice.density
            else:
                self._reflect("density", float(choice.density))
                # unset, a duet band follows you where its model knows how (`steering`)
                known = not self.voicing.voiced or self.steering.arrangement is not None
                self._unset_density = FOLLOW if known else FREE
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
        self.bias.clear_melody()
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
        if self.click is not None:
            try:
                self.click.tick(now, self.beat.grid(), self.out if self.output_ok else None)
            except Exception:  # the port went away mid-send; `poll` will say so
                self.output_ok = False
        if isinstance(self.follower, LinkFollower) and self.follower.lines:
            self._clock_line()
        self._absorb_inbox()
        self._check_panel(now)
        if self.bias.ending is not None and now >= self.bias.ending + END_S:
            self._finish_end(now)
        if self._band_may_play(now):
            self._play(now)
        elif self.tracker.sounding:
            self._band_stops(now)
        else:
            self._take_back()
        self._check_lengths(self.clock())
        if self.bias.chasing and now >= self.bias.next_chase:
            # as applied: a source may be writing the panel
            self.bias.chase(now, self._applied, self._band_may_play(now))
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

    def _close(self) -> int:
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
        if status != 0xB0:
            self.bias.player_note(data[1], is_on)
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
            self.bias.ending is not None
            or self.turns.band_may_play(now, bool(self.enc.open_pitches)))
        if self.turns.answer_start != self._answer_seen:
            self._answer_begins(self.turns.answer_start)
        return may

    def _answer_begins(self, start: float | None) -> None:
        """A call's answer begins at ``start`` (None: it is over): its first note within
        ANSWER_START_S, at the pace of the phrase it answers (unless a density is asked)."""
        self._answer_seen = start
        self._opening = None if start is None else start + ANSWER_START_S
        self.bias.pace = math.nan if start is None else self.turns.pace()
        self.bias.update(self.panel.values)

    # --- an external clock ----------------------------------------------------------------------

    def _clock_message(self, t: float, data: list[int]) -> None:
        event = self.follower.message(t, data)
        if event == "line":
            self._clock_line()
        elif event == "stop":
            self._clock_stopped = True  # `_turn` ends the band's notes
            if self.beat is not None and self.beat.clocked(None):
                self._place_beat()
        elif event in ("start", "continue"):
            self._clock_stopped = False

    def _clock_line(self) -> None:
        """The followed clock's latest sixteenth (a MIDI clock's, or an Ableton Link session's,
        which its thread queues): its tempo, and its beat the band's (`sync.beat_grid`)."""
        self.follower.lines.clear()  # an event model keeps no grid of steps: tempo and beat
        bpm = self.follower.bpm
        if not bpm:
            return
        if abs(bpm - self._bpm) > 0.01 * max(self._bpm, 1.0):
            self._follow_tempo(bpm)
        if self.beat is not None and self.beat.clocked(beat_grid(self.follower,
                                                                 self.beat.bar_beats)):
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
        self.bias.under = self.settings.mode == "duet"
        if name == "mode":
            self.bias.compose()  # the melody's offsets hold in a duet only

    def _steer(self, name: str, value: float, now: float) -> None:
        """density and key: a conditioned model is told them (`steering`); one that reads no
        controls is steered by logit offsets on the band's NOTE_ONs, as is
        register on every model (`BandBias`). end: the band closes the piece (`_begin_end`)."""
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
        self.bias.update(self.panel.values)

    def _begin_end(self, now: float) -> None:
        """The end control: for `END_S` the band thins out, its new notes on the key's tonic
        chord where a key is known (`BandBias.begin_end`); then its last notes end and it rests
        until the player plays again."""
        if self.bias.ending is not None:
            return
        if not self._band_may_play(now) and not self.tracker.sounding:
            self._rest()  # nothing to close
            return
        self.end_key = self._ending_key()
        self.bias.begin_end(now, self.end_key)

    def _ending_key(self) -> tuple[int, str] | None:
        key = int(self.panel.values[INDEX["key"]])
        if key > 0:
            return parse_key(KEYS[key])
        if self.steering is not None and self.steering.key() is not None:
            return self.steering.key()
        return estimate_key(self._pc) if self._pc.any() else None

    def _finish_end(self, now: float) -> None:
        self._band_stops(now)
        self.bias.end_over()
        self._rest()

    def _panic(self, now: float) -> None:
        """Every note off now (the model hears the band's end), then rest until the player
        plays."""
        self.bias.end_over()
        self._take_back()
        if self.output_ok and self.out.panic():  # every NOTE_OFF out first, at once,
            self.output_ok = False
        self._band_stops(now)  # then the model hears them (a step each: after, not between)
        self._rest()

    @property
    def ending(self) -> bool:
        return self.bias.ending is not None

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
        if self.bias.ending is not None:
            times.append(self.bias.ending + END_S)
        if self._trial.open:
            times.append(self.t0 + self._deadline_step / self._sps)
        if self.click is not None:
            times.append(self.click.due())
        times.append(self.turns.next_change(now))
        return max(now, min(times))
