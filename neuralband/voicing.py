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

from encoders.performance import EncoderSettings
from encoders.voices import VoiceScheme
from neuralband.sampling import NoteTracker, Rules, Sampler


def from_info(info) -> Voicing:
    """The voicing of a model file (`modelfile.ModelInfo`); a grid model has none (it plays
    grid steps, `neuralband.gridband`, not events), and is refused with a ValueError."""
    if getattr(info, "grid", None) is not None:
        raise ValueError("a grid model plays grid steps, not events: accompany a melody with it "
                         "(generate --lead, neuralband.gridband) or play it live (play, "
                         "neuralband.gridplay)")
    polyphony = info.summary.get("voice_polyphony") if info.voices else None
    return Voicing(info.encoder, info.voices, polyphony)


class Voicing:
    """Lookup tables over the model's vocabulary, built once: voice (-1 for a TIME_SHIFT), the
    Performance token, whether it is a TIME_SHIFT and how many steps it moves."""

    def __init__(self, settings: EncoderSettings, voices: VoiceScheme | None = None,
                 polyphony: list[int] | None = None):
        self.settings = settings
        self.voices = voices
        self.polyphony = polyphony  # per voice, from the training data (model summary)
        s = settings
        if voices is None:
            self.vocab_size = s.vocab_size
            self.base_of = np.arange(self.vocab_size, dtype=np.int64)
            is_shift = (self.base_of >= s.time_shift) & (self.base_of < s.velocity)
            self.voice_of = np.where(is_shift, -1, 0)
            self.band_voices: tuple[int, ...] = (0,)
            self.player = self.base_of  # the player's Performance token -> model token
        else:
            self.vocab_size = voices.vocab_size
            self.voice_of, self.base_of = voices.unpack(np.arange(self.vocab_size))
            self.band_voices = tuple(range(1, voices.voices))
            base = np.arange(s.vocab_size)
            self.player = np.asarray(voices.pack(np.zeros_like(base), base), np.int64)
        self.is_shift = self.voice_of < 0
        self.shift_steps = np.where(self.is_shift, self.base_of - s.time_shift + 1, 0)
        self.voice_list = self.voice_of.tolist()  # plain ints for the per-event path
        self.base_list = self.base_of.tolist()

    @property
    def voiced(self) -> bool:
        return self.voices is not None

    def token(self, voice: int, base: int) -> int:
        """The model token of a Performance event played by ``voice`` (ignored when plain)."""
        return int(self.voices.pack(voice, base)) if self.voices else int(base)

    def shift(self, steps: int) -> int:
        """The model token of TIME_SHIFT(steps)."""
        return self.token(0, self.settings.time_shift + steps - 1)

    def sampler(self, rules: Rules, seed: int | None = None,
                voices: tuple[int, ...] | None = None) -> Sampler:
        """The sampler for the voices the model may play (default: the band's): it waits for
        the others where the model expects them (see `Sampler`)."""
        if self.voices is None:
            return Sampler(rules, seed, self.vocab_size)
        playing = self.band_voices if voices is None else voices
        others = (self.voice_of >= 0) & ~np.isin(self.voice_of, playing)
        return Sampler(rules, seed, self.vocab_size, others=others, waits=self.is_shift)

    def tracker(self, rules: Rules, voices: tuple[int, ...] | None = None):
        """The grammar for the voices the model may play (default: the band's)."""
        if self.voices is None:
            return NoteTracker(rules, self.settings)
        return VoiceTracker(self, rules, self.band_voices if voices is None else voices)


class VoiceTracker:
    """`NoteTracker`'s interface over voice-packed tokens: one grammar per voice; the events
    allowed next are those of the playing voices only (the lead's block stays masked)."""

    def __init__(self, voicing: Voicing, rules: Rules, playing: tuple[int, ...]):
        assert voicing.voices is not None
        self.voicing = voicing
        scheme = voicing.voices
        # Each voice holds at most as many notes as the data's voice did (a chorale's alto:
        # one), and never more than the rules allow.
        cap = voicing.polyphony or [rules.max_polyphony] * scheme.voices
        self.parts = [NoteTracker(replace(rules, max_polyphony=min(rules.max_polyphony, n)),
                                  voicing.settings) for n in cap]
        self.playing = playing
        self._allowed = np.zeros(voicing.vocab_size, bool)
        self._shift0 = scheme.time_shift
        s = voicing.settings
        self._ts, self._vel = s.time_shift, s.velocity
        # Where each playing voice's blocks start in the vocabulary: its NOTE_ONs, NOTE_OFFs,
        # VELOCITYs (contiguous, as the scheme packs them) and the block's end.
        self._blocks = [(v, int(scheme.pack(v, s.note_on)), int(scheme.pack(v, s.note_off)),
                         int(scheme.pack(v, s.velocity)), int(scheme.pack(v, s.velocity))
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

    def save(self) -> tuple:
        return tuple(part.save() for part in self.parts)

    def restore(self, state: tuple) -> None:
        for part, saved in zip(self.parts, state, strict=True):
            part.restore(saved)

    def closing_tokens(self) -> list[int]:
        """NOTE_OFFs for every note the playing voices hold."""
        return [self.voicing.token(v, tok) for v in self.playing
                for tok in self.parts[v].closing_tokens()]
