"""One interface for every encoding: a `TokenScheme` says what a file's pieces become, how many
classes a model reads and predicts, what a piece's summary holds, how its tokens are augmented,
which pieces it refuses and why, and how it is stored (ONE dict, in a dataset's settings.json).

Datasets and training windows talk to a scheme, not to each encoding: Performance events
(`EventScheme`), voice-packed events (`VoicedScheme`), the ensemble grid (`GridScheme`), bytes
of text (`encoders.text.TextScheme`) and ABC folk tunes as folk-rnn's tokens
(`encoders.folk.FolkScheme`). A new scheme is one class with a ``name``, listed in
`SCHEMES`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from neuralband.encoders.abc import Tune, split_tunes, tune_to_midi
from neuralband.encoders.augment import stretch_tokens, transpose_tokens
from neuralband.encoders.beats import Beats, beats_of_midi
from neuralband.encoders.controls import ControlSettings, onsets, token_controls
from neuralband.encoders.errors import MidiError
from neuralband.encoders.grid import (
    NEW,
    STATES,
    GridSettings,
    codes_states,
    codes_summary,
    encode_grid,
    transpose_codes,
)
from neuralband.encoders.performance import DEFAULT_SETTINGS, EncoderSettings, Event, decode, encode
from neuralband.encoders.performance import describe as describe_event
from neuralband.encoders.voices import (
    VoiceSettings,
    decode_voices,
    encode_voices,
    melody_part,
    split,
)

MIDI_SUFFIXES = (".mid", ".midi", ".kar")
ABC_SUFFIX = ".abc"


@dataclass(frozen=True)
class Limits:
    """Pieces beyond these are refused as oversized (listed in errors.jsonl), not encoded."""

    max_notes: int = 500_000
    max_seconds: float = 4 * 3600.0
    max_bytes: int = 64 * 1024 * 1024


@dataclass(frozen=True)
class Piece:
    """One piece of a file: ``ref`` names it within the file (an ABC tune's X: line, a text's
    first line number; None for a whole MIDI file), ``content`` is what is hashed, ``source``
    what the scheme encodes (MIDI bytes, an ABC `Tune`, text bytes)."""

    ref: str | None
    content: bytes
    source: bytes | Tune


class TokenScheme(ABC):
    """What every encoding answers. Subclasses set ``name`` and implement the abstract parts;
    the defaults suit a scheme whose tokens are its model's input and output classes."""

    name: ClassVar[str]
    suffixes: ClassVar[tuple[str, ...]] = (*MIDI_SUFFIXES, ABC_SUFFIX)
    unit: ClassVar[str] = "events"  # what one token is, in a dataset's summary
    # For a scheme sampled without a grammar of notes (`neuralband.generate.sample_tokens`):
    # the tokens a piece starts after, the one that ends it (None: none), and the file suffix
    # its pieces are written with.
    opening: ClassVar[tuple[int, ...]] = ()
    end: ClassVar[int | None] = None
    output_suffix: ClassVar[str] = ".mid"
    # What it can do, asked of the scheme rather than decided from its kind elsewhere: how its
    # model plays live ("events": the event engine, one event at a time; "clock": the grid
    # engine, a step per grid line; None: it writes text or tunes and does not play).
    plays: ClassVar[str | None] = None
    writes_midi: ClassVar[bool] = False  # a generated piece becomes MIDI (decode_midi/to_midi)
    # Its events carry their voice (the lead's or a band voice's): a band under a lead, event
    # by event, whose voices the data says how to play (polyphony, arrangement density).
    voiced: ClassVar[bool] = False
    source_unit: ClassVar[str] = "notes"  # what encoding a source file counts as it reads
    # The event encoding underneath, where there is one (the key and density controls, note
    # lengths and the live engine read it); None for text.
    settings: EncoderSettings | None = None
    # Whether its stream holds a lead part (a melody) beside the band's: `generate --lead` and a
    # live duet can give it the lead and let it play the rest.
    accompanies: ClassVar[bool] = False

    @property
    @abstractmethod
    def input_classes(self) -> int:
        """How many classes a model of this scheme reads (its embedding's rows)."""

    @property
    def output_classes(self) -> int:
        """How many classes it predicts (its head's outputs): the input classes by default."""
        return self.input_classes

    @property
    def fields(self) -> tuple[int, ...]:
        """The radixes of an input class's fields, each embedded apart; () for one embedding."""
        return ()

    @property
    def dtype(self) -> type:
        """The smallest unsigned type a dataset's shards hold these tokens in."""
        return np.uint16 if self.input_classes <= 1 << 16 else np.uint32

    def target(self, tokens: np.ndarray) -> np.ndarray:
        """The classes a model predicts for these inputs (the same, unless the scheme's inputs
        carry more than its outputs)."""
        return tokens

    def pieces(self, path: str, data: bytes) -> list[Piece]:
        """A file's pieces: a MIDI file is one, an ABC collection one per tune. Raises ValueError
        (its words are the reason) when the file holds none."""
        if not path.lower().endswith(ABC_SUFFIX):
            return [Piece(None, data, data)]
        tunes = split_tunes(data.decode("utf-8", errors="replace"))
        if not tunes:
            raise ValueError("no ABC tune (no X: line)")
        return [Piece(t.ref, t.text.encode(), t) for t in tunes]

    def encode(self, piece: Piece, name: str) -> np.ndarray:
        """A piece's tokens (int64). Raises `encoders.errors.MidiError` for a damaged file."""
        source = piece.source
        midi = tune_to_midi(source, name) if isinstance(source, Tune) else source
        try:
            return self.encode_midi(midi)
        except MidiError as err:  # read from bytes: named by the file, not "<N bytes of MIDI>"
            raise MidiError(name, err.reason) from err

    def encode_midi(self, midi: bytes) -> np.ndarray:
        raise NotImplementedError(f"the {self.name} scheme reads no MIDI")

    def beats(self, piece: Piece, path: str) -> Beats | None:
        """The piece's beats (`encoders.beats.find_beats`) where its tokens carry time in
        seconds, for the beat control; None for a scheme whose tokens do not."""
        return None

    @abstractmethod
    def summary(self, tokens: np.ndarray) -> dict[str, float]:
        """What a dataset's manifest says of a piece: ``duration_s`` and ``notes`` for music."""

    @abstractmethod
    def refusal(self, tokens: np.ndarray, limits: Limits) -> str | None:
        """Why a piece is not used (empty, nothing to learn, oversized), or None."""

    def transpose(self, tokens: np.ndarray, k: int) -> np.ndarray | None:
        """Tokens moved by k semitones, or None where they cannot be (a pitch off the keyboard).
        A scheme without pitches returns them as they are."""
        return tokens

    def lead_notes(self, source, track: str | None = None):
        """The melody to accompany in a MIDI file (a `NoteTable`): the track named ``track``,
        else as the scheme's lead rule finds it (`encoders.voices.melody_part`)."""
        raise ValueError(f"a {self.name} model accompanies no melody")

    @property
    def stretchable(self) -> bool:
        """Whether `stretch` changes anything (time is in the tokens)."""
        return False

    def stretch(self, tokens: np.ndarray, factor: float) -> np.ndarray:
        """Tokens with time scaled by ``factor``."""
        return tokens

    @abstractmethod
    def describe(self, token: int) -> str:
        """A token in words."""

    def read_primer(self, text: str) -> np.ndarray:
        """``generate --primer TEXT`` as tokens, for a scheme that reads its primer as text."""
        raise ValueError(f"a {self.name} model continues a file: give --primer a file")

    @abstractmethod
    def to_dict(self) -> dict:
        """The scheme as stored: ``{"name": ..., ...}``; `scheme_from_dict` reads it back."""

    @classmethod
    def from_options(cls, options: dict) -> TokenScheme:
        """The scheme ``neuralband encode``'s options make (``--piece-bytes``, ``--voices``,
        ...: the parsed arguments as a dict); ValueError in words for options it takes none of.
        A scheme of no parts refuses --voices and --grid."""
        if options.get("voices") or options.get("grid"):
            raise ValueError(f"--scheme {cls.name} takes no --grid or --voices: it has no parts")
        return cls()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TokenScheme) and self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash(repr(self.to_dict()))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.to_dict()})"


def _oversized(notes: int, seconds: float, limits: Limits) -> str | None:
    if notes > limits.max_notes:
        return f"oversized: {notes} notes > {limits.max_notes} (--max-notes)"
    if seconds > limits.max_seconds:
        return f"oversized: {seconds:.0f} s > {limits.max_seconds:.0f} s (--max-seconds)"
    return None


def duration_s(tokens: np.ndarray, settings: EncoderSettings = DEFAULT_SETTINGS) -> float:
    """Length of Performance tokens in seconds: the sum of their TIME_SHIFTs."""
    tokens = np.asarray(tokens, np.int64)
    steps = int(settings.values[tokens][settings.kinds[tokens] == Event.TIME_SHIFT].sum())
    return steps / settings.steps_per_second


class EventScheme(TokenScheme):
    """Performance-RNN events (`encoders.performance`): 388 classes by default."""

    name = "events"
    plays = "events"
    writes_midi = True

    def __init__(self, settings: EncoderSettings = DEFAULT_SETTINGS) -> None:
        self.settings = settings

    @property
    def input_classes(self) -> int:
        return self.settings.vocab_size

    def encode_midi(self, midi: bytes) -> np.ndarray:
        return encode(midi, self.settings)

    def beats(self, piece: Piece, path: str) -> Beats | None:
        """Annotations beside a MIDI file, else its tempo map where it fits the notes (an ABC
        tune's always does), else the tracker over the notes; None where none is found."""
        source = piece.source
        midi = tune_to_midi(source, path) if isinstance(source, Tune) else source
        return beats_of_midi(midi, path if piece.ref is None else None)

    def base(self, tokens: np.ndarray) -> np.ndarray:
        """The Performance tokens underneath (voice-packed tokens without their voices)."""
        return np.asarray(tokens, np.int64)

    def summary(self, tokens: np.ndarray) -> dict[str, float]:
        base = self.base(tokens)
        return {"duration_s": round(duration_s(base, self.settings), 3),
                "notes": int((self.settings.kinds[base] == Event.NOTE_ON).sum())}

    def refusal(self, tokens: np.ndarray, limits: Limits) -> str | None:
        base = self.base(tokens)
        notes = int((self.settings.kinds[base] == Event.NOTE_ON).sum())
        if notes == 0:
            return "empty: no notes"
        return _oversized(notes, duration_s(base, self.settings), limits)

    def transpose(self, tokens: np.ndarray, k: int) -> np.ndarray | None:
        return transpose_tokens(tokens, k, self.settings)

    @property
    def stretchable(self) -> bool:
        return True

    def stretch(self, tokens: np.ndarray, factor: float) -> np.ndarray:
        return stretch_tokens(tokens, factor, self.settings)

    def describe(self, token: int) -> str:
        return describe_event(int(token), self.settings)

    def parts(self) -> tuple[np.ndarray, np.ndarray]:
        """Who plays each token of the vocabulary (-1: a TIME_SHIFT, which no voice owns; 0 the
        one stream of plain events) and the Performance event it is: what the sampler's grammar
        and the live engine read."""
        base = np.arange(self.input_classes, dtype=np.int64)
        return np.where(self.settings.kinds[base] == Event.TIME_SHIFT, -1, 0), base

    def seconds(self, tokens: np.ndarray) -> float:
        """How long the tokens last: the sum of their TIME_SHIFTs."""
        return duration_s(self.base(tokens), self.settings)

    def controls(self, tokens: np.ndarray, settings: ControlSettings,
                 complete: bool = True) -> np.ndarray:
        """The key, density (and beat) controls in force after each token, counted over every
        voice's notes (`encoders.controls.token_controls`)."""
        return token_controls(tokens, settings, self.settings, complete)

    def onsets(self, tokens: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every voice's NOTE_ONs: each token's step, the NOTE_ONs' indices, their pitches
        (`encoders.controls.onsets`)."""
        return onsets(tokens, self.settings)

    def streams(self, tokens: np.ndarray) -> list[np.ndarray]:
        """The tokens as one stream of Performance events per voice, on one clock (plain
        events are one voice's)."""
        return [np.asarray(tokens)]

    def read_primer(self, path: str) -> np.ndarray:
        """``generate --primer FILE``: a MIDI file as this scheme's tokens."""
        return encode(path, self.settings)

    def decode_midi(self, tokens: np.ndarray):
        """Tokens back to MIDI (a PrettyMIDI; voice-packed: one instrument per voice)."""
        return decode(tokens, self.settings)

    def to_dict(self) -> dict:
        return {"name": self.name, "encoder": self.settings.to_dict()}

    @classmethod
    def from_dict(cls, d: dict) -> EventScheme:
        return cls(EncoderSettings.from_dict(d["encoder"]))

    @classmethod
    def from_options(cls, options: dict) -> EventScheme:
        if options.get("voices") or options.get("grid"):
            raise ValueError("--voices and --grid make the voices and grid schemes")
        return cls(_settings(options))


class VoicedScheme(EventScheme):
    """Voice-packed events (`encoders.voices`): each note event carries its voice (the lead or
    a band voice), TIME_SHIFTs are shared. Augmenting moves each voice's events alike."""

    name = "voices"
    voiced = True
    accompanies = True

    def __init__(self, voices: VoiceSettings) -> None:
        super().__init__(voices.settings)
        self.voice_settings = voices  # how many voices, the lead's rule, the events' settings

    def controls(self, tokens: np.ndarray, settings: ControlSettings,
                 complete: bool = True) -> np.ndarray:
        return token_controls(tokens, settings, self.settings, complete, self.voice_settings)

    def onsets(self, tokens: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return onsets(tokens, self.settings, self.voice_settings)

    def lead_notes(self, source, track: str | None = None):
        return melody_part(source, self.voice_settings, track)

    @property
    def input_classes(self) -> int:
        return self.voice_settings.vocab_size

    def encode_midi(self, midi: bytes) -> np.ndarray:
        return encode_voices(midi, self.voice_settings)

    def base(self, tokens: np.ndarray) -> np.ndarray:
        return self.voice_settings.unpack(tokens)[1]

    def refusal(self, tokens: np.ndarray, limits: Limits) -> str | None:
        voice, base = self.voice_settings.unpack(tokens)
        if np.any(self.settings.kinds[base] == Event.NOTE_ON) and not np.any(
                (voice > 0) & (self.settings.kinds[base] == Event.NOTE_ON)):
            return "no band: every note is in the lead part"
        return super().refusal(tokens, limits)

    def _in_base(self, tokens: np.ndarray, change) -> np.ndarray | None:
        """A Performance-token change applied under the voices: each note or velocity event
        keeps its voice, TIME_SHIFTs are shared."""
        voice, base = self.voice_settings.unpack(tokens)
        out = change(base)
        if out is None:
            return None
        s = self.settings
        shift_in = s.kinds[base] == Event.TIME_SHIFT
        shift_out = s.kinds[out] == Event.TIME_SHIFT
        out_voice = np.full(len(out), -1, np.int64)
        out_voice[~shift_out] = voice[~shift_in]
        return np.asarray(self.voice_settings.pack(out_voice, out), np.int64)

    def transpose(self, tokens: np.ndarray, k: int) -> np.ndarray | None:
        return self._in_base(tokens, lambda base: EventScheme.transpose(self, base, k))

    def stretch(self, tokens: np.ndarray, factor: float) -> np.ndarray:
        return self._in_base(tokens, lambda base: EventScheme.stretch(self, base, factor))

    def describe(self, token: int) -> str:
        return self.voice_settings.describe(int(token))

    def parts(self) -> tuple[np.ndarray, np.ndarray]:
        return self.voice_settings.unpack(np.arange(self.input_classes))

    def streams(self, tokens: np.ndarray) -> list[np.ndarray]:
        return split(tokens, self.voice_settings)

    def read_primer(self, path: str) -> np.ndarray:
        return encode_voices(path, self.voice_settings)

    def decode_midi(self, tokens: np.ndarray):
        return decode_voices(tokens, self.voice_settings)

    def to_dict(self) -> dict:
        return {**super().to_dict(), "voices": self.voice_settings.to_dict()}

    @classmethod
    def from_dict(cls, d: dict) -> VoicedScheme:
        return cls(VoiceSettings.from_dict(d["voices"], EncoderSettings.from_dict(d["encoder"])))

    @classmethod
    def from_options(cls, options: dict) -> VoicedScheme:
        if not options.get("voices") or options.get("grid"):
            raise ValueError("--scheme voices needs --voices N (2: a lead and a band), no --grid")
        return cls(VoiceSettings(options["voices"], options.get("lead") or "top",
                               _settings(options)))


class GridScheme(TokenScheme):
    """The ensemble grid (`encoders.grid`): one class per step packs the lead's next state and
    the band's states; the model predicts the band's next states (the low fields)."""

    name = "grid"
    unit = "steps"
    plays = "clock"
    writes_midi = True

    accompanies = True

    def __init__(self, grid: GridSettings, settings: EncoderSettings = DEFAULT_SETTINGS) -> None:
        self.grid_settings, self.settings = grid, settings  # the grid's step, voices, lead rule

    def lead_notes(self, source, track: str | None = None):
        grid = self.grid_settings
        return melody_part(source, VoiceSettings(grid.voices, grid.lead, self.settings), track)

    @property
    def input_classes(self) -> int:
        return self.grid_settings.input_classes

    @property
    def output_classes(self) -> int:
        return self.grid_settings.output_classes

    @property
    def fields(self) -> tuple[int, ...]:
        return (STATES,) * self.grid_settings.voices

    def target(self, tokens: np.ndarray) -> np.ndarray:
        return tokens % self.grid_settings.output_classes

    def encode_midi(self, midi: bytes) -> np.ndarray:
        return encode_grid(midi, self.grid_settings, self.settings)

    def summary(self, tokens: np.ndarray) -> dict[str, float]:
        seconds, notes = codes_summary(tokens, self.grid_settings)
        return {"duration_s": round(seconds, 3), "notes": notes}

    def refusal(self, tokens: np.ndarray, limits: Limits) -> str | None:
        states = codes_states(tokens, self.grid_settings.voices)
        if not np.any(states[:, 1:] >= NEW):
            return "no band: every note is in the lead part" if np.any(states >= NEW) else \
                "empty: no notes"
        seconds, notes = codes_summary(tokens, self.grid_settings)
        return _oversized(notes, seconds, limits)

    def transpose(self, tokens: np.ndarray, k: int) -> np.ndarray | None:
        return transpose_codes(tokens, k, self.grid_settings.voices)  # pitch classes wrap: always

    def describe(self, token: int) -> str:
        from neuralband.encoders.grid import describe_state

        states = codes_states(np.array([int(token)]), self.grid_settings.voices)[0]
        return " | ".join(describe_state(int(s)) for s in states)

    def to_dict(self) -> dict:
        return {"name": self.name, "encoder": self.settings.to_dict(),
                "grid": self.grid_settings.to_dict()}

    @classmethod
    def from_dict(cls, d: dict) -> GridScheme:
        return cls(GridSettings.from_dict(d["grid"]), EncoderSettings.from_dict(d["encoder"]))

    @classmethod
    def from_options(cls, options: dict) -> GridScheme:
        """``--grid BPM[/STEPS_PER_BEAT]`` (sixteenths by default) with ``--voices N``."""
        text, voices = options.get("grid"), options.get("voices")
        if not text:
            raise ValueError("--scheme grid needs --grid BPM[/STEPS] and --voices N")
        bpm, _, per_beat = str(text).partition("/")
        try:
            bpm_value, steps = float(bpm), int(per_beat or 4)
        except ValueError:
            raise ValueError(f"--grid wants BPM or BPM/STEPS_PER_BEAT (120, 120/4), "
                             f"got {text!r}") from None
        if not voices:
            raise ValueError("--grid needs --voices N: the lead and N-1 band voices (4: SATB)")
        grid = GridSettings.from_tempo(bpm_value, steps, voices, options.get("lead") or "top")
        return cls(grid, _settings(options))


def _settings(options: dict) -> EncoderSettings:
    """The event encoder's settings from ``encode``'s --no-sustain and --drums."""
    return EncoderSettings(sustain=not options.get("no_sustain", False),
                           include_drums=bool(options.get("drums", False)))


def _schemes() -> dict[str, type[TokenScheme]]:
    from neuralband.encoders.folk import FolkScheme
    from neuralband.encoders.text import TextScheme

    return {s.name: s for s in (EventScheme, VoicedScheme, GridScheme, TextScheme, FolkScheme)}


def scheme_names() -> tuple[str, ...]:
    """The names `scheme_from_dict` knows (``neuralband encode --scheme``)."""
    return tuple(_schemes())


def scheme_from_options(name: str, options: dict) -> TokenScheme:
    """The scheme called ``name``, made from ``neuralband encode``'s options."""
    known = _schemes()
    if name not in known:
        raise ValueError(f"unknown token scheme {name!r} (known: {', '.join(known)})")
    return known[name].from_options(options)


def scheme_from_dict(d: dict) -> TokenScheme:
    """A stored scheme back (`TokenScheme.to_dict`). Raises ValueError in words for a dict that
    names no known scheme or lacks what its scheme needs."""
    if not isinstance(d, dict) or "name" not in d:
        raise ValueError(f"a token scheme is a dict with a name, got {d!r}")
    known = _schemes()
    if d["name"] not in known:
        raise ValueError(f"unknown token scheme {d['name']!r} (known: {', '.join(known)})")
    try:
        return known[d["name"]].from_dict(d)
    except (KeyError, TypeError) as e:
        raise ValueError(f"unreadable {d['name']} scheme {d!r}: {e}") from e


def scheme_from_parts(encoder: dict, voices: dict | None = None,
                      grid: dict | None = None) -> TokenScheme:
    """The scheme of a dataset or model stored before schemes (encoder settings beside an
    optional voices or grid entry)."""
    settings = EncoderSettings.from_dict(encoder)
    if grid:
        return GridScheme(GridSettings.from_dict(grid), settings)
    if voices:
        return VoicedScheme(VoiceSettings.from_dict(voices, settings))
    return EventScheme(settings)
