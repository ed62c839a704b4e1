"""Metrics of MIDI pieces, so that generated music can be set beside real music, number by number.

Every metric looks at the notes whose onset lies in a time range ``[start_s, end_s)`` (by default
the whole piece), so "the 30 s after a 10 s primer" is ``start_s=10, end_s=40``. A range is cut
at the piece's last note-off: a file shorter than the range does not count as silence. Notes are
read as the encoder reads them (`encoders.performance.prepare_notes`): drums left out, the sustain
pedal folded into note lengths. A metric with nothing to measure is NaN.

Solo metrics (`piece_metrics`), one number each:

- ``notes_per_s``: onsets in the range per second of it;
- ``polyphony``: the time-weighted mean number of notes sounding, over the part of the range where
  at least one sounds (notes clipped to the range), so rests do not pull it down: two notes that
  overlap for the whole of their length give 2;
- ``median_length_s``: the median note length (onset to release, not clipped);
- ``capped_share``: the share of notes at least ``cap_s - 0.015`` s long, i.e. ended by the
  instrument's longest-note cap (``--max-note``, 5 s by default) rather than by the music;
- ``velocity_sd``: the standard deviation of the notes' velocities (1..127);
- ``in_key_share``: the share of notes whose pitch class is in the key's diatonic scale;
- ``pc_distance``: the Jensen-Shannon divergence, in bits (0 same .. 1 disjoint), between the
  piece's key-relative pitch-class histogram (duration-weighted, rotated so that the key's major
  tonic, a minor key's relative major, is bin 0) and a reference one, typically the mean of the
  real pieces. Key-relative, so that songs in different keys can share one reference; JS rather
  than L1 because it is symmetric, bounded and weighs differences by how much a bin is used.
- ``ioi_distance`` and ``length_distance``: the same divergence between the piece's histogram of
  inter-onset intervals (onsets within 30 ms of each other are one, a chord) and a reference
  one, and between their histograms of note lengths; 24 bins spaced evenly in log time from
  20 ms to 4 s. Whether the piece moves and holds its notes as the reference music does.

Accompaniment metrics (`accompaniment_metrics`) of a melody part and a band part:

- ``band_notes_per_s`` and ``band_in_key_share`` as above, for the band's notes;
- ``band_below_share``: of the band onsets made while a melody note sounds, the share pitched
  below it (strictly); "the" melody note is the one sounding that began last;
- ``band_consonant_share``: of the same onsets, the share at a consonant interval with it:
  interval classes 0 (unison, octaves), 3, 4 (thirds), 5, 7 (perfect fourth and fifth),
  8, 9 (sixths); seconds, sevenths and the tritone count as dissonant;
- ``melody_met_share``: the share of melody onsets with a band onset within 50 ms.

Groove metrics (`groove_metrics`) of onsets against a reference's beats (`encoders.beats`):

- ``on_grid``: the share of onsets within 40 ms of an eighth-note line of the beats (real pop
  piano: about three in four; onsets at random: ``chance``, about one in five at 80 BPM);
- ``tempo_held``: the same on a steady grid at the beats' tempo, at the phase that holds most
  onsets: whether the tempo is kept, wherever its beat falls.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from neuralband.encoders.beats import Beats, best_phase_on_grid, chance_on_grid, on_grid
from neuralband.encoders.errors import MidiError
from neuralband.encoders.keys import (
    CONSONANT_INTERVALS,
    estimate_key,
    pitch_class_histogram,
    scale_mask,
)
from neuralband.encoders.midi_io import NoteTable, read_notes, source_name, table_from_pretty_midi
from neuralband.encoders.performance import EncoderSettings, prepare_notes
from neuralband.encoders.voices import read_pretty_midi

CAP_S = 5.0  # the instrument's default longest note (generate/play --max-note)
CAP_TOLERANCE_S = 0.015  # a capped note ends within a step or so of the cap
MEET_S = 0.05  # a band onset this close to a melody onset meets it
MELODY_NAMES = ("melody", "lead")  # track names that mark the melody (POP909, generate --lead)
MIDI_SUFFIXES = (".mid", ".midi")

SOLO_METRICS = ("notes_per_s", "polyphony", "median_length_s", "capped_share", "velocity_sd",
                "in_key_share", "pc_distance", "ioi_distance", "length_distance")
TIME_EDGES = np.geomspace(0.02, 4.0, 25)  # 24 log-spaced bins of the timing histograms
CHORD_S = 0.03  # onsets this close together are one onset, a chord
GROOVE_METRICS = ("on_grid", "tempo_held")
ACCOMPANIMENT_METRICS = ("band_notes_per_s", "band_in_key_share", "band_below_share",
                         "band_consonant_share", "melody_met_share")

Key = tuple[int, str]
Piece = NoteTable | str | os.PathLike


def find_midi(sources: Iterable[str | os.PathLike]) -> list[Path]:
    """The .mid/.midi files named, and those under the folders named, sorted; FileNotFoundError
    for a source that does not exist."""
    found: set[Path] = set()
    for source in sources:
        path = Path(source)
        if path.is_file():
            found.add(path)
        elif path.is_dir():
            found.update(p for p in path.rglob("*")
                         if p.suffix.lower() in MIDI_SUFFIXES and p.is_file())
        else:
            raise FileNotFoundError(f"no such file or folder: {path}")
    return sorted(found)


def load_notes(piece: Piece, sustain: bool = True) -> NoteTable:
    """A NoteTable as given, or a MIDI file's notes as the encoder sees them (drums out, sustain
    folded in, or with ``sustain=False`` the key presses alone, as a model encoded without the
    pedal plays); MidiError for an unreadable file."""
    if isinstance(piece, NoteTable):
        return piece
    return prepare_notes(read_notes(piece), EncoderSettings(sustain=sustain))


def load_parts(source: str | os.PathLike, sustain: bool = True) -> tuple[NoteTable, NoteTable]:
    """A MIDI file -> (melody, band): the melody is the first track named MELODY or lead
    (case aside), else the first melodic track; the band is every other melodic track."""
    pm = read_pretty_midi(source, source_name(source))
    melodic = [g for g, inst in enumerate(pm.instruments) if inst.notes and not inst.is_drum]
    if not melodic:
        return _empty(), _empty()
    named = [g for g in melodic if pm.instruments[g].name.strip().casefold() in MELODY_NAMES]
    lead = (named or melodic)[0]
    table = table_from_pretty_midi(pm)
    settings = EncoderSettings(sustain=sustain)
    melody = prepare_notes(table.select(table.group == lead), settings)
    band = prepare_notes(table.select((table.group != lead) & ~table.is_drum), settings)
    return melody, band


def _empty() -> NoteTable:
    f, i = np.zeros(0, np.float64), np.zeros(0, np.int64)
    return NoteTable(f, f, i, i, i, np.zeros(0, bool), f, i, i)


def span(table: NoteTable, start_s: float = 0.0, end_s: float | None = None
         ) -> tuple[float, float]:
    """The range measured: ``[start_s, end_s)`` cut at the last note-off (the piece's end)."""
    last = float(table.end_s.max()) if len(table) else start_s
    end = last if end_s is None else min(end_s, last)
    return start_s, max(end, start_s)


def in_span(table: NoteTable, lo: float, hi: float) -> NoteTable:
    """The notes whose onset lies in ``[lo, hi)``."""
    return table.select((table.start_s >= lo) & (table.start_s < hi))


def sounding_histogram(table: NoteTable, lo: float, hi: float) -> np.ndarray:
    """The pitch-class histogram of what sounds in ``[lo, hi)``, weighted by time sounding."""
    length = np.clip(table.end_s, lo, hi) - np.clip(table.start_s, lo, hi)
    return pitch_class_histogram(table.pitch, length)


def timing_histograms(table: NoteTable, lo: float, hi: float) -> np.ndarray:
    """The normalised histograms of the inter-onset intervals and of the note lengths of the
    notes starting in ``[lo, hi)``, as one (2, 24) array (a row of zeros where there is none)."""
    notes = in_span(table, lo, hi)
    onsets = np.unique(notes.start_s)
    if len(onsets):
        onsets = onsets[np.concatenate([[True], np.diff(onsets) > CHORD_S])]
    rows = []
    for values in (np.diff(onsets), notes.end_s - notes.start_s):
        counts = np.histogram(np.clip(values, TIME_EDGES[0], TIME_EDGES[-1]), TIME_EDGES)[0]
        rows.append(counts / counts.sum() if counts.sum() else counts.astype(np.float64))
    return np.array(rows)


def _distance(own: np.ndarray, reference: np.ndarray | None) -> float:
    """The JS divergence of a histogram and a reference; NaN where either is empty."""
    if reference is None or not own.any() or not reference.any():
        return float("nan")
    return js_divergence(own, reference)


def table_key(table: NoteTable, lo: float = 0.0, hi: float = np.inf) -> Key | None:
    """The key estimated from the notes sounding in ``[lo, hi)``, or None with no notes."""
    hist = sounding_histogram(table, lo, hi)
    try:
        return estimate_key(hist)
    except ValueError:
        return None


def key_relative(histogram: np.ndarray, key: Key) -> np.ndarray:
    """A pitch-class histogram rotated so that the key's major tonic (a minor key's relative
    major) is bin 0: C major and A minor stay as they are, G major moves down a fifth."""
    tonic, mode = key
    return np.roll(histogram, -((tonic + 3) % 12 if mode == "minor" else tonic))


def js_divergence(p: np.ndarray, q: np.ndarray) -> float:
    """The Jensen-Shannon divergence of two distributions in bits: 0 (equal) .. 1 (disjoint)."""
    p, q = np.asarray(p, np.float64), np.asarray(q, np.float64)
    m = 0.5 * (p + q)

    def kl(a: np.ndarray) -> float:
        used = a > 0
        return float((a[used] * np.log2(a[used] / m[used])).sum())

    return 0.5 * kl(p) + 0.5 * kl(q)


def polyphony(start_s: np.ndarray, end_s: np.ndarray, lo: float = -np.inf,
              hi: float = np.inf) -> float:
    """The time-weighted mean count of notes sounding while at least one sounds, in [lo, hi)."""
    start, end = np.clip(start_s, lo, hi), np.clip(end_s, lo, hi)
    keep = end > start
    if not keep.any():
        return float("nan")
    times = np.concatenate([start[keep], end[keep]])
    steps = np.concatenate([np.ones(keep.sum()), -np.ones(keep.sum())])
    order = np.argsort(times, kind="stable")
    times, count = times[order], np.cumsum(steps[order])
    dt = np.diff(times)  # count[i] notes sound from times[i] to times[i + 1]
    busy = count[:-1] > 0
    return float((count[:-1][busy] * dt[busy]).sum() / dt[busy].sum())


def _share(mask: np.ndarray) -> float:
    return float(np.mean(mask)) if len(mask) else float("nan")


def in_key_share(pitches: np.ndarray, key: Key | None) -> float:
    """The share of the pitches in the key's diatonic scale (NaN without notes or key)."""
    if key is None:
        return float("nan")
    return _share(scale_mask(*key)[np.asarray(pitches, np.int64) % 12])


def piece_metrics(piece: Piece, start_s: float = 0.0, end_s: float | None = None,
                  cap_s: float = CAP_S, key: Key | None = None,
                  reference: np.ndarray | None = None,
                  timing: np.ndarray | None = None) -> dict[str, float]:
    """The solo metrics (see the module docstring) of one piece over ``[start_s, end_s)``.

    ``key`` defaults to the one estimated from the range itself; ``reference`` is the
    key-relative histogram that ``pc_distance`` compares with, ``timing`` the (2, 24) timing
    histograms that ``ioi_distance`` and ``length_distance`` do (NaN without them).
    """
    table = load_notes(piece)
    lo, hi = span(table, start_s, end_s)
    notes = in_span(table, lo, hi)
    key = key if key is not None else table_key(table, lo, hi)
    length = notes.end_s - notes.start_s
    hist = sounding_histogram(notes, lo, hi)
    distance = (js_divergence(key_relative(hist, key), reference)
                if reference is not None and key is not None and hist.any() else float("nan"))
    own = timing_histograms(table, lo, hi)
    rhythm = [float("nan")] * 2 if timing is None else [_distance(own[i], timing[i])
                                                       for i in range(2)]
    return {
        "notes_per_s": len(notes) / (hi - lo) if hi > lo else float("nan"),
        "polyphony": polyphony(notes.start_s, notes.end_s, lo, hi),
        "median_length_s": float(np.median(length)) if len(notes) else float("nan"),
        "capped_share": _share(length >= cap_s - CAP_TOLERANCE_S),
        "velocity_sd": float(np.std(notes.velocity)) if len(notes) else float("nan"),
        "in_key_share": in_key_share(notes.pitch, key),
        "pc_distance": distance,
        "ioi_distance": rhythm[0],
        "length_distance": rhythm[1],
    }


def groove_metrics(onsets_s: np.ndarray, beats: Beats | None, start_s: float = 0.0,
                   end_s: float = np.inf) -> dict[str, float]:
    """How the onsets in ``[start_s, end_s)`` keep a reference's beat (`encoders.beats`): the
    share within 40 ms of its eighth-note lines (``on_grid``), the share on a steady grid at its
    tempo at the best phase (``tempo_held``: the tempo kept, wherever the beat falls), and what
    onsets at random would give (``chance``). NaN without beats or onsets."""
    t = np.asarray(onsets_s, np.float64)
    t = t[(t >= start_s) & (t < end_s)]
    if beats is None or not len(t):
        return {"on_grid": float("nan"), "tempo_held": float("nan"), "chance": float("nan")}
    return {"on_grid": on_grid(t, beats), "tempo_held": best_phase_on_grid(t, beats.period_s),
            "chance": chance_on_grid(beats)}


def melody_at(melody: NoteTable, times: np.ndarray) -> np.ndarray:
    """For each time, the index of the melody note sounding then that began last, or -1."""
    out = np.full(len(times), -1, np.int64)
    if not len(melody):
        return out
    # Latest onset first (the higher pitch first at one onset), so argmax finds the one wanted.
    order = np.lexsort((-melody.pitch, -melody.start_s))
    start, end = melody.start_s[order], melody.end_s[order]
    for i in range(0, len(times), 1024):  # (chunk, melody notes) at a time
        t = times[i:i + 1024, None]
        sounding = (start[None, :] <= t) & (t < end[None, :])
        first = np.argmax(sounding, axis=1)
        out[i:i + 1024] = np.where(sounding.any(axis=1), order[first], -1)
    return out


def accompaniment_metrics(melody: NoteTable, band: NoteTable, start_s: float = 0.0,
                          end_s: float | None = None, key: Key | None = None
                          ) -> dict[str, float]:
    """The accompaniment metrics (see the module docstring) over ``[start_s, end_s)``.

    ``key`` defaults to the one estimated from the whole melody (the given part, so the band's
    own notes do not decide what counts as in key).
    """
    both = np.concatenate([melody.end_s, band.end_s])
    last = float(both.max()) if len(both) else start_s
    lo, hi = start_s, max(start_s, last if end_s is None else min(end_s, last))
    key = key if key is not None else table_key(melody)
    tunes, notes = in_span(melody, lo, hi), in_span(band, lo, hi)
    at = melody_at(melody, notes.start_s)
    heard = at >= 0
    below = notes.pitch[heard] < melody.pitch[at[heard]]
    interval = np.abs(melody.pitch[at[heard]] - notes.pitch[heard]) % 12
    onsets = np.sort(notes.start_s)
    met = np.zeros(len(tunes), bool)
    if len(onsets):
        j = np.clip(np.searchsorted(onsets, tunes.start_s), 1, len(onsets)) - 1
        k = np.clip(j + 1, 0, len(onsets) - 1)
        nearest = np.minimum(np.abs(onsets[j] - tunes.start_s), np.abs(onsets[k] - tunes.start_s))
        met = nearest <= MEET_S + 1e-9
    return {
        "band_notes_per_s": len(notes) / (hi - lo) if hi > lo else float("nan"),
        "band_in_key_share": in_key_share(notes.pitch, key),
        "band_below_share": _share(below),
        "band_consonant_share": _share(np.isin(interval, sorted(CONSONANT_INTERVALS))),
        "melody_met_share": _share(met),
    }


def mean_metrics(rows: Sequence[dict[str, float]], names: Sequence[str]) -> dict[str, float]:
    """Each metric's mean over the rows, leaving out the NaNs (NaN where all are)."""
    out = {}
    for name in names:
        values = np.array([r[name] for r in rows], np.float64)
        values = values[~np.isnan(values)]
        out[name] = float(values.mean()) if len(values) else float("nan")
    return out


def measured_range(primer_s: float = 0.0, seconds: float | None = None
                   ) -> tuple[float, float | None]:
    """``--primer-s``/``--seconds`` -> the range measured: after the primer, for ``seconds``."""
    if primer_s < 0 or (seconds is not None and seconds <= 0):
        raise ValueError("--primer-s must be >= 0 and --seconds > 0")
    return primer_s, None if seconds is None else primer_s + seconds


def read_all(paths: Sequence[str | os.PathLike], loader=load_notes) -> tuple[list, list[str]]:
    """``loader`` applied to every path, and "name: reason" for each that could not be read."""
    loaded, failed = [], []
    for path in paths:
        try:
            loaded.append(loader(path))
        except MidiError as err:
            failed.append(str(err))
    return loaded, failed


def key_and_histogram(table: NoteTable, primer_s: float, lo: float, hi: float | None,
                      key: Key | None = None) -> tuple[Key | None, np.ndarray]:
    """A piece's key (``key``, else estimated from its primer ``[0, primer_s)``, else from the
    range measured) and its key-relative histogram over the range (zeros without a key)."""
    a, b = span(table, lo, hi)
    if key is None and primer_s > 0:
        key = table_key(table, 0.0, primer_s)
    if key is None:
        key = table_key(table, a, b)
    if key is None:
        return None, np.zeros(12)
    return key, key_relative(sounding_histogram(in_span(table, a, b), a, b), key)


def mean_histogram(histograms: Sequence[np.ndarray]) -> np.ndarray | None:
    """The mean of the non-empty histograms (None if there are none)."""
    used = [h for h in histograms if h.any()]
    return np.mean(used, axis=0) if used else None


def solo_rows(tables: Sequence[NoteTable], primer_s: float = 0.0, seconds: float | None = None,
              cap_s: float = CAP_S, key: Key | None = None,
              reference: Sequence[NoteTable] | None = None) -> list[dict[str, float]]:
    """The solo metrics of every piece after a primer of ``primer_s`` for ``seconds``.

    ``pc_distance`` (and the timing distances) compare with the mean histograms of the
    ``reference`` pieces (the real ones); without them, of the other pieces of the set, so that
    a real set is not compared with itself.
    """
    lo, hi = measured_range(primer_s, seconds)
    own = [key_and_histogram(t, primer_s, lo, hi, key) for t in tables]
    timing = [timing_histograms(t, *span(t, lo, hi)) for t in tables]
    pooled = pooled_timing = None
    if reference is not None:
        pooled = mean_histogram([key_and_histogram(t, primer_s, lo, hi, key)[1]
                                 for t in reference])
        pooled_timing = mean_timing([timing_histograms(t, *span(t, lo, hi)) for t in reference])
    rows = []
    for i, table in enumerate(tables):
        others = [j for j in range(len(tables)) if j != i]
        ref = pooled if reference is not None else mean_histogram([own[j][1] for j in others])
        ref_timing = (pooled_timing if reference is not None
                      else mean_timing([timing[j] for j in others]))
        rows.append(piece_metrics(table, lo, hi, cap_s, own[i][0], ref, ref_timing))
    return rows


def mean_timing(histograms: Sequence[np.ndarray]) -> np.ndarray | None:
    """The mean of (2, 24) timing histograms, each row over the pieces where it is not empty."""
    if not histograms:
        return None
    rows = [mean_histogram([h[i] for h in histograms]) for i in range(2)]
    return np.array([np.zeros(len(TIME_EDGES) - 1) if r is None else r for r in rows])


def groove_rows(tables: Sequence[NoteTable], primer_s: float = 0.0,
                seconds: float | None = None, beats: Beats | None = None
                ) -> list[dict[str, float]]:
    """``on_grid`` and ``tempo_held`` of every piece's onsets after ``primer_s`` for
    ``seconds``: against ``beats`` (a reference's), else against each piece's own primer's beats
    carried on (found as `generate --primer` finds a cut file's: the tracker over its notes)."""
    from neuralband.encoders.beats import find_beats

    lo, hi = measured_range(primer_s, seconds)
    hi = np.inf if hi is None else hi
    rows = []
    for table in tables:
        grid = beats
        if grid is None and primer_s > 0:
            head = table.select(table.start_s < primer_s)
            found = find_beats(head.start_s, head.pitch, head.velocity)
            grid = None if found is None else found.carried_on(
                hi if np.isfinite(hi) else float(table.start_s.max(initial=primer_s)) + 1.0)
        metrics = groove_metrics(table.start_s, grid, lo, hi)
        rows.append({m: metrics[m] for m in GROOVE_METRICS})
    return rows


def accompaniment_rows(parts: Sequence[tuple[NoteTable, NoteTable]], primer_s: float = 0.0,
                       seconds: float | None = None, key: Key | None = None
                       ) -> list[dict[str, float]]:
    """The accompaniment metrics of every (melody, band) after ``primer_s`` for ``seconds``."""
    lo, hi = measured_range(primer_s, seconds)
    return [accompaniment_metrics(melody, band, lo, hi, key) for melody, band in parts]
