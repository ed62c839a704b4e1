"""Performance events from live MIDI, as the messages arrive: the player's half of the engine's
joint token stream.

`LiveEncoder` applies the rules of `encoders.performance` (which applies note_seq's) one message
at a time, so that what a player's take becomes live is what the same take becomes offline:

- times are steps ``int(seconds * steps_per_second + 0.5)``; the stream never goes back, so a
  time before the current step counts as the current step;
- TIME_SHIFTs of at most ``max_shift_steps`` then the remainder; a VELOCITY token only when the
  bin differs from the stream's current one (0 before any);
- drums (channel 9) are ignored unless ``include_drums``, and never sustained;
- the sustain pedal (CC64 >= 64 is down), per channel, as `encoders.sustain`: a note released
  with the pedal down sounds on until the pedal goes up; an onset under the pedal ends every
  sounding note of its pitch on its channel at that onset, held or sustained (its later release
  then belongs to the new note); one ended at the very instant it began is dropped;
- a note that would end in the step it began lasts one step: its NOTE_OFF is deferred and sent
  as soon as any call reaches the next step;
- a note_off ends every held note of its pitch and channel, as pretty_midi pairs a file's notes
  (so a lost note_off cannot leave a note stuck); one for a pitch not sounding is ignored.

Where the two differ, by design: offline, the events of one 10 ms step are ordered by note onset
then pitch (the NOTE_OFF of a note begun earlier first); live they follow arrival order, because
a token cannot wait for the rest of its step. The tokens then differ but not the notes: decoding
pairs a NOTE_OFF with the oldest open note of its pitch, and a NOTE_OFF is only sent for a note
begun in an earlier step, so each pitch's NOTE_ONs and the steps of its NOTE_OFFs are the same
either way. At one instant, messages must come as in a file read by note_seq: pedal, then
releases, then onsets (pretty_midi's same-tick rule, that a note_off does not end a note begun
on its tick, is not copied: live, arrival order is the truth). One case cannot be exact: an
onset under the pedal that drops a note of its pitch and channel begun at the very same instant.
That NOTE_ON is already out, so the encoder sends a NOTE_OFF in the same step, which decoding
drops; where the stream holds an older open note of that pitch (another channel's, or one whose
NOTE_OFF is deferred), that NOTE_OFF would close the wrong note, so the new onset takes the
dropped note's NOTE_ON over instead, with the dropped note's velocity bin.

Pure: no clock, no I/O. The engine interleaves the band's sampled tokens and reports them with
`LiveEncoder.observe`, so that time and velocity are counted from the joint stream.
"""

from __future__ import annotations

from dataclasses import dataclass

import mido

from neuralband.encoders.midi_io import SUSTAIN_CC
from neuralband.encoders.performance import DEFAULT_SETTINGS, EncoderSettings, Event, shift_run
from neuralband.encoders.sustain import PEDAL_DOWN_MIN

DRUM_CHANNEL = 9  # MIDI channel 10, counted from 0


@dataclass
class _Note:
    """One of the player's notes whose NOTE_ON is in the stream and NOTE_OFF not yet."""

    pitch: int
    channel: int
    start_s: float  # onset as given, for note_seq's same-instant drop
    start_step: int
    bin: int
    ordinal: int  # how many NOTE_ONs of this pitch the stream had carried before this one


class LiveEncoder:
    """Timestamped MIDI messages -> Performance events, as they arrive (pure: no clock, no I/O).

    Every method that takes a time returns the tokens to feed, in order: first any deferred
    NOTE_OFFs that fall due by then (each after the TIME_SHIFTs to its step), then, when the
    message makes an event, TIME_SHIFTs to its step, a VELOCITY if the bin changes, and the
    NOTE_ON or NOTE_OFF. A message that makes no event returns only those deferred NOTE_OFFs.
    """

    def __init__(self, settings: EncoderSettings = DEFAULT_SETTINGS) -> None:
        self.settings = settings
        self.step = 0  # the stream's current step: the time of its last event
        self.velocity_bin = 0  # the stream's current velocity bin, 0 before any
        self._held: dict[tuple[int, int], list[_Note]] = {}  # (channel, pitch) -> oldest first
        self._sustained: dict[int, list[_Note]] = {}  # channel -> released under the pedal
        self._pedal: dict[int, bool] = {}  # channel -> down
        self._deferred: list[tuple[int, int]] = []  # (due step, pitch), due steps non-decreasing
        # The decoder's view of every pitch (player and band): NOTE_ONs sent, NOTE_OFFs matched.
        self._ons = [0] * 128
        self._offs = [0] * 128

    # --- time ------------------------------------------------------------------------------

    def to_step(self, seconds: float) -> int:
        """The step of a time, as the offline encoder rounds it, never before the current step."""
        return max(int(seconds * self.settings.steps_per_second + 0.5), self.step)

    def _shift_to(self, target: int, out: list[int]) -> None:
        """TIME_SHIFTs from the current step to ``target``, by the offline encoder's shift rule
        (`performance.shift_run`)."""
        if target > self.step:
            max_shift, first = self.settings.max_shift_steps, self.settings.time_shift
            count, last = shift_run(target - self.step, max_shift)
            out.extend([first + max_shift - 1] * (int(count) - 1))
            out.append(first + int(last) - 1)
            self.step = target

    def _flush(self, target: int, out: list[int]) -> None:
        """Send the deferred NOTE_OFFs due at or before ``target``, each at its own step."""
        while self._deferred and self._deferred[0][0] <= target:
            due, pitch = self._deferred.pop(0)
            self._shift_to(due, out)
            self._send_off(pitch, out)

    def _begin(self, seconds: float) -> tuple[int, list[int]]:
        """The step of a message and the deferred NOTE_OFFs it brings due."""
        target = self.to_step(seconds)
        out: list[int] = []
        self._flush(target, out)
        return target, out

    # --- tokens ----------------------------------------------------------------------------

    def _send_on(self, pitch: int, bin_: int, out: list[int]) -> None:
        if bin_ != self.velocity_bin:
            out.append(self.settings.velocity + bin_ - 1)
            self.velocity_bin = bin_
        out.append(self.settings.note_on + pitch)
        self._ons[pitch] += 1

    def _send_off(self, pitch: int, out: list[int]) -> None:
        out.append(self.settings.note_off + pitch)
        if self._offs[pitch] < self._ons[pitch]:
            self._offs[pitch] += 1

    def _end(self, note: _Note, target: int, out: list[int]) -> None:
        """End a note at ``target``; one that began in that step lasts one step (deferred)."""
        if target > note.start_step:
            self._shift_to(target, out)
            self._send_off(note.pitch, out)
        else:
            self._deferred.append((note.start_step + 1, note.pitch))

    # --- messages --------------------------------------------------------------------------

    def _ignored(self, channel: int) -> bool:
        return channel == DRUM_CHANNEL and not self.settings.include_drums

    def _sustains(self, channel: int) -> bool:
        return (self.settings.sustain and channel != DRUM_CHANNEL
                and self._pedal.get(channel, False))

    def note_on(self, seconds: float, pitch: int, velocity: int, channel: int = 0) -> list[int]:
        """A key pressed: its NOTE_ON (velocity 0 is a release, as in MIDI)."""
        _check(pitch=pitch, velocity=velocity, channel=channel)
        if velocity == 0:
            return self.note_off(seconds, pitch, channel)
        target, out = self._begin(seconds)
        if self._ignored(channel):
            return out
        bin_ = int(self.settings.velocity_to_bin(velocity))
        dropped: list[_Note] = []
        if self._sustains(channel):
            # note_seq: an onset under the pedal ends every sounding note of its pitch there.
            key = (channel, pitch)
            sustained = self._sustained.get(channel, [])
            ending = self._held.pop(key, []) + [n for n in sustained if n.pitch == pitch]
            if sustained:
                self._sustained[channel] = [n for n in sustained if n.pitch != pitch]
            for note in sorted(ending, key=lambda n: n.ordinal):
                if note.start_s == seconds:  # ended the instant it began: note_seq drops it
                    dropped.append(note)
                else:
                    self._end(note, target, out)
        self._shift_to(target, out)
        for note in dropped:
            if note.ordinal == self._offs[pitch]:
                # The oldest open note of this pitch: a NOTE_OFF in its own step drops it.
                self._send_off(pitch, out)
            else:
                # A NOTE_OFF would close an older note: the new onset takes this NOTE_ON over.
                self._held.setdefault((channel, pitch), []).append(
                    _Note(pitch, channel, seconds, note.start_step, note.bin, note.ordinal))
                return out
        note = _Note(pitch, channel, seconds, self.step, bin_, self._ons[pitch])
        self._send_on(pitch, bin_, out)
        self._held.setdefault((channel, pitch), []).append(note)
        return out

    def note_off(self, seconds: float, pitch: int, channel: int = 0) -> list[int]:
        """A key released: every held note of its pitch and channel ends (as pretty_midi pairs a
        file's notes), or sounds on while the pedal is down."""
        _check(pitch=pitch, channel=channel)
        target, out = self._begin(seconds)
        held = self._held.pop((channel, pitch), [])
        if self._ignored(channel) or not held:
            return out
        if self._sustains(channel):
            self._sustained.setdefault(channel, []).extend(held)
        else:
            for note in held:
                self._end(note, target, out)
        return out

    def sole_release(self) -> int | None:
        """The NOTE_OFF that releasing the one held key would bring, for a caller guessing the
        next event (a melody's next message is often that release); None when no key or
        several are held, or the pedal would keep the note sounding."""
        held = [(key, notes) for key, notes in self._held.items() if notes]
        if len(held) != 1 or len(held[0][1]) != 1 or self._sustains(held[0][0][0]):
            return None
        return self.settings.note_off + held[0][0][1]

    def control_change(self, seconds: float, control: int, value: int,
                       channel: int = 0) -> list[int]:
        """A controller moved; only the sustain pedal (CC64) matters: up ends sustained notes."""
        _check(control=control, value=value, channel=channel)
        target, out = self._begin(seconds)
        if control != SUSTAIN_CC or self._ignored(channel):
            return out
        down = value >= PEDAL_DOWN_MIN
        self._pedal[channel] = down
        if not down:
            for note in self._sustained.pop(channel, []):
                self._end(note, target, out)
        return out

    def message(self, seconds: float, msg: mido.Message) -> list[int]:
        """Dispatch a mido message; types other than notes and controllers make no event."""
        if msg.type == "note_on":
            return self.note_on(seconds, msg.note, msg.velocity, msg.channel)
        if msg.type == "note_off":
            return self.note_off(seconds, msg.note, msg.channel)
        if msg.type == "control_change":
            return self.control_change(seconds, msg.control, msg.value, msg.channel)
        return self._begin(seconds)[1]

    def advance(self, seconds: float) -> list[int]:
        """TIME_SHIFTs up to a time, with any deferred NOTE_OFFs that fall due: the engine calls
        it before the band takes its turn, so that the band's event lands at the right time."""
        target, out = self._begin(seconds)
        self._shift_to(target, out)
        return out

    def observe(self, token: int) -> None:
        """A token someone else put in the stream (the band): TIME_SHIFT moves the step,
        VELOCITY sets the bin; NOTE_ON/NOTE_OFF are only counted (decoding pairs them with ours).
        """
        s = self.settings
        tok = int(token)
        if not 0 <= tok < s.vocab_size:
            raise ValueError(f"token {tok} is outside the vocabulary 0..{s.vocab_size - 1}")
        kind, value = s.kinds[tok], int(s.values[tok])
        if kind == Event.NOTE_ON:
            self._ons[value] += 1
        elif kind == Event.NOTE_OFF:
            if self._offs[value] < self._ons[value]:
                self._offs[value] += 1
        elif kind == Event.TIME_SHIFT:
            self.step += value
        else:
            self.velocity_bin = value

    def close(self, seconds: float) -> list[int]:
        """End of take: NOTE_OFFs for every player note still open (held, sustained or
        deferred); a note begun in the closing step still lasts one step."""
        target, out = self._begin(seconds)
        notes = [n for held in self._held.values() for n in held]
        notes += [n for sustained in self._sustained.values() for n in sustained]
        self._held.clear()
        self._sustained.clear()
        for note in sorted(notes, key=lambda n: (n.start_step, n.ordinal)):
            self._end(note, target, out)
        if self._deferred:
            self._flush(self._deferred[-1][0], out)
        return out

    @property
    def open_pitches(self) -> frozenset[int]:
        """Pitches the player holds or sustains now (a note whose NOTE_OFF is deferred is over)."""
        held = {pitch for (_, pitch), notes in self._held.items() if notes}
        return frozenset(held | {n.pitch for ns in self._sustained.values() for n in ns})

    @property
    def pedal_down(self) -> frozenset[int]:
        """Channels whose sustain pedal is down now."""
        return frozenset(ch for ch, down in self._pedal.items() if down)


def _check(**fields: int) -> None:
    """Refuse values outside MIDI's ranges, naming the field."""
    limits = {"pitch": 127, "velocity": 127, "control": 127, "value": 127, "channel": 15}
    for name, value in fields.items():
        if not 0 <= value <= limits[name]:
            raise ValueError(f"{name} must be in 0..{limits[name]}, got {value}")
