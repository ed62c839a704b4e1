"""Beats and metre: where a piece's beats fall, and the beat control a model reads beside a token.

A piece's beats are a `Beats`: rising beat times in seconds, and which of them start a bar. They
come from, in order (`find_beats`): annotations beside the file (POP909's ``beat_midi.txt``), the
file's tempo map where its grid fits the notes (a keyboard take or a file written by pretty_midi
carries a default 120 BPM that says nothing of its beat), else `track_beats` over the onsets.

The beat control (``BEAT_SIZE`` values, after the key and density controls of a model that reads
beats) says where a moment sits in the beat and the bar and how long a beat lasts::

    [ given | sin, cos 2 pi b | sin, cos 4 pi b | sin, cos 8 pi b | sin, cos 2 pi r | log2(P/0.5) ]
    [ time to the next eighth line, one-hot in 10 ms (64) | to the next beat, one-hot (128) ]

b is the phase in the beat (0 on a beat), so the second and third pairs are the eighth and
sixteenth lines; r the phase in the bar (0 on a downbeat); P the beat's length. The two one-hot
parts say the same as a wait: a TIME_SHIFT of that length lands on the line, which a model learns
as a straight path from input to output (from the phase and the period alone it has to compute
the product; fine-tuned for 200 steps that way, the pop model's onsets stayed at chance). All
zeros is "no beat" (the model runs free: rubato, no clock). Pure numpy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DENSE = 10  # the phases and the period
EIGHTH_BINS, BEAT_BINS = 64, 128  # the one-hot times to the next eighth line and beat
BIN_S = 0.01  # their resolution: a TIME_SHIFT step of the default encoding
EIGHTH_START = DENSE
BEAT_START = DENSE + EIGHTH_BINS
BEAT_SIZE = DENSE + EIGHTH_BINS + BEAT_BINS
REFERENCE_PERIOD_S = 0.5  # 120 BPM reads as period 0
HARMONICS = (1, 2, 4)  # beat, eighth and sixteenth lines
GRID_TOLERANCE_S = 0.04  # an onset this close to a grid line is on it
ANNOTATIONS = "beat_midi.txt"  # POP909's beats in the MIDI file's seconds, beside the file
# What the tracker takes for a beat, of the tempo and its octaves: POP909's annotated beats (the
# pop models' training data) have a median of 74 BPM, 10-90% within 60-115. Centred at 100 BPM,
# the tracker doubled 60% of 40 held-out 10 s openings' tempi; here 28%.
PRIOR_BPM, PRIOR_OCTAVES = 74.0, 0.5
LEVELS = (1.0, 0.5, 2.0, 2 / 3, 1.5)  # metrical levels `octave` weighs against the tempo found
FASTER_MARGIN, SLOWER_MARGIN = 0.3, 0.05  # on-grid share beyond chance a level must win by


@dataclass(frozen=True)
class Beats:
    """Beat times (seconds, rising) and which beats start a bar; ``source`` says where they
    came from ("annotations", "tempo map", "tracker", "bpm", ...)."""

    times_s: np.ndarray
    downbeats: np.ndarray
    source: str = "given"

    def __post_init__(self) -> None:
        t = np.asarray(self.times_s, np.float64)
        d = np.asarray(self.downbeats, bool)
        if t.ndim != 1 or d.shape != t.shape:
            raise ValueError("beats need one downbeat flag per beat time")
        if len(t) < 2 or np.any(np.diff(t) <= 0):
            raise ValueError("beats need at least two rising times")
        object.__setattr__(self, "times_s", t)
        object.__setattr__(self, "downbeats", d)

    def __len__(self) -> int:
        return len(self.times_s)

    @property
    def period_s(self) -> float:
        """The median beat length."""
        return float(np.median(np.diff(self.times_s)))

    @property
    def bpm(self) -> float:
        return 60.0 / self.period_s

    @property
    def meter(self) -> int:
        """The most common bar length in beats (4 where no bar is marked)."""
        bars = np.diff(np.flatnonzero(self.downbeats))
        return int(np.bincount(bars).argmax()) if len(bars) else 4

    def scaled(self, factor: float) -> Beats:
        """The beats of the piece with its time stretched by ``factor``."""
        return Beats(self.times_s * factor, self.downbeats, self.source)

    def shifted(self, offset_s: float) -> Beats:
        """The beats with ``offset_s`` added to every time."""
        return Beats(self.times_s + offset_s, self.downbeats, self.source)

    def carried_on(self, until_s: float, last: int = 16) -> Beats:
        """These beats carried on up to ``until_s`` on the straight line through their
        ``last`` beats (least squares: a period off by 0.2%, as the median of a few noisy
        intervals is, walks 80 ms off in 40 beats): the grid an opening sets, continued (what
        `generate --primer` plays on)."""
        t = self.times_s
        if t[-1] >= until_s:
            return self
        tail = t[-min(last, len(t)):]
        index = np.arange(len(tail), dtype=np.float64)
        period, origin = np.polyfit(index, tail, 1)
        if not period > 0:
            period = float(np.median(np.diff(tail)))
        end = origin + period * index[-1]  # the line's last beat, then on from it
        extra = end + period * np.arange(1, math.ceil((until_s - end) / period) + 2)
        meter = self.meter
        at = len(t) + np.arange(len(extra))
        downs = np.flatnonzero(self.downbeats)
        first = int(downs[-1]) if len(downs) else 0
        return Beats(np.concatenate([t, extra]),
                     np.concatenate([self.downbeats, (at - first) % meter == 0]), self.source)

    def lines(self, subdivision: int = 2) -> np.ndarray:
        """The grid's lines: every beat cut into ``subdivision`` equal parts (2: eighths)."""
        t = self.times_s
        parts = t[:-1, None] + np.diff(t)[:, None] * (np.arange(subdivision) / subdivision)
        return np.concatenate([parts.ravel(), t[-1:]])

    def to_dict(self) -> dict:
        return {"times_s": [round(float(x), 4) for x in self.times_s],
                "downbeats": np.flatnonzero(self.downbeats).tolist(), "source": self.source}

    @classmethod
    def from_dict(cls, d: dict) -> Beats:
        times = np.asarray(d["times_s"], np.float64)
        downs = np.zeros(len(times), bool)
        downs[np.asarray(d.get("downbeats", []), np.int64)] = True
        return cls(times, downs, str(d.get("source", "given")))


def steady_beats(bpm: float, start_s: float, until_s: float, meter: int = 4,
                 source: str = "bpm") -> Beats:
    """A steady grid at ``bpm`` from ``start_s`` (a downbeat) to past ``until_s``."""
    if not 20 <= bpm <= 400:
        raise ValueError(f"a tempo is 20..400 BPM, got {bpm:g}")
    if not 1 <= meter <= 16:
        raise ValueError(f"a bar is 1..16 beats, got {meter}")
    period = 60.0 / bpm
    n = max(2, math.ceil((until_s - start_s) / period) + 2)
    index = np.arange(n)
    return Beats(start_s + period * index, index % meter == 0, source)


# --- where a moment is in the beat --------------------------------------------------------


@dataclass(frozen=True)
class Position:
    """Moments placed on a piece's beats: the beat count (beats since the first beat, with the
    fraction), the phase in the bar (0..1), the beat's length, and whether the moment lies
    within the beats (within a bar of their ends: carried on at the edge beat's length)."""

    beat: np.ndarray
    bar_phase: np.ndarray
    period_s: np.ndarray
    inside: np.ndarray
    bar_beats: np.ndarray  # the length of the bar each moment is in, in beats


def _padded(beats: Beats) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Beat times with one bar carried on at each end, each beat's place in its bar and the
    length of its bar (in beats)."""
    t, meter = beats.times_s, beats.meter
    before = t[0] - (t[1] - t[0]) * np.arange(meter, 0, -1)
    after = t[-1] + (t[-1] - t[-2]) * np.arange(1, meter + 1)
    times = np.concatenate([before, t, after])
    downs = np.flatnonzero(beats.downbeats)
    if not len(downs):
        downs = np.array([0])
    # Each beat's index counted from the bar it is in (bars before the first downbeat and after
    # the last are `meter` long).
    index = np.arange(len(t))
    last = np.searchsorted(downs, index, side="right") - 1
    start = np.where(last >= 0, downs[np.maximum(last, 0)], downs[0] - meter)
    nxt = np.where(last + 1 < len(downs), downs[np.minimum(last + 1, len(downs) - 1)], -1)
    length = np.where(nxt > start, nxt - start, meter)
    in_bar = np.mod(index - start, length)
    pad = np.arange(meter)
    in_bar = np.concatenate([(in_bar[0] - meter + pad) % length[0], in_bar,
                             (in_bar[-1] + 1 + pad) % length[-1]])
    length = np.concatenate([np.full(meter, length[0]), length, np.full(meter, length[-1])])
    return times, in_bar, length


def positions(times_s: np.ndarray, beats: Beats) -> Position:
    """Where each moment of ``times_s`` lies on the beats (see `Position`)."""
    times, in_bar, length = _padded(beats)
    t = np.asarray(times_s, np.float64)
    i = np.clip(np.searchsorted(times, t, side="right") - 1, 0, len(times) - 2)
    period = times[i + 1] - times[i]
    frac = (t - times[i]) / period
    inside = (t >= times[0]) & (t < times[-1])
    meter = beats.meter
    return Position(beat=i - meter + frac, bar_phase=(in_bar[i] + frac) / length[i],
                    period_s=period, inside=inside, bar_beats=length[i].astype(np.float64))


def beat_features(times_s: np.ndarray, beats: Beats | None,
                  out: np.ndarray | None = None) -> np.ndarray:
    """(N, BEAT_SIZE) float32: the beat control at each moment of ``times_s`` (zeros, "no
    beat", where there are no beats or a moment lies beyond them)."""
    t = np.asarray(times_s, np.float64)
    if out is None:
        out = np.zeros((len(t), BEAT_SIZE), np.float32)
    else:
        out[:] = 0.0
    if beats is None or not len(t):
        return out
    pos = positions(t, beats)
    rows = np.flatnonzero(pos.inside)
    b = pos.beat[rows]
    out[rows, 0] = 1.0
    for k, h in enumerate(HARMONICS):
        angle = 2 * np.pi * h * b
        out[rows, 1 + 2 * k] = np.sin(angle)
        out[rows, 2 + 2 * k] = np.cos(angle)
    angle = 2 * np.pi * pos.bar_phase[rows]
    out[rows, 7] = np.sin(angle)
    out[rows, 8] = np.cos(angle)
    period = pos.period_s[rows]
    out[rows, 9] = np.log2(period / REFERENCE_PERIOD_S)
    eighth, beat = line_bins(b, period)
    out[rows, EIGHTH_START + eighth] = 1.0
    out[rows, BEAT_START + beat] = 1.0
    return out


def line_bins(beat: np.ndarray | float, period_s: np.ndarray | float
              ) -> tuple[np.ndarray, np.ndarray]:
    """The one-hot bins of the time from a moment (``beat`` beats in) to the next eighth line
    and to the next beat, in `BIN_S` steps, clipped to the last bin; a line under half a step
    away is now, and the one after it is next (so a moment on a line reads the same whichever
    side of it rounding puts it)."""
    b = np.asarray(beat, np.float64)
    half = BIN_S / 2
    eighth_s = np.asarray(period_s, np.float64) / 2
    to_eighth = (np.floor(2 * b + half / eighth_s) + 1 - 2 * b) * eighth_s
    to_beat = (np.floor(b + half / (2 * eighth_s)) + 1 - b) * 2 * eighth_s
    return (np.minimum(np.floor(to_eighth / BIN_S + 0.5), EIGHTH_BINS - 1).astype(np.int64),
            np.minimum(np.floor(to_beat / BIN_S + 0.5), BEAT_BINS - 1).astype(np.int64))


def write_beat(out: np.ndarray, beat: float, bar_phase: float, period_s: float
               ) -> tuple[int, int]:
    """One moment's dense beat control (the first ``DENSE`` values, as `beat_features`
    computes them) into ``out``, without allocating, and the indices (into the whole beat
    control) of its two one-hot values: the step runtime's per-event update."""
    out[0] = 1.0
    for k, h in enumerate(HARMONICS):
        angle = 2.0 * math.pi * h * beat
        out[1 + 2 * k] = math.sin(angle)
        out[2 + 2 * k] = math.cos(angle)
    angle = 2.0 * math.pi * bar_phase
    out[7] = math.sin(angle)
    out[8] = math.cos(angle)
    out[9] = math.log2(period_s / REFERENCE_PERIOD_S)
    half, eighth_s = BIN_S / 2, period_s / 2
    to_eighth = (math.floor(2 * beat + half / eighth_s) + 1 - 2 * beat) * eighth_s
    to_beat = (math.floor(beat + half / period_s) + 1 - beat) * period_s
    return (EIGHTH_START + min(math.floor(to_eighth / BIN_S + 0.5), EIGHTH_BINS - 1),
            BEAT_START + min(math.floor(to_beat / BIN_S + 0.5), BEAT_BINS - 1))


# --- how well onsets sit on a grid ---------------------------------------------------------


def on_grid(onsets_s: np.ndarray, beats: Beats, subdivision: int = 2,
            tolerance_s: float = GRID_TOLERANCE_S) -> float:
    """The share of the onsets within the beats' span that lie within ``tolerance_s`` of a grid
    line (2: the eighth-note lines); NaN where none lies within the span."""
    t = np.asarray(onsets_s, np.float64)
    t = t[(t >= beats.times_s[0] - tolerance_s) & (t <= beats.times_s[-1] + tolerance_s)]
    if not len(t):
        return float("nan")
    lines = beats.lines(subdivision)
    i = np.clip(np.searchsorted(lines, t), 1, len(lines) - 1)
    gap = np.minimum(np.abs(t - lines[i - 1]), np.abs(lines[i] - t))
    return float(np.mean(gap <= tolerance_s))


def chance_on_grid(beats: Beats, subdivision: int = 2,
                   tolerance_s: float = GRID_TOLERANCE_S) -> float:
    """The share `on_grid` gives onsets spread at random over the beats' span."""
    spacing = np.diff(beats.lines(subdivision))
    return float(np.sum(np.minimum(spacing, 2 * tolerance_s)) / np.sum(spacing))


def best_phase_on_grid(onsets_s: np.ndarray, period_s: float, subdivision: int = 2,
                       tolerance_s: float = GRID_TOLERANCE_S, phases: int = 48) -> float:
    """The share of onsets on a steady grid of beat ``period_s`` at its best phase: whether
    they keep a tempo, wherever its beat falls."""
    t = np.asarray(onsets_s, np.float64)
    if not len(t):
        return float("nan")
    spacing = period_s / subdivision
    offset = (t[:, None] / spacing - np.arange(phases) / phases) % 1.0
    gap = np.minimum(offset, 1.0 - offset) * spacing
    return float(np.max(np.mean(gap <= tolerance_s, axis=0)))


# --- beats from a file: annotations, its tempo map, or the tracker --------------------------


def read_annotations(path: str | Path) -> Beats:
    """POP909's ``beat_midi.txt``: a beat per line (time in the MIDI file's seconds, then
    flags of a 2/4 and a 4/4 downbeat); the 4/4 flag marks bars. ValueError if unreadable."""
    path = Path(path)
    try:
        rows = np.loadtxt(path, ndmin=2)
    except (OSError, ValueError) as err:
        raise ValueError(f"{path}: not a readable beat file ({err})") from err
    if rows.shape[1] < 1 or len(rows) < 2:
        raise ValueError(f"{path}: fewer than two beats")
    downs = rows[:, -1] > 0.5 if rows.shape[1] >= 2 else np.arange(len(rows)) % 4 == 0
    keep = np.concatenate([[True], np.diff(rows[:, 0]) > 0])  # a repeated time: once
    return Beats(rows[keep, 0], downs[keep], "annotations")


def tempo_map_beats(midi: object) -> Beats | None:
    """The beats a PrettyMIDI's tempo map and time signatures lay down (None: under two)."""
    beats = np.asarray(midi.get_beats(), np.float64)
    if len(beats) < 2:
        return None
    downs = np.isin(np.round(beats, 6), np.round(np.asarray(midi.get_downbeats()), 6))
    return Beats(beats, downs, "tempo map")


def tempo_map_fits(onsets_s: np.ndarray, beats: Beats, margin: float = 0.25) -> bool:
    """Whether a tempo map is the music's beat: its eighth lines hold at least ``margin`` more
    of the onsets than chance would, and at least half of them."""
    if len(onsets_s) < 8:
        return False
    share = on_grid(onsets_s, beats)
    return share >= max(0.5, chance_on_grid(beats) + margin)


CLEAR_FIT = 0.9  # a tempo map whose eighth lines hold this share of the onsets as it is


def fitted_tempo_map(onsets_s: np.ndarray, beats: Beats, step_s: float = 0.005
                     ) -> Beats | None:
    """A tempo map where it is the music's beat: its tempo the one the notes' own onsets say
    (up to an octave), and its eighth lines holding them (`tempo_map_fits`) as it is or moved by
    the fraction of a beat that fits them best. POP909's maps hold each song's annotated tempo
    exactly, with bars that start 0.05-0.43 s away from the annotated beats: moved, 41 of 48
    held-out songs' maps meet the annotated eighths. None otherwise: a recorder's 120 BPM over
    music at 80 fits on the beats the two share, unless its tempo is checked."""
    t = np.asarray(onsets_s, np.float64)
    if len(t) < 8:
        return None
    if tempo_map_fits(t, beats) and on_grid(t, beats) >= CLEAR_FIT:
        return beats  # a file made on its grid (a sequencer's): no tracker to second-guess it
    period = float(np.median(np.diff(beats.times_s)))
    heard, strength = estimate_period(onset_strength(t))
    ratio = period / octave(t, heard) if strength > 0 else 0.0
    if not any(abs(ratio / level - 1) <= 0.04 for level in (0.5, 1.0, 2.0)):
        return None
    if tempo_map_fits(t, beats):
        return beats
    shifts = np.arange(-period / 4, period / 4, step_s)  # every phase of the eighth lines
    best = float(shifts[int(np.argmax([on_grid(t, beats.shifted(d)) for d in shifts]))])
    # of the two beat phases with those eighth lines, the one whose beats hold more onsets
    best = max((best, best + period / 2),
               key=lambda d: on_grid(t, beats.shifted(d), subdivision=1))
    moved = beats.shifted(best)
    # the middle of the onsets on its lines, not the edge of the tolerance that first held them
    lines = moved.lines(2)
    i = np.clip(np.searchsorted(lines, t), 1, len(lines) - 1)
    gap = np.where(t - lines[i - 1] < lines[i] - t, t - lines[i - 1], t - lines[i])
    near = np.abs(gap) <= GRID_TOLERANCE_S
    if near.any():
        moved = moved.shifted(float(np.median(gap[near])))
    return moved if tempo_map_fits(t, moved) else None


def onset_strength(onsets_s: np.ndarray, weights: np.ndarray | None = None,
                   frame_s: float = 0.01) -> np.ndarray:
    """Onsets as a frame signal (``frame_s`` frames), each frame the summed weight of the
    onsets in it, smoothed over about 20 ms."""
    t = np.asarray(onsets_s, np.float64)
    w = np.ones(len(t)) if weights is None else np.asarray(weights, np.float64)
    frames = np.round(t / frame_s).astype(np.int64)
    env = np.bincount(frames, weights=w, minlength=int(frames.max()) + 2 if len(t) else 2)
    kernel = np.exp(-0.5 * (np.arange(-4, 5) / 2.0) ** 2)
    return np.convolve(env, kernel / kernel.sum(), mode="same")


def estimate_period(env: np.ndarray, frame_s: float = 0.01, prior_bpm: float = PRIOR_BPM,
                    prior_octaves: float = PRIOR_OCTAVES,
                    bpm_range: tuple[float, float] = (50, 200)) -> tuple[float, float]:
    """The beat length (seconds) an onset signal repeats at most, with a log-normal preference
    around ``prior_bpm``, and its strength (the autocorrelation there over the one at 0)."""
    x = env - env.mean()
    n = len(x)
    size = 1 << int(np.ceil(np.log2(2 * n)))
    spec = np.fft.rfft(x, size)
    ac = np.fft.irfft(spec * np.conj(spec), size)[:n]
    if ac[0] <= 0:
        return 60.0 / prior_bpm, 0.0
    ac = ac / ac[0]
    lo = int(60.0 / bpm_range[1] / frame_s)
    hi = min(int(60.0 / bpm_range[0] / frame_s), n // 2)
    if hi <= lo + 1:
        return 60.0 / prior_bpm, 0.0
    lags = np.arange(lo, hi)
    # A beat repeats at its own length, twice it (the half bar) and half of it (the eighths).
    score = (ac[lags] + 0.5 * ac[np.minimum(2 * lags, n - 1)] + 0.5 * ac[lags // 2])
    prior = np.exp(-0.5 * (np.log2(lags * frame_s / (60.0 / prior_bpm)) / prior_octaves) ** 2)
    best = int(lags[np.argmax(np.maximum(score, 0) * prior)])
    return best * frame_s, float(max(ac[best], 0.0))


def octave(onsets_s: np.ndarray, period_s: float, window_s: float = 12.0) -> float:
    """The beat's length: ``period_s``, or half, twice, two thirds or three halves of it where
    that level's steady eighth grid (at its best phase, over stretches of ``window_s``) holds the
    onsets clearly better beyond chance (a finer grid holds more of anything). A faster level
    must win by far more (FASTER_MARGIN): a ballad's sixteenth-note runs fill the grid of twice
    its tempo, yet its beat is the slow one (on 761 POP909 training songs' 10 s openings, the
    tracker's eighth lines met the annotated ones 73% of the time with one margin for every
    level and no thirds, 80% with them; being twice too slow costs little: its lines are all
    on the true grid)."""
    t = np.asarray(onsets_s, np.float64)
    scores = {}
    for ratio in LEVELS:
        candidate = period_s * ratio
        if not 60.0 / 200 <= candidate <= 60.0 / 40:
            continue
        held = [best_phase_on_grid(t[(t >= a) & (t < a + window_s)], candidate)
                for a in np.arange(t[0], t[-1], window_s)]
        held = [h for h in held if h == h]
        chance = min(1.0, 2 * GRID_TOLERANCE_S / (candidate / 2))
        scores[ratio] = float(np.mean(held)) - chance if held else -1.0
    best = max(scores, key=scores.get)
    margin = FASTER_MARGIN if best < 1 else SLOWER_MARGIN
    return period_s * best if scores[best] > scores[1] + margin else period_s


def track_beats(onsets_s: np.ndarray, weights: np.ndarray | None = None, meter: int = 4,
                bass: np.ndarray | None = None, frame_s: float = 0.01,
                tightness: float = 300.0) -> Beats | None:
    """Beats of a piece from its onsets alone (Ellis's dynamic programme, 2007): the tempo from
    the onsets' autocorrelation, then the beat times that best sit on strong onsets while
    keeping near that tempo; bars of ``meter`` beats starting where the ``bass`` weights (or
    the onsets') fall most. None where under 8 onsets or no tempo is heard."""
    t = np.asarray(onsets_s, np.float64)
    if len(t) < 8:
        return None
    env = onset_strength(t, weights, frame_s)
    period_s, strength = estimate_period(env, frame_s)
    if strength <= 0:
        return None
    period_s = octave(t, period_s)
    env = env / (env.std() or 1.0)
    P = period_s / frame_s
    n = len(env)
    score = env.copy()
    back = np.full(n, -1, np.int64)
    # Each frame's best previous beat between half and twice a beat back, penalised by how far
    # the gap is from a beat (log ratio, squared).
    gaps = np.arange(int(round(P / 2)), int(round(2 * P)) + 1)
    penalty = -tightness * np.log(gaps / P) ** 2
    for i in range(gaps[0], n):
        lo = i - gaps
        ok = lo >= 0
        cand = score[lo[ok]] + penalty[ok]
        k = int(np.argmax(cand))
        if cand[k] > 0:
            score[i] += cand[k]
            back[i] = lo[ok][k]
    # The last beat: the best-scoring frame among the last beat's worth, then back.
    tail = max(0, n - int(round(P)))
    i = tail + int(np.argmax(score[tail:]))
    frames = []
    while i >= 0:
        frames.append(i)
        i = int(back[i])
    beat_times = np.asarray(frames[::-1], np.float64) * frame_s
    if len(beat_times) < 2:
        return None
    # Bars: the phase of `meter` whose beats carry the most (bass) weight.
    strong = onset_strength(t, bass if bass is not None else weights, frame_s)
    at = np.clip(np.round(beat_times / frame_s).astype(np.int64), 0, len(strong) - 1)
    weight = strong[at]
    offset = int(np.argmax([weight[k::meter].mean() if len(weight[k::meter]) else 0.0
                            for k in range(meter)]))
    downs = (np.arange(len(beat_times)) - offset) % meter == 0
    return Beats(beat_times, downs, "tracker")


def note_onsets(start_s: np.ndarray, pitch: np.ndarray, velocity: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Notes -> (onset times, their weights, their bass weights) for `track_beats`: a note
    weighs its velocity; the bass weight counts notes below middle C's octave twice."""
    w = np.asarray(velocity, np.float64) / 127.0
    return (np.asarray(start_s, np.float64), w,
            w * np.where(np.asarray(pitch) < 55, 2.0, 0.5))


def find_beats(start_s: np.ndarray, pitch: np.ndarray, velocity: np.ndarray,
               path: str | Path | None = None, midi: object = None, meter: int = 4
               ) -> Beats | None:
    """A piece's beats, in order: annotations beside ``path`` (``beat_midi.txt``), the tempo
    map of ``midi`` (a PrettyMIDI) where it fits the notes, else the tracker over the notes."""
    if path is not None:
        beside = Path(path).parent / ANNOTATIONS
        if beside.is_file():
            try:
                return read_annotations(beside)
            except ValueError:
                pass  # unreadable annotations: the file's own beats instead
    onsets, weights, bass = note_onsets(start_s, pitch, velocity)
    if midi is not None:
        mapped = tempo_map_beats(midi)
        mapped = None if mapped is None else fitted_tempo_map(onsets, mapped)
        if mapped is not None:
            return mapped
    return track_beats(onsets, weights, meter, bass)


def beats_of_file(path: str | Path, meter: int = 4) -> Beats | None:
    """`find_beats` for a MIDI file. Raises `encoders.MidiError` naming the file when it is not
    readable MIDI."""
    return beats_of_midi(Path(path).read_bytes(), path, meter)


def beats_of_midi(data: bytes, path: str | Path | None = None, meter: int = 4) -> Beats | None:
    """`find_beats` for MIDI bytes: annotations beside ``path`` where they are readable (the
    MIDI is then not parsed), else its tempo map where it fits its notes (drums included: they
    keep the beat too), else the tracker."""
    from neuralband.encoders.midi_io import parse_pretty_midi, read_notes

    if path is not None and (Path(path).parent / ANNOTATIONS).is_file():
        try:
            return read_annotations(Path(path).parent / ANNOTATIONS)
        except ValueError:
            pass  # unreadable annotations: the file's own beats instead
    name = str(path) if path is not None else "<MIDI bytes>"
    notes = read_notes(data)
    return find_beats(notes.start_s, notes.pitch, notes.velocity, None,
                      parse_pretty_midi(data, name), meter)


def parse_meter(text: str) -> int:
    """``--meter`` as beats to the bar: "3/4" -> 3, "4" -> 4, "6/8" -> 6 (eighths counted as
    beats). ValueError in words otherwise."""
    head = text.strip().split("/", 1)[0]
    try:
        beats = int(head)
    except ValueError:
        raise ValueError(f"a meter is beats to the bar, such as 4/4 or 3/4, not {text!r}") \
            from None
    if not 1 <= beats <= 16:
        raise ValueError(f"a bar is 1..16 beats, got {text!r}")
    return beats

