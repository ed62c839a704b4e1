"""Musical keys: names, scales, pitch-class histograms and Krumhansl-Kessler key estimation.

A key is ``(tonic, mode)``: the tonic's pitch class 0..11 (C = 0) and ``"major"`` or
``"minor"`` (natural minor for scales). Pure numpy, so the evaluation tools and the tests can
ask "is this note in key" without the model.
"""

from __future__ import annotations

import re

import numpy as np

MODES = ("major", "minor")

# Each key spelled with the signature of fewer accidentals (at six each, F# major and Eb minor):
# Db major (5 flats) rather than C# (7 sharps), but C# minor (4 sharps) rather than Db (8 flats).
MAJOR_NAMES = ("C", "Db", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
MINOR_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "G#", "A", "Bb", "B")

_LETTERS = {"c": 0, "d": 2, "e": 4, "f": 5, "g": 7, "a": 9, "b": 11}
_ACCIDENTALS = {"": 0, "#": 1, "♯": 1, "b": -1, "♭": -1}
_MODE_WORDS = {"": "major", "maj": "major", "major": "major", "min": "minor", "minor": "minor"}
# A letter, an accidental, then an optional mode after a space or a colon (POP909: "Gb:maj").
_KEY = re.compile(r"([A-Ga-g])([#♯b♭]?)\s*:?\s*([A-Za-z]*)")

_MAJOR_STEPS = (0, 2, 4, 5, 7, 9, 11)
_MINOR_STEPS = (0, 2, 3, 5, 7, 8, 10)

# Intervals (semitones, up to the octave) heard as consonant with a melody note: unison, thirds,
# fourth, fifth, sixths. The rest (seconds, tritone, sevenths) clash with it.
CONSONANT_INTERVALS = frozenset({0, 3, 4, 5, 7, 8, 9})

# Krumhansl & Kessler (1982) probe-tone ratings, from the tonic up in semitones.
KK_MAJOR = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
KK_MINOR = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])


def parse_key(text: str) -> tuple[int, str]:
    """ "Eb major", "eb", "C#m", "C# minor", "F#:min", "Gb:maj", "Bb" -> (tonic, mode).

    A bare tonic is major; a lone "m" after it is minor. ValueError for anything else.
    """
    if not isinstance(text, str):
        raise TypeError(f"a key is a string such as 'Eb major', not {type(text).__name__}")
    m = _KEY.fullmatch(text.strip())
    word = m.group(3) if m else ""
    mode = "minor" if word == "m" else _MODE_WORDS.get(word.lower()) if m else None
    if mode is None:
        raise ValueError(f"not a key: {text!r} (try 'Eb major', 'C#m', 'F#:min' or 'A minor')")
    tonic = (_LETTERS[m.group(1).lower()] + _ACCIDENTALS[m.group(2)]) % 12
    return tonic, mode


def check_key(tonic: int, mode: str) -> None:
    """TypeError/ValueError unless ``tonic`` is a pitch class 0..11 and ``mode`` one of MODES."""
    if not isinstance(tonic, (int, np.integer)) or isinstance(tonic, bool):
        raise TypeError(f"tonic must be an int pitch class, not {type(tonic).__name__}")
    if not 0 <= tonic <= 11:
        raise ValueError(f"tonic must be a pitch class 0..11, got {tonic}")
    if mode not in MODES:
        raise ValueError(f"mode must be 'major' or 'minor', got {mode!r}")


def key_name(tonic: int, mode: str) -> str:
    """(3, "major") -> "Eb major", (1, "minor") -> "C# minor" (spellings: MAJOR/MINOR_NAMES)."""
    check_key(tonic, mode)
    names = MAJOR_NAMES if mode == "major" else MINOR_NAMES
    return f"{names[int(tonic)]} {mode}"


def scale_mask(tonic: int, mode: str) -> np.ndarray:
    """12 bools, true on the key's seven diatonic pitch classes (minor: natural minor)."""
    check_key(tonic, mode)
    mask = np.zeros(12, bool)
    steps = _MAJOR_STEPS if mode == "major" else _MINOR_STEPS
    mask[[(int(tonic) + s) % 12 for s in steps]] = True
    return mask


def pitch_class_histogram(pitches: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """12 floats summing to 1: each pitch class's share of the notes (or of ``weights``, such
    as durations); all zeros when there are no notes (or no weight)."""
    pitches = np.asarray(pitches, np.int64).ravel()
    if weights is None:
        weights = np.ones(len(pitches))
    weights = np.asarray(weights, np.float64).ravel()
    if len(weights) != len(pitches):
        raise ValueError(f"{len(pitches)} pitches but {len(weights)} weights")
    counts = np.bincount(pitches % 12, weights=weights, minlength=12).astype(np.float64)
    total = counts.sum()
    return counts / total if total > 0 else counts


def key_correlations(histogram: np.ndarray) -> np.ndarray:
    """(2, 12) Pearson correlations of a histogram with the KK profile of every key:
    row 0 the major keys, row 1 the minor keys, column the tonic."""
    h = np.asarray(histogram, np.float64)
    if h.shape != (12,):
        raise ValueError(f"a pitch-class histogram has 12 bins, got shape {h.shape}")
    out = np.zeros((2, 12))
    hc = h - h.mean()
    h_norm = np.sqrt((hc * hc).sum())
    if h_norm == 0:
        return out
    for row, profile in enumerate((KK_MAJOR, KK_MINOR)):
        for tonic in range(12):
            p = np.roll(profile, tonic)  # p[pc] is the rating of pc in this key
            pc = p - p.mean()
            out[row, tonic] = (hc * pc).sum() / (h_norm * np.sqrt((pc * pc).sum()))
    return out


def estimate_key(histogram: np.ndarray) -> tuple[int, str]:
    """The key whose Krumhansl-Kessler profile correlates best with the histogram, of 24.

    ValueError for an empty (all-zero or flat) histogram, which has no key.
    """
    r = key_correlations(histogram)
    if not r.any():
        raise ValueError("no key in an empty or flat pitch-class histogram")
    row, tonic = np.unravel_index(int(np.argmax(r)), r.shape)
    return int(tonic), MODES[int(row)]
