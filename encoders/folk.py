"""ABC folk tunes as folk-rnn's tokens (Sturm et al. 2016): the tune's text, cut into symbols.

A tune becomes ``<s> M:6/8 K:Cmaj |: D F A d A F | ... :| </s>``: its meter, its mode on a
common tonic of C, then one token per note (its pitch as ABC spells it: accidental, letter,
octave marks), per duration (in eighth notes, ``2``, ``/2``, ``3/2``; none for one eighth),
per bar line, repeat, ending, rest, broken rhythm and triplet. Titles, chord symbols, grace notes,
decorations, ties and slurs are left out, as folk-rnn left them out. Each tune is transposed to
C (``Dmaj`` -> ``Cmaj``, ``Ador`` -> ``Cdor``): every pitch moves by one interval and is spelled
again in the new key, accidentals included (an ABC accidental holds to the end of its bar).
Decoding joins the tokens back into an ABC tune that symusic's abc2midi renders.

A tune is refused, with the reason, where folk-rnn's symbols cannot hold it: chords, more than
one voice, a key or meter that changes inside the tune, a mode other than major, minor, Dorian
or Mixolydian, a meter or duration outside the vocabulary.
"""

from __future__ import annotations

import re
from fractions import Fraction

import numpy as np

from neuralband.encoders.abc import Tune, tune_to_midi
from neuralband.encoders.errors import MidiError
from neuralband.encoders.schemes import ABC_SUFFIX, Limits, Piece, TokenScheme

LETTERS = "CDEFGAB"
NATURAL = (0, 2, 4, 5, 7, 9, 11)  # semitones of C D E F G A B above C
MAJOR_STEPS = (2, 2, 1, 2, 2, 2, 1)
# Modes by the scale degree of the major scale they start on (maj 0, dor 1, mix 4, min 5).
MODES = {"maj": 0, "dor": 1, "mix": 4, "min": 5}
MODE_NAMES = {"": "maj", "m": "min", "maj": "maj", "major": "maj", "ion": "maj",
              "ionian": "maj", "min": "min", "minor": "min", "aeo": "min", "aeolian": "min",
              "dor": "dor", "dorian": "dor", "mix": "mix", "mixolydian": "mix"}
METERS = ("2/4", "3/4", "4/4", "6/8", "9/8", "12/8", "3/8", "2/2", "C", "C|", "3/2", "5/4",
          "6/4", "7/8", "5/8", "3/16")
ACCIDENTALS = {"": None, "=": 0, "^": 1, "^^": 2, "_": -1, "__": -2}
DURATIONS = tuple(Fraction(x) for x in (
    "1/8", "1/6", "1/4", "1/3", "3/8", "1/2", "2/3", "3/4", "3/2", "2", "5/2", "3", "7/2", "4",
    "5", "6", "7", "8", "9", "10", "12", "16"))
BARS = ("|", "||", "|]", "|:", ":|", "::", "[1", "[2")
OTHER = ("z", ">", "<", "(2", "(3", "(4")
SPECIAL = ("<s>", "</s>")


def _duration_token(d: Fraction) -> str:
    return str(d.numerator) if d.denominator == 1 else (
        f"/{d.denominator}" if d.numerator == 1 else f"{d.numerator}/{d.denominator}")


def _note_name(letter: int, octave: int, accidental: str) -> str:
    """ABC spelling: octave 0 is the one from middle C ("C".."B"), 1 is "c".."b"."""
    name = LETTERS[letter] if octave <= 0 else LETTERS[letter].lower()
    marks = "," * -octave if octave < 0 else "'" * (octave - 1) if octave > 1 else ""
    return accidental + name + marks


def _vocabulary() -> tuple[str, ...]:
    notes = [_note_name(letter, octave, acc) for octave in range(-2, 4)
             for letter in range(7) for acc in ACCIDENTALS]
    return (*SPECIAL, *(f"M:{m}" for m in METERS), *(f"K:C{mode}" for mode in MODES), *BARS,
            *OTHER, *notes, *(_duration_token(d) for d in DURATIONS if d != 1))


VOCAB = _vocabulary()
INDEX = {token: i for i, token in enumerate(VOCAB)}


class FolkTuneError(ValueError):
    """A tune folk-rnn's symbols cannot hold; the message says why."""


def key_signature(tonic_pc: int, tonic_letter: int, mode: str) -> tuple[int, ...]:
    """The accidental (-2..2) the key gives each letter C..B: the major scale of the mode's
    relative major, spelled from its own letter."""
    degree = MODES[mode]
    letter = (tonic_letter - degree) % 7
    pc = (tonic_pc - sum(MAJOR_STEPS[:degree])) % 12
    out = [0] * 7
    for step in range(7):
        out[letter] = (pc - NATURAL[letter] + 6) % 12 - 6
        pc = (pc + MAJOR_STEPS[step]) % 12
        letter = (letter + 1) % 7
    return tuple(out)


def parse_key(text: str) -> tuple[int, int, str]:
    """A K: field ("D", "Ador", "F#m", "Bb mix") -> (tonic pitch class, tonic letter, mode).
    ValueError for another mode, an explicit accidental list or no tonic."""
    m = re.fullmatch(r"\s*([A-Ga-g])([#b]?)\s*([A-Za-z]*)\s*", text.split("%")[0])
    if not m:
        raise FolkTuneError(f"key {text.strip()!r} is not a tonic and a mode")
    letter = LETTERS.index(m.group(1).upper())
    pc = (NATURAL[letter] + {"#": 1, "b": -1, "": 0}[m.group(2)]) % 12
    mode = MODE_NAMES.get(m.group(3).lower())
    if mode is None:
        raise FolkTuneError(f"mode {m.group(3)!r}: folk-rnn's tokens hold major, minor, "
                            "Dorian and Mixolydian")
    return pc, letter, mode


_FIELD = re.compile(r"^([A-Za-z]):(.*)$")
_SYMBOL = re.compile(r"""
    (?P<skip>"[^"]*"|![^!\s|]*!|\+[^+\s]*\+|\{[^}]*\}|%.*)
  | (?P<inline>\[[A-Za-z]:[^\]]*\])
  | (?P<ending>\[[12])
  | (?P<bar>(?::\|\|:|:\|\||\|\|:|:\|\]|\|\]|\|\||:\|:|::|:\||\|:|\[\||\|)[12]?)
  | (?P<chord>\[)
  | (?P<note>(?:\^\^|\^|__|_|=)?[A-Ga-g][,']*)
  | (?P<rest>[zx])
  | (?P<duration>\d*/+\d*|\d+)
  | (?P<broken>[<>]+)
  | (?P<tuplet>\(\d(?::\d*)*)
  | (?P<drop>[\s()\-~.`\\HLMOPSTuvkUJRy*!\]$])
""", re.VERBOSE)
BAR_NAMES = {":|:": "::", ":||:": "::", ":|]": ":|", ":||": ":|", "||:": "|:", "[|": "||"}


def _fraction(text: str) -> Fraction:
    """An ABC duration: "3" 3, "/" 1/2, "//" 1/4, "/3" 1/3, "3/2" 3/2."""
    m = re.fullmatch(r"(\d*)(/*)(\d*)", text.strip())
    if not m or (m.group(3) and int(m.group(3)) == 0):
        raise FolkTuneError(f"{text.strip()!r} is not a note length")
    num, slashes, den = m.groups()
    n = int(num) if num else 1
    if not slashes:
        return Fraction(n)
    return Fraction(n, int(den) if den else 2 ** len(slashes))


def _fields_and_body(text: str) -> tuple[dict[str, str], list[str]]:
    """The header fields up to K: (a tune's own over the file header's) and the body lines."""
    fields: dict[str, str] = {}
    body: list[str] = []
    for line in text.splitlines():
        m = _FIELD.match(line.strip())
        if "K" not in fields:
            if m:
                fields[m.group(1)] = m.group(2).split("%")[0].strip()
        elif m:
            if m.group(1) in "KMLV":
                raise FolkTuneError(f"the tune changes its {m.group(1)}: field inside it"
                                    if m.group(1) != "V" else "more than one voice")
        else:
            body.append(line)
    if "K" not in fields:
        raise FolkTuneError("no K: line")
    return fields, body


def _transposition(pc: int, letter: int) -> tuple[int, int]:
    """(semitones, letters) that move a tonic to C, the nearer way, both the same way."""
    letters = (-letter + 3) % 7 - 3
    up = (-pc) % 12
    semitones = up if letters > 0 else up - 12 if letters < 0 else (up if up <= 6 else up - 12)
    return semitones, letters


def tune_tokens(text: str) -> list[str]:
    """One ABC tune's text -> folk-rnn tokens (see the module), transposed to C."""
    fields, body = _fields_and_body(text)
    meter = fields.get("M") or "4/4"
    if meter not in METERS:
        raise FolkTuneError(f"meter {meter!r} is not in folk-rnn's vocabulary")
    if fields.get("L"):
        unit = _fraction(fields["L"])
    else:  # the standard's default: 1/16 below a meter of 3/4, else 1/8
        value = Fraction(1) if meter in ("C", "C|") else Fraction(meter)
        unit = Fraction(1, 16) if value < Fraction(3, 4) else Fraction(1, 8)
    scale = unit / Fraction(1, 8)  # durations are written in eighths
    pc, letter, mode = parse_key(fields["K"])
    shift_pc, shift_letter = _transposition(pc, letter)
    source_sig, target_sig = key_signature(pc, letter, mode), key_signature(0, 0, mode)
    out = ["<s>", f"M:{meter}", f"K:C{mode}"]
    heard: dict[tuple[int, int], int] = {}  # this bar's accidentals, as read and as written
    written: dict[tuple[int, int], int] = {}
    pending = False  # a note or rest whose duration may follow

    def length(d: Fraction) -> None:
        if d not in DURATIONS and d != 1:
            raise FolkTuneError(f"a duration of {d} eighths is not in folk-rnn's vocabulary")
        if d != 1:
            out.append(_duration_token(d))

    for line in body:
        at = 0
        while at < len(line):
            m = _SYMBOL.match(line, at)
            if not m:
                raise FolkTuneError(f"unreadable symbol {line[at]!r}")
            at = m.end()
            kind, value = m.lastgroup, m.group()
            if kind in ("skip", "drop"):
                continue
            if pending and kind != "duration":
                length(scale)  # a bare note lasts one unit
            pending = False
            if kind == "inline":
                if value[1] in "KMLV":
                    raise FolkTuneError(f"the tune changes its {value[1]}: field inside it")
            elif kind == "chord":
                raise FolkTuneError("chords: folk-rnn's tokens hold one note at a time")
            elif kind == "bar":
                bar, ending = (value[:-1], value[-1]) if value[-1] in "12" else (value, "")
                out.append(BAR_NAMES.get(bar, bar))
                if ending:
                    out.append("[" + ending)
                heard.clear()
                written.clear()
            elif kind == "ending":
                out.append(value)
            elif kind in ("note", "rest"):
                out.append("z" if kind == "rest" else _respell(
                    value, source_sig, target_sig, shift_pc, shift_letter, heard, written))
                pending = True
            elif kind == "duration":
                if out[-1] in SPECIAL or not re.fullmatch(r"z|[=^_]*[A-Ga-g][,']*", out[-1]):
                    raise FolkTuneError(f"a duration {value!r} after no note")
                length(_fraction(value) * scale)
            elif kind == "broken":
                out.append(value[0])
            elif kind == "tuplet":
                out.append(value[:2])
    if pending:
        length(scale)
    out.append("</s>")
    return out


def _respell(note: str, source_sig, target_sig, shift_pc: int, shift_letter: int,
             heard: dict, written: dict) -> str:
    """A note read in the tune's key, moved by the transposition, spelled in the new key with
    the accidental it needs where the key signature (or this bar) would say otherwise."""
    m = re.fullmatch(r"(\^\^|\^|__|_|=)?([A-Ga-g])([,']*)", note)
    acc, name, marks = m.group(1) or "", m.group(2), m.group(3)
    letter = LETTERS.index(name.upper())
    octave = (1 if name.islower() else 0) + marks.count("'") - marks.count(",")
    if acc:
        heard[(letter, octave)] = ACCIDENTALS[acc]
    alter = heard.get((letter, octave), source_sig[letter])
    pitch = 12 * octave + NATURAL[letter] + alter + shift_pc
    new = letter + shift_letter
    new_letter, new_octave = new % 7, octave + new // 7
    need = pitch - 12 * new_octave - NATURAL[new_letter]
    if need not in (-2, -1, 0, 1, 2):
        raise FolkTuneError(f"note {note} cannot be spelled in C")
    spelled = ""
    if written.get((new_letter, new_octave), target_sig[new_letter]) != need:
        spelled = {0: "=", 1: "^", 2: "^^", -1: "_", -2: "__"}[need]
        written[(new_letter, new_octave)] = need
    if not -2 <= new_octave <= 3:
        raise FolkTuneError(f"note {note} is outside the vocabulary's octaves")
    return _note_name(new_letter, new_octave, spelled)


def tokens_text(tokens: list[str]) -> str:
    """Tokens back to one ABC tune (X:1, the meter, L:1/8, the key, then the body)."""
    body = [t for t in tokens if t not in SPECIAL]
    meter = next((t[2:] for t in body if t.startswith("M:")), "4/4")
    key = next((t[2:] for t in body if t.startswith("K:")), "Cmaj")
    music = []
    for t in body:
        if t.startswith(("M:", "K:")):
            continue
        glued = bool(re.fullmatch(r"\d*/?\d*", t)) or t.startswith("[")
        if music and not glued:
            music.append(" ")
        music.append(t)
    return f"X:1\nM:{meter}\nL:1/8\nK:{key}\n{''.join(music)}\n"


class FolkScheme(TokenScheme):
    """ABC tunes as folk-rnn's tokens, each transposed to C."""

    name = "folk"
    suffixes = (ABC_SUFFIX,)
    unit = "tokens"
    end = INDEX["</s>"]
    # A tune starts after the one before it ended, as a training window read round a tune
    # sees it (from <s> alone, 16% of 200 sampled tunes named no meter; after </s> <s>, 2%).
    opening = (INDEX["</s>"], INDEX["<s>"])
    output_suffix = ".abc"
    writes_midi = True  # a tune's MIDI beside it (`to_midi`), for audition

    @property
    def input_classes(self) -> int:
        return len(VOCAB)

    def encode(self, piece: Piece, name: str) -> np.ndarray:
        tune = piece.source
        try:
            tokens = tune_tokens(tune.text if isinstance(tune, Tune) else bytes(tune).decode())
        except FolkTuneError as err:
            raise MidiError(name, f"ABC tune not used: {err}") from err
        unknown = [t for t in tokens if t not in INDEX]
        if unknown:
            raise MidiError(name, f"ABC tune not used: {unknown[0]!r} is not in folk-rnn's "
                                  "vocabulary")
        return np.array([INDEX[t] for t in tokens], np.int64)

    def read_primer(self, text: str) -> np.ndarray:
        """Tokens written out, space-separated ("M:6/8 K:Cdor |: G"), after the tune's start."""
        words = text.split()
        unknown = [w for w in words if w not in INDEX]
        if unknown:
            raise ValueError(f"{unknown[0]!r} is not a folk-rnn token (they are ABC symbols "
                             f"written apart: 'M:6/8 K:Cmaj |: G 2 A')")
        return np.array([*self.opening, *(INDEX[w] for w in words)], np.int64)

    def decode(self, tokens: np.ndarray) -> str:
        """Tokens back to an ABC tune's text (up to the first </s> after the first token)."""
        words = [VOCAB[int(t)] for t in tokens]
        if "</s>" in words[1:]:
            words = words[:words.index("</s>", 1)]
        return tokens_text(words)

    def to_midi(self, text: str, name: str) -> bytes:
        """An ABC tune (`decode`'s) rendered to MIDI by symusic's abc2midi."""
        return tune_to_midi(Tune("X:1", "", text), name)

    def summary(self, tokens: np.ndarray) -> dict[str, float]:
        words = [VOCAB[int(t)] for t in tokens]
        return {"notes": sum(bool(re.fullmatch(r"[=^_]*[A-Ga-g][,']*", w)) for w in words),
                "bars": sum(w in BARS for w in words)}

    def refusal(self, tokens: np.ndarray, limits: Limits) -> str | None:
        notes = self.summary(tokens)["notes"]
        return "empty: fewer than 4 notes" if notes < 4 else None

    def describe(self, token: int) -> str:
        return VOCAB[int(token)]

    def to_dict(self) -> dict:
        return {"name": self.name}

    @classmethod
    def from_dict(cls, d: dict) -> FolkScheme:
        return cls()


# --- is it a tune? (the checks folk-rnn's authors made of its output) -------------------------

METER_EIGHTHS = {"C": Fraction(8), "C|": Fraction(8)}
SECTION_ENDS = ("||", "|]", "|:", ":|", "::", "[1", "[2")
TUPLETS = {"(2": Fraction(3, 2), "(3": Fraction(2, 3), "(4": Fraction(3, 4)}
_PITCH = re.compile(r"([=^_]*)([A-Ga-g])[,']*")


def meter_eighths(meter: str) -> Fraction:
    """A bar of ``meter`` in eighth notes (6/8: 6, 4/4: 8, C|: 8)."""
    return METER_EIGHTHS.get(meter) or Fraction(meter) * 8


def bars(words: list[str]) -> list[tuple[Fraction, bool]]:
    """Each bar's length in eighths, and whether it is inner: neither the first nor the last of
    a section (between repeats, endings and double bars), where a pickup or its complement may
    leave it short."""
    out: list[list] = []
    length, scale, left, first = Fraction(0), Fraction(1), 0, True
    for i, w in enumerate(words):
        if w in BARS:
            if length:
                out.append([length, not first])
            first = (first and not length) or w in SECTION_ENDS  # "|" after ":|" closes nothing
            if w in SECTION_ENDS and out:
                out[-1][1] = False  # the bar before a section's end is its last
            length = Fraction(0)
        elif w in TUPLETS:
            scale, left = TUPLETS[w], int(w[1])
        elif w == "z" or _PITCH.fullmatch(w):
            nxt = words[i + 1] if i + 1 < len(words) else ""
            d = _fraction(nxt) if re.fullmatch(r"\d*/?\d+|\d+/?", nxt) else Fraction(1)
            length += d * (scale if left else 1)
            left = max(0, left - 1)
    if length:
        out.append([length, False])
    if out:
        out[-1][1] = False
    return [(x, inner) for x, inner in out]


def tune_checks(tokens: np.ndarray) -> dict[str, bool]:
    """Whether a tune's tokens hold a meter and a key, notes whose inner bars all add up to the
    meter, and a last note on the tonic (C, the key every tune is transposed to)."""
    words = [VOCAB[int(t)] for t in tokens]
    if "</s>" in words[1:]:
        words = words[:words.index("</s>", 1)]
    meter = next((w[2:] for w in words if w.startswith("M:")), None)
    notes = [m for w in words if (m := _PITCH.fullmatch(w))]
    inner = [length for length, is_inner in bars(words) if is_inner]
    return {"meter_and_key": meter is not None and any(w.startswith("K:") for w in words),
            "bars_add_up": bool(meter) and bool(inner) and all(
                length == meter_eighths(meter) for length in inner),
            "ends_on_tonic": bool(notes) and notes[-1].group(2) in "Cc"
            and notes[-1].group(1) in ("", "=")}
