"""The live controls' reach into the band's draw: logit offsets over the model's vocabulary.

`Engine` keeps one `BandBias` and hands its offsets to the sampler. They are the density asked
(a NOTE_ON offset chased towards the density the band really plays, and a ceiling on bursts),
the register (no new note far from its centre) and the key (none outside the scale) on a model
that reads no controls, in a duet the player's melody note's row (`Voicing.melody_offsets`), and
the end control's ramp. Every update writes into arrays made once: nothing is allocated on the
engine's thread while it plays.
"""

from __future__ import annotations

import math

import numpy as np

from neuralband.encoders.keys import parse_key, scale_mask
from neuralband.encoders.performance import Event
from neuralband.live.loop import CHECK_EVERY_S
from neuralband.live.panel import INDEX, KEYS
from neuralband.sampling import Rules, Sampler
from neuralband.voicing import MelodyNote, Voicing

DENSITY_REF = 4.0  # notes/s that leave the NOTE_ONs' logits as they are
DENSITY_GAIN = 2.0  # nats added to every NOTE_ON per e-fold of density asked above DENSITY_REF
DENSITY_WINDOW_S = 2.5  # ... then the band's own notes/s over this window
DENSITY_RATE = 0.1  # nats of offset per e-fold of error, every CHECK_EVERY_S
DENSITY_MAX_BIAS = 10.0
DENSITY_BURST_S = 1.0  # ... and a ceiling: at most density x this many notes in a burst
REGISTER_SPAN = 18  # the register control keeps new notes within this many semitones
END_S = 2.5  # the end control: the band closes within this long (a bar at 96 bpm)


class BandBias:
    """The sampler's offsets for the band's next event, kept current as the controls move.

    ``conditioned``: the model reads the density and key controls itself (`steering`), so only
    the density's chase and the register are offsets here."""

    def __init__(self, voicing: Voicing, sampler: Sampler, rules: Rules, conditioned: bool):
        self.sampler, self.conditioned = sampler, conditioned
        n = voicing.vocab_size
        settings = voicing.settings
        band = ~voicing.is_shift & ~voicing.is_lead
        kinds = settings.kinds[voicing.base_of]
        self.on_pitch = voicing.band_on_pitch  # each band NOTE_ON's pitch, -1 for the rest
        self.is_on = self.on_pitch >= 0
        self._on_f = self.is_on.astype(np.float64)
        self._off_f = (band & (kinds == Event.NOTE_OFF)) * 1.0
        self._notes_f = self._on_f + self._off_f  # busier: more notes, and shorter ones
        self.steer = np.zeros(n)  # density, register, key, melody: what the sampler gets
        self._static = np.zeros(n)  # register, key
        self._tmp = np.zeros(n)
        self._blocked = np.zeros(n)  # the same, with no NOTE_ON at all
        self._no_on = np.where(self.is_on, -np.inf, 0.0)  # added to shut every NOTE_ON
        self._biased = False
        # The density: an offset on the band's NOTE_ONs, chased or a first guess.
        self.density = 0.0
        self.chasing = False  # whether that offset follows the band's measured density
        self.pace = math.nan  # a call answer's density: its phrase's (`Turns.pace`)
        self._chased = DENSITY_REF  # the density that offset was last set for
        self.next_chase = 0.0
        self._tokens, self._tokens_at = 0.0, 0.0  # the ceiling's bucket: notes it may play now
        self._onsets = np.full(256, -np.inf)  # the band's last NOTE_ON times (a ring)
        self._n_onsets = 0
        # A duet band keeps under the player's melody note and out of its way.
        self.under = False
        self._melody = MelodyNote()
        self._melody_offsets = voicing.melody_offsets(rules)
        self._melody_row: np.ndarray | None = None
        # The end control's ramp.
        self.ending: float | None = None  # when an ending began
        self._end, self._end_tmp = np.zeros(n), np.zeros(n)
        self._end_base = self._end_last = self.steer

    # --- the controls --------------------------------------------------------------------------

    def update(self, values: np.ndarray) -> None:
        """The panel's ``values`` changed: the band's NOTE_ON offsets for density (chased;
        without a density control a first guess of DENSITY_GAIN nats per e-fold above
        DENSITY_REF), register (none further than REGISTER_SPAN from its centre) and key
        (without controls: none outside the scale)."""
        b = self._static
        b.fill(0.0)
        density, register = self.asked(values), values[INDEX["register"]]
        key = int(values[INDEX["key"]])
        # A density asked is chased on any model: a ceiling (`refill`) and a NOTE_ON offset that
        # `chase` moves towards it. A model that reads the density control is told it, the
        # offset starting from none at each new density; one that does not gets the offset's
        # first guess (feed-forward).
        chase = not math.isnan(density)
        if not chase:
            self.density = 0.0
        elif not self.conditioned:
            start = self._chased if self.chasing else DENSITY_REF
            self.density = _clamp(self.density * self.chasing
                                  + DENSITY_GAIN * math.log(density / start))
        elif not self.chasing or density != self._chased:
            self.density = 0.0
        self._chased = density if chase else self._chased
        self.chasing = chase
        if not math.isnan(register):
            b[self.is_on & (np.abs(self.on_pitch - register) > REGISTER_SPAN)] = -np.inf
        if not self.conditioned and key > 0:
            scale = scale_mask(*parse_key(KEYS[key]))
            b[self.is_on & ~scale[self.on_pitch % 12]] = -np.inf
        self.compose()

    def asked(self, values: np.ndarray) -> float:
        """The density the band keeps to: the panel's, else a call answer's pace (NaN: none)."""
        density = values[INDEX["density"]]
        return self.pace if math.isnan(density) else float(density)

    def player_note(self, pitch: int, is_on: bool) -> None:
        """A key went down or up: in a duet the band keeps under the melody note now sounding."""
        if self._melody_offsets is None:
            return
        now = self._melody.update(pitch, is_on)
        self._melody_row = None if now is None else self._melody_offsets[now]
        if self.under:  # alone (solo, call) the band ignores the row: nothing to compose
            self.compose()

    def clear_melody(self) -> None:
        self._melody.clear()
        self._melody_row = None

    def compose(self) -> None:
        """The static offsets plus the density offset on the band's notes, plus in a duet the
        melody note's offsets; no allocation."""
        np.multiply(self._notes_f, self.density, out=self._tmp)
        np.add(self._static, self._tmp, out=self.steer)
        melody = self._melody_row is not None and self.under
        if melody:
            self.steer += self._melody_row
        np.add(self.steer, self._no_on, out=self._blocked)
        self._biased = bool(self.density) or bool(self._static.any()) or melody
        self.gate()

    def gate(self) -> None:
        """The sampler's offsets now: none, the steering ones, or (a chased density whose
        bucket is empty) those with every NOTE_ON shut, until the bucket refills."""
        if self.ending is not None:
            return
        if self.chasing and self._tokens < 1.0:
            self.sampler.bias = self._blocked
        else:
            self.sampler.bias = self.steer if self._biased else None

    # --- the density's chase -------------------------------------------------------------------

    def refill(self, now: float, values: np.ndarray) -> None:
        """The ceiling's bucket: it fills at the density asked, up to DENSITY_BURST_S of it
        (one note at least); every band NOTE_ON takes one out."""
        target = self.asked(values)
        cap = max(3.0, target * DENSITY_BURST_S)
        self._tokens = min(cap, self._tokens + (now - self._tokens_at) * target)
        self._tokens_at = now

    def note_on(self, now: float, values: np.ndarray) -> None:
        """The band played a note: it counts towards the density played and empties the
        bucket by one."""
        self._onsets[self._n_onsets % len(self._onsets)] = now
        self._n_onsets += 1
        if self.chasing:
            self.refill(now, values)
            self._tokens -= 1.0
            if self._tokens < 1.0:
                self.gate()

    def chase(self, now: float, values: np.ndarray, playing: bool) -> None:
        """Every CHECK_EVERY_S while the band plays (``playing``), move its NOTE_ON offset by
        the log ratio of the density asked to the one it played over the last
        DENSITY_WINDOW_S (an integral controller: a knob's density is what comes out)."""
        self.next_chase = now + CHECK_EVERY_S
        self.refill(now, values)
        if not playing or self.ending is not None:
            self.gate()
            return
        played = int(np.count_nonzero(self._onsets > now - DENSITY_WINDOW_S))
        rate = max(played, 0.5) / DENSITY_WINDOW_S
        self.density = _clamp(self.density + DENSITY_RATE * math.log(self.asked(values) / rate))
        self.compose()

    # --- the ending ----------------------------------------------------------------------------

    def begin_end(self, now: float, key: tuple[int, str] | None) -> None:
        """For END_S the band thins out (NOTE_ONs less likely, then none; NOTE_OFFs likelier),
        its new notes on ``key``'s tonic chord where a key is known."""
        self.ending = now
        base = self.steer.copy()
        if key is not None:
            tonic, mode = key
            chord = np.zeros(12, bool)
            chord[[tonic, (tonic + (4 if mode == "major" else 3)) % 12, (tonic + 7) % 12]] = True
            base[self.is_on & ~chord[self.on_pitch % 12]] = -np.inf
        last = self.steer.copy()
        last[self.is_on] = -np.inf
        self._end_base, self._end_last = base, last
        self.sampler.bias = self._end

    def ramp(self, now: float) -> None:
        """An ending's offsets at ``now``: NOTE_ONs down 3 nats by half way, then none at all;
        NOTE_OFFs up to 4 nats."""
        f = min(1.0, (now - self.ending) / END_S)
        b = self._end
        if f < 0.5:
            np.multiply(self._on_f, -6.0 * f, out=b)
            b += self._end_base
        else:
            np.copyto(b, self._end_last)
        np.multiply(self._off_f, 4.0 * f, out=self._end_tmp)
        b += self._end_tmp

    def end_over(self) -> None:
        """The ending is over (or cut short by panic): the controls' offsets again."""
        self.ending = None
        self.gate()


def _clamp(bias: float) -> float:
    return min(DENSITY_MAX_BIAS, max(-DENSITY_MAX_BIAS, bias))
