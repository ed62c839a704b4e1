"""The model's tokens as the instrument sees them: who plays each one, and which Performance event.

A plain model (388 classes) has one stream that the player and the band share. A voice-packed
model (`encoders.voices`) says who plays every note: the player is the lead (voice 0) and the band
is voices 1..; the band samples only its own voices (a mask over the lead's block), each band voice
keeps its own grammar (`sampling.NoteTracker`) and plays on its own MIDI channel. The engine and
`generate` go through `Voicing`, so the same loop drives both kinds of model.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from neuralband.encoders.keys import CONSONANT_INTERVALS
from neuralband.encoders.performance import Event
from neuralband.encoders.schemes import EventScheme
from neuralband.sampling import GridPull, NoteTracker, Rules


def from_info(info) -> Voicing:
    """The voicing of a model file (`modelfile.ModelInfo`): its scheme's, with the voices'
    polyphony from its training data. A model of no events (a grid's steps, text) is refused
    with a ValueError that says what it plays instead."""
    scheme = info.scheme
    if scheme.plays == "clock":
        raise ValueError("a grid model plays grid steps, not events: accompany a melody with it "
                         "(generate --lead, neuralband.grid_band) or play it live (play, "
                         "neuralband.live.grid_engine)")
    if scheme.plays != "events":
        raise ValueError(f"a {scheme.name} model plays no notes: give it `generate --length N`")
    return Voicing(scheme, info.summary.get("voice_polyphony"))  # (kept for voiced models)


class Voicing:
    """Lookup tables over the model's vocabulary, built once from its scheme (`parts`): voice
    (-1 for a TIME_SHIFT), the Performance token, whether it is a TIME_SHIFT and how many steps
    it moves."""

    def __init__(self, scheme: EventScheme, polyphony: list[int] | None = None):
        self.scheme = scheme
        self.settings = s = scheme.settings
        # None: one stream the player and the band share
        self.voice_settings = voices = scheme.voice_settings if scheme.voiced else None
        self.polyphony = polyphony  # per voice, from the training data (model summary)
        self.vocab_size = scheme.input_classes
        self.voice_of, self.base_of = scheme.parts()
        self.band_voices: tuple[int, ...] = tuple(range(1, voices.voices)) if voices else (0,)
        self.every_voice: tuple[int, ...] = tuple(range(voices.voices)) if voices else (0,)
        # the player's Performance token -> model token (voice-packed: the lead's)
        self.player = np.asarray([self.token(0, b) for b in range(s.vocab_size)], np.int64)
        self.is_shift = self.voice_of < 0
        self.shift_steps = np.where(self.is_shift, s.values[self.base_of], 0)
        self.voice_list = self.voice_of.tolist()  # plain ints for the per-event path
        self.base_list = self.base_of.tolist()
        # The lead's events, which the band never plays but may expect (`band_mask`).
        self.is_lead = (self.voice_of == 0) if voices is not None else np.zeros_like(self.is_shift)
        self.lead_list = self.is_lead.tolist()
        self._first_shift = int(np.argmax(self.is_shift))  # TIME_SHIFTs are last, shortest first
        # Each band NOTE_ON's pitch (-1 for every other token), for the melody's offsets.
        band_on = ~self.is_shift & ~self.is_lead & (s.kinds[self.base_of] == Event.NOTE_ON)
        self.band_on_pitch = np.where(band_on, s.values[self.base_of], -1)
        self._melody_offsets: dict[tuple[float, float], np.ndarray] = {}

    @property
    def voiced(self) -> bool:
        return self.voice_settings is not None

    def token(self, voice: int, base: int) -> int:
        """The model token of a Performance event played by ``voice`` (ignored when plain)."""
        voices = self.voice_settings
        return int(voices.pack(voice, base)) if voices is not None else int(base)

    def shift(self, steps: int) -> int:
        """The model token of TIME_SHIFT(steps)."""
        return self.token(0, self.settings.time_shift + steps - 1)

    def band_mask(self, allowed: np.ndarray, out: np.ndarray, expect_lead: bool = False,
                  after: int = 0) -> np.ndarray:
        """What the band draws its next event from, into ``out``: the events its grammar
        ``allowed``; with ``expect_lead`` the lead's too (drawing one says the model expects the
        melody to come next: the band waits for it); ``after`` steps already passed with
        nothing played: only the TIME_SHIFTs longer than that.

        This is how a band follows a lead it cannot foresee, without playing more than the
        model would: the model's next TIME_SHIFT and the event after it say when the next
        event comes and whose it is. Where it is the lead's and the lead does not come, the
        band does not play at that moment (the model would then have to place an event at a
        time where it had said "the melody"); it goes back and draws again from the times
        after it. (Spreading the lead's probability over the band's waits, as before, made a
        band play 1.55x the real band's notes/s: each wait the lead did not cut short ended in
        a band event.)
        """
        if not self.voiced:
            raise ValueError("a band mask is for voice-packed models (a plain stream is shared)")
        np.copyto(out, allowed)
        if expect_lead:
            out |= self.is_lead
        if after:
            out[:self._first_shift] = False
            out[self._first_shift:self._first_shift + after] = False
        return out

    def melody_offsets(self, rules: Rules) -> np.ndarray | None:
        """Per melody pitch (rows 0..127), the logit offsets over the vocabulary that keep a
        duet band under the melody note sounding and out of its way: ``rules.under_melody`` nats
        off each band NOTE_ON above it, ``rules.clash`` off each a second, tritone or seventh
        from it (any octave). None where both are 0 or the model has no voices. Built once per
        pair of settings (128 x vocabulary), so the live loop only picks a row. A plain model's
        every NOTE_ON is the band's (the player's come in from outside the draw)."""
        if not (rules.under_melody or rules.clash):
            return None
        cached = self._melody_offsets.get((rules.under_melody, rules.clash))
        if cached is not None:
            return cached
        melody = np.arange(128)[:, None]
        band = self.band_on_pitch[None, :]
        clashes = ~np.isin((melody - band) % 12, sorted(CONSONANT_INTERVALS))
        table = -(rules.under_melody * (band > melody) + rules.clash * clashes)
        table[:, self.band_on_pitch < 0] = 0.0
        table.flags.writeable = False
        self._melody_offsets[(rules.under_melody, rules.clash)] = table
        return table

    def grid_pull(self, rules: Rules) -> GridPull | None:
        """``rules.tight`` over this vocabulary's waits (None where 0; `sampling.GridPull`)."""
        if not rules.tight:
            return None
        return GridPull(rules.tight, self.shift_steps / self.settings.steps_per_second)

    def tracker(self, rules: Rules, voices: tuple[int, ...] | None = None):
        """The grammar for the voices the model may play (default: the band's)."""
        if not self.voiced:
            return NoteTracker(rules, self.settings)
        return VoiceTracker(self, rules, self.band_voices if voices is None else voices)


class VoiceTracker:
    """`NoteTracker`'s interface over voice-packed tokens: one grammar per voice; the events
    allowed next are those of the playing voices only (the lead's block stays masked)."""

    def __init__(self, voicing: Voicing, rules: Rules, playing: tuple[int, ...]):
        voices = voicing.voice_settings
        assert voices is not None
        self.voicing = voicing
        # Each voice holds at most as many notes as the data's voice did (a chorale's alto:
        # one), and never more than the rules allow.
        cap = voicing.polyphony or [rules.max_polyphony] * voices.voices
        self.parts = [NoteTracker(replace(rules, max_polyphony=min(rules.max_polyphony, n)),
                                  voicing.settings) for n in cap]
        self.playing = playing
        self._allowed = np.zeros(voicing.vocab_size, bool)
        self._shift0 = voices.time_shift
        s = voicing.settings
        self._ts, self._vel, self._off = s.time_shift, s.velocity, s.note_off
        self._nudge = np.zeros(voicing.vocab_size, np.float64)
        # Where each playing voice's blocks start in the vocabulary: its NOTE_ONs, NOTE_OFFs,
        # VELOCITYs (contiguous, as the scheme packs them) and the block's end.
        self._blocks = [(v, int(voices.pack(v, s.note_on)), int(voices.pack(v, s.note_off)),
                         int(voices.pack(v, s.velocity)), int(voices.pack(v, s.velocity))
                         + s.velocity_bins) for v in playing]

    @property
    def step(self) -> int:
        return self.parts[0].step

    @property
    def sounding(self) -> int:
        """How many notes the playing voices hold."""
        return sum(self.parts[v].sounding for v in self.playing)

    def holds(self, voice: int, pitch: int) -> bool:
        return bool(self.parts[voice].count[pitch])

    def update(self, token: int, own: bool = True) -> None:
        """One event of the stream (``own`` is implied by the token's voice)."""
        voice = self.voicing.voice_list[token]
        base = self.voicing.base_list[token]
        if voice < 0:
            for part in self.parts:
                part.update(base)
        else:
            self.parts[voice].update(base)

    def allowed(self) -> np.ndarray:
        """Boolean mask over the vocabulary (a reused buffer): the playing voices' events, and
        the TIME_SHIFTs that every playing voice allows; an overdue note's NOTE_OFF alone."""
        a, ts, vel = self._allowed, self._ts, self._vel
        a.fill(False)
        late = False
        for v, _, off, _, _ in self._blocks:
            over = self.parts[v].overdue()
            if len(over):
                a[off + over] = True
                late = True
        if late:
            return a
        shifts = a[self._shift0:]
        shifts.fill(True)
        for v, on, _, vel_at, end in self._blocks:
            mask = self.parts[v].allowed()
            a[on:vel_at] = mask[:ts]  # NOTE_ON and NOTE_OFF
            a[vel_at:end] = mask[vel:]
            shifts &= mask[ts:vel]
        return a

    def endings(self) -> np.ndarray | None:
        """`NoteTracker.endings` of the playing voices, over the model's vocabulary (a reused
        buffer), or None while none of their notes is long."""
        found = False
        for v, _, off, _, _ in self._blocks:
            bonus = self.parts[v].endings()
            if bonus is None:
                continue
            if not found:
                self._nudge.fill(0.0)
                found = True
            self._nudge[off:off + 128] = bonus[self._off:self._off + 128]
        return self._nudge if found else None

    def save(self) -> tuple:
        return tuple(part.save() for part in self.parts)

    def restore(self, state: tuple) -> None:
        for part, saved in zip(self.parts, state, strict=True):
            part.restore(saved)

    def closing_tokens(self) -> list[int]:
        """NOTE_OFFs for every note the playing voices hold."""
        return [self.voicing.token(v, tok) for v in self.playing
                for tok in self.parts[v].closing_tokens()]


class MelodyNote:
    """Which melody note sounds now, as the accompaniment metrics read it: of the lead's notes
    still held, the one begun last (None in a rest). A handful of pitches, updated per note."""

    def __init__(self) -> None:
        self._held: list[int] = []

    @property
    def now(self) -> int | None:
        return self._held[-1] if self._held else None

    def update(self, pitch: int, on: bool) -> int | None:
        """A lead NOTE_ON (``on``) or NOTE_OFF of ``pitch``; the melody note after it."""
        if on:
            self._held.append(pitch)
        elif pitch in self._held:
            self._held.remove(pitch)  # the oldest open note of its pitch, as decoding ends it
        return self.now

    def clear(self) -> None:
        self._held.clear()
