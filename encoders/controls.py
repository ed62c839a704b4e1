"""Control signals beside each token: the key and the note density of the coming seconds.

As Magenta's conditioned Performance RNN does, the model reads, beside each event, a small vector
that says what the music is about to do, computed from the notes themselves (so any MIDI works):

    [ pitch-class histogram (12) | key given (1) | density one-hot (bins) | density given (1) ]
    [ beat control (`encoders.beats`, 10) ]      only in a model that reads beats


- the histogram counts the NOTE_ONs of the next ``key_window_s`` seconds by pitch class, summing
  to 1: a key (and its chords) as the model hears it;
- the density is the number of NOTE_ONs per second in the next ``density_window_s`` seconds,
  one-hot over ``density_edges`` (notes/s);
- the beat control says where the moment sits in the beat and the bar and how long a beat is
  (`encoders.beats`); it changes with every TIME_SHIFT, so the step runtime writes it per event;
- any part may be absent ("no control": zeros and its flag 0), which training does part of the
  time, so the model also plays free.

At play time the vector is set from the musician's choice (``generate --key``, ``--density``) or
derived from what the player played (`live_controls`). Pure numpy.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from neuralband.encoders.beats import BEAT_SIZE
from neuralband.encoders.performance import DEFAULT_SETTINGS, EncoderSettings
from neuralband.encoders.voices import VoiceSettings, event_steps

PITCH_CLASSES = 12
# Notes/s: bin k holds densities in [edges[k-1], edges[k]); one unit wide where most music is.
DEFAULT_EDGES = (1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 10.0, 12.0, 15.0)
NATURAL_MAJOR = (0, 2, 4, 5, 7, 9, 11)


@dataclass(frozen=True)
class ControlSettings:
    """How a model's control vector is laid out and computed; stored in the model file."""

    key_window_s: float = 10.0
    density_window_s: float = 4.0
    density_edges: tuple[float, ...] = DEFAULT_EDGES
    # The training data's mean window histogram per mode ("major", "minor"), rotated to a tonic
    # of C (see `key_histogram`); empty: the scale's seven notes, equally.
    key_profiles: dict[str, list[float]] = field(default_factory=dict, compare=False)
    beat: bool = False  # the beat control follows the density's (`encoders.beats`)

    def __post_init__(self) -> None:
        object.__setattr__(self, "density_edges", tuple(float(e) for e in self.density_edges))
        if self.key_window_s <= 0 or self.density_window_s <= 0:
            raise ValueError("control windows must be positive seconds")
        edges = self.density_edges
        if not edges or any(b <= a for a, b in zip(edges, edges[1:], strict=False)):
            raise ValueError(f"density edges must rise, got {edges}")

    @property
    def bins(self) -> int:
        return len(self.density_edges) + 1

    @property
    def size(self) -> int:
        """The length of the control vector."""
        return self.beat_start + (BEAT_SIZE if self.beat else 0)

    @property
    def beat_start(self) -> int:
        """Where the beat control starts (the vector's end in a model without it)."""
        return PITCH_CLASSES + 1 + self.bins + 1

    @property
    def key_flag(self) -> int:
        return PITCH_CLASSES

    @property
    def density_start(self) -> int:
        return PITCH_CLASSES + 1

    @property
    def density_flag(self) -> int:
        return PITCH_CLASSES + 1 + self.bins

    def density_bin(self, notes_per_s: float | np.ndarray) -> np.ndarray | int:
        """The one-hot bin of a density in notes per second."""
        out = np.searchsorted(np.asarray(self.density_edges), notes_per_s, side="right")
        return int(out) if np.ndim(out) == 0 else out

    def bin_centre(self, k: int) -> float:
        """A representative density of bin k (the middle, or the edge for the open bins)."""
        e = self.density_edges
        if k == 0:
            return e[0] / 2
        if k >= len(e):
            return e[-1] * 1.25
        return (e[k - 1] + e[k]) / 2

    def to_dict(self) -> dict:
        return {"key_window_s": self.key_window_s, "density_window_s": self.density_window_s,
                "density_edges": list(self.density_edges),
                "key_profiles": {k: list(v) for k, v in self.key_profiles.items()},
                "beat": self.beat}

    @classmethod
    def from_dict(cls, d: dict) -> ControlSettings:
        unknown = set(d) - {"key_window_s", "density_window_s", "density_edges", "key_profiles",
                            "beat"}
        if unknown:
            raise ValueError(f"unknown control settings: {sorted(unknown)}")
        return cls(float(d.get("key_window_s", 10.0)), float(d.get("density_window_s", 4.0)),
                   tuple(d.get("density_edges", DEFAULT_EDGES)),
                   {str(k): [float(x) for x in v] for k, v in d.get("key_profiles", {}).items()},
                   bool(d.get("beat", False)))


def onsets(tokens: np.ndarray, encoder: EncoderSettings = DEFAULT_SETTINGS,
           voices: VoiceSettings | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Performance tokens (voice-packed ones with their ``voices``: every voice's notes count)
    -> (step after each token, the NOTE_ON positions, their pitches)."""
    tokens = np.asarray(tokens, np.int64)
    if voices is not None:
        tokens = voices.unpack(tokens)[1]  # each event as its Performance token
    _, steps = event_steps(tokens, encoder)
    where = np.flatnonzero(tokens < encoder.note_off)
    return steps, where, tokens[where] - encoder.note_on


def token_controls(tokens: np.ndarray, settings: ControlSettings,
                   encoder: EncoderSettings = DEFAULT_SETTINGS, complete: bool = True,
                   voices: VoiceSettings | None = None) -> np.ndarray:
    """(N, size) float32: the controls in force after each of N Performance tokens, from the
    NOTE_ONs that follow it within each window. Voice-packed tokens (with their ``voices``)
    count every voice's notes: the key and density of the whole arrangement.

    ``complete=False`` says the tokens stop before the piece does: where a window runs past the
    last token, the density is counted over the time the tokens cover (absent under 1 s).
    """
    steps, where, pitch = onsets(tokens, encoder, voices)
    n = len(steps)
    out = np.zeros((n, settings.size), np.float32)
    if n == 0:
        return out
    sps = encoder.steps_per_second
    # cum[k] = NOTE_ONs among tokens[:k], per pitch class and in all.
    per_pc = np.zeros((n + 1, PITCH_CLASSES), np.int32)
    if len(where):
        np.add.at(per_pc, (where + 1, pitch % PITCH_CLASSES), 1)
    np.cumsum(per_pc, axis=0, out=per_pc)
    total = per_pc.sum(axis=1)
    after = np.arange(1, n + 1)  # the window starts after token i: tokens i+1..

    key_end = np.searchsorted(steps, steps + round(settings.key_window_s * sps), side="left")
    hist = (per_pc[key_end] - per_pc[after]).astype(np.float32)
    count = hist.sum(axis=1)
    has = count > 0
    out[has, :PITCH_CLASSES] = hist[has] / count[has, None]
    out[has, settings.key_flag] = 1.0

    width = round(settings.density_window_s * sps)
    dens_end = np.searchsorted(steps, steps + width, side="left")
    notes = (total[dens_end] - total[after]).astype(np.float64)
    covered = np.full(n, float(width))
    if not complete:
        covered = np.minimum(covered, steps[-1] - steps).astype(np.float64)
    ok = covered >= sps  # at least a second of music to count over
    density = np.where(ok, notes / np.maximum(covered, 1.0) * sps, 0.0)
    rows = np.flatnonzero(ok)
    out[rows, settings.density_start + settings.density_bin(density[rows])] = 1.0
    out[rows, settings.density_flag] = 1.0
    return out


def drop_controls(controls: np.ndarray, rng: np.random.Generator, p: float,
                  settings: ControlSettings) -> np.ndarray:
    """Training's "no control": each part of each row (batch, time, size) is zeroed, flag
    included, with probability p (the key, the density and the beat apart)."""
    rows = controls.shape[0]
    key_off = rng.random(rows) < p
    dens_off = rng.random(rows) < p
    controls[key_off, :, :settings.density_start] = 0.0
    controls[dens_off, :, settings.density_start:settings.beat_start] = 0.0
    if settings.beat:  # drawn after the others: a run without beats keeps its batches
        beat_off = rng.random(rows) < p
        controls[beat_off, :, settings.beat_start:] = 0.0
    return controls


def key_histogram(tonic: int, mode: str, settings: ControlSettings) -> np.ndarray:
    """The histogram that says "in this key": the training data's mean histogram for the mode,
    rotated to the tonic, or else the scale's seven notes equally."""
    profile = settings.key_profiles.get(mode)
    if profile is None:
        scale = np.zeros(PITCH_CLASSES)
        steps = NATURAL_MAJOR if mode == "major" else tuple((p + 3) % 12 for p in NATURAL_MAJOR)
        scale[list(steps)] = 1.0
        profile = scale
    h = np.roll(np.asarray(profile, np.float64), tonic)
    return (h / h.sum()).astype(np.float32)


def control_vector(settings: ControlSettings, histogram: np.ndarray | None = None,
                   density: float | None = None, out: np.ndarray | None = None) -> np.ndarray:
    """One control vector: a histogram (12, any scale; None: free) and notes/s (None: free),
    written into ``out`` when given (the live path reuses one buffer)."""
    v = np.zeros(settings.size, np.float32) if out is None else out
    v.fill(0.0)
    if histogram is not None:
        h = np.asarray(histogram, np.float64)
        if h.shape != (PITCH_CLASSES,) or h.min() < 0 or not h.sum() > 0:
            raise ValueError("a key histogram is 12 non-negative weights, not all zero")
        v[:PITCH_CLASSES] = h / h.sum()
        v[settings.key_flag] = 1.0
    if density is not None:
        if not density >= 0:
            raise ValueError(f"density must be >= 0 notes/s, got {density}")
        v[settings.density_start + settings.density_bin(float(density))] = 1.0
        v[settings.density_flag] = 1.0
    return v


def describe_controls(v: np.ndarray, settings: ControlSettings) -> str:
    """A short line for a control vector: its strongest pitch classes and density bin."""
    names = ("C", "Db", "D", "Eb", "E", "F", "Gb", "G", "Ab", "A", "Bb", "B")
    parts = []
    if v[settings.key_flag] > 0:
        top = np.argsort(v[:PITCH_CLASSES])[::-1][:5]
        parts.append("pitches " + " ".join(names[int(p)] for p in top))
    else:
        parts.append("key free")
    if v[settings.density_flag] > 0:
        k = int(np.argmax(v[settings.density_start:settings.density_flag]))
        parts.append(f"~{settings.bin_centre(k):g} notes/s")
    else:
        parts.append("density free")
    return ", ".join(parts)
