"""Voice-packed events: every note event says who plays it, so one softmax chooses who plays what.

The Neural iPad Band trick (Martin et al. 2017) packed each band member's state into one class;
here each Performance event is packed with its voice by `Packer`. Voice 0 is the lead (the part a
musician plays live, or a melody to accompany), voices 1.. are the band. The layout, for V voices
and the default settings (E = 128 + 128 + 32 = 288 voiced events)::

    token = Packer([V, E]).pack((voice, event))    0 .. V*E - 1
        event 0..127    NOTE_ON(pitch)
        event 128..255  NOTE_OFF(pitch)
        event 256..287  VELOCITY(bin 1..32)          each voice keeps its own velocity
    token = V*E + n - 1                             TIME_SHIFT(n steps of 10 ms), n = 1..100

so V=2 (lead, band) has 676 classes and V=4 (a chorale: soprano leads, alto, tenor, bass) 1,252.
TIME_SHIFT carries no voice: time is one clock for the whole band. A voiced shift would split the
probability of "wait" across voices, and live, a wait that the player cuts short belongs to
nobody. Within one 10 ms step the lead's events come first, then band voice 1, 2, ...: at play
time the band hears the lead's note before it answers in the same step.

Each voice's own event stream is exactly its Performance encoding (`encoders.performance`):
`merge` interleaves the voices' streams on one clock and `split` takes them apart again, so
``split(merge(streams)) == streams`` for any encoded streams.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

import numpy as np

from neuralband.encoders.errors import MidiError
from neuralband.encoders.midi_io import (
    MidiSource,
    NoteTable,
    parse_pretty_midi,
    source_name,
    table_from_pretty_midi,
)
from neuralband.encoders.packing import Packer
from neuralband.encoders.performance import (
    DEFAULT_SETTINGS,
    EncoderSettings,
    Event,
    decode_notes,
    describe,
    encode_notes,
    shifts_before,
)

LEAD_RULES = "top, track:NAME or split:PITCH"


def voice_names(voices: int) -> tuple[str, ...]:
    """"lead", then "band" (one band voice) or "band 1", "band 2", ..."""
    if voices == 2:
        return ("lead", "band")
    return ("lead", *(f"band {i}" for i in range(1, voices)))


@dataclass(frozen=True)
class VoiceSettings:
    """How multi-part MIDI becomes voice-packed tokens: the number of voices and which part
    leads. Stored with datasets and models next to the encoder settings."""

    voices: int = 2
    lead: str = "top"
    settings: EncoderSettings = DEFAULT_SETTINGS

    def __post_init__(self) -> None:
        if not isinstance(self.voices, int) or not 2 <= self.voices <= 16:
            raise ValueError(f"voices must be 2..16 (the lead and 1..15 band voices), "
                             f"got {self.voices!r}")
        parse_lead(self.lead)

    @property
    def events(self) -> int:
        """Voiced events per voice: NOTE_ON, NOTE_OFF and VELOCITY."""
        return 256 + self.settings.velocity_bins

    @property
    def packer(self) -> Packer:
        return Packer([self.voices, self.events], names=["voice", "event"])

    @property
    def time_shift(self) -> int:
        """Token of TIME_SHIFT(1); TIME_SHIFT(n) is ``time_shift + n - 1``."""
        return self.voices * self.events

    @property
    def vocab_size(self) -> int:
        return self.time_shift + self.settings.max_shift_steps

    @property
    def names(self) -> tuple[str, ...]:
        return voice_names(self.voices)

    def to_dict(self) -> dict:
        return {"voices": self.voices, "lead": self.lead}

    @classmethod
    def from_dict(cls, d: dict, settings: EncoderSettings = DEFAULT_SETTINGS) -> VoiceSettings:
        unknown = set(d) - {"voices", "lead"}
        if unknown:
            raise ValueError(f"unknown voice settings: {sorted(unknown)}")
        return cls(int(d["voices"]), str(d.get("lead", "top")), settings)

    # --- tokens <-> (voice, Performance token) ------------------------------------------------

    def pack(self, voice: np.ndarray | int, base: np.ndarray | int) -> np.ndarray | int:
        """(voice, Performance token) -> token; a TIME_SHIFT's voice is ignored."""
        s = self.settings
        base = np.asarray(base, np.int64)
        voice = np.asarray(voice, np.int64)
        kind = s.kinds[base]
        is_shift = kind == Event.TIME_SHIFT
        # A voice's events: NOTE_ON, NOTE_OFF, then VELOCITY (the shifts are shared).
        event = np.where(kind == Event.VELOCITY, base - s.max_shift_steps, base)
        voiced = self.packer.pack((np.where(is_shift, 0, voice), np.where(is_shift, 0, event)))
        out = np.where(is_shift, self.time_shift + base - s.time_shift, voiced)
        return int(out) if out.ndim == 0 else out

    def unpack(self, tokens: np.ndarray | int) -> tuple[np.ndarray, np.ndarray]:
        """Tokens -> (voice, Performance token) arrays; a TIME_SHIFT has voice -1."""
        s = self.settings
        tok = np.asarray(tokens, np.int64)
        if tok.size and (tok.min() < 0 or tok.max() >= self.vocab_size):
            bad = tok[(tok < 0) | (tok >= self.vocab_size)].ravel()[0]
            raise ValueError(f"token {bad} is outside the vocabulary 0..{self.vocab_size - 1}")
        is_shift = tok >= self.time_shift
        voice, event = self.packer.unpack(np.where(is_shift, 0, tok))
        base = np.where(event >= 256, event + s.max_shift_steps, event)
        base = np.where(is_shift, s.time_shift + tok - self.time_shift, base)
        return np.where(is_shift, -1, voice), base

    def describe(self, token: int) -> str:
        """A token in words: "lead NOTE_ON 60", "band 2 VELOCITY 17", "TIME_SHIFT 250 ms"."""
        voice, base = self.unpack(int(token))
        words = describe(int(base), self.settings)
        return words if voice < 0 else f"{self.names[int(voice)]} {words}"


# --- interleaving per-voice streams on one clock --------------------------------------------------

def event_steps(base: np.ndarray, settings: EncoderSettings) -> tuple[np.ndarray, np.ndarray]:
    """Performance tokens -> (is TIME_SHIFT, the step each token happens at)."""
    is_shift = settings.kinds[base] == Event.TIME_SHIFT
    return is_shift, np.cumsum(np.where(is_shift, settings.values[base], 0))


def _with_shifts(steps: np.ndarray, tokens: np.ndarray, time_shift: int,
                 max_shift: int) -> np.ndarray:
    """Events at non-decreasing steps -> one stream with TIME_SHIFTs before each step change,
    by the Performance encoder's shift rule (`performance.shift_run`)."""
    out, at = shifts_before(np.diff(steps, prepend=0), 1, time_shift, max_shift)
    out[at] = tokens
    return out


def merge(streams: list[np.ndarray], voices: VoiceSettings) -> np.ndarray:
    """Per-voice Performance token streams (voice 0 the lead) -> one voice-packed stream."""
    if len(streams) != voices.voices:
        raise ValueError(f"expected {voices.voices} streams (one per voice), got {len(streams)}")
    s = voices.settings
    steps, owners, order, events = [], [], [], []
    for v, stream in enumerate(streams):
        base = np.asarray(stream, np.int64)
        is_shift, at = event_steps(base, s)
        keep = ~is_shift
        steps.append(at[keep])
        owners.append(np.full(int(keep.sum()), v, np.int64))
        order.append(np.arange(int(keep.sum())))
        events.append(base[keep])
    step, voice, pos, base = (np.concatenate(x) for x in (steps, owners, order, events))
    ev = np.lexsort((pos, voice, step))
    tokens = voices.pack(voice[ev], base[ev])
    return _with_shifts(step[ev], np.asarray(tokens, np.int64), voices.time_shift,
                        s.max_shift_steps)


def split(tokens: np.ndarray, voices: VoiceSettings) -> list[np.ndarray]:
    """A voice-packed stream -> one Performance token stream per voice, on the same clock."""
    s = voices.settings
    voice, base = voices.unpack(np.asarray(tokens, np.int64).ravel())
    _, at = event_steps(base, s)
    out = []
    for v in range(voices.voices):
        mine = voice == v
        out.append(_with_shifts(at[mine], base[mine], s.time_shift, s.max_shift_steps))
    return out


def band_enters(tokens: np.ndarray, voices: VoiceSettings, step: int) -> np.ndarray:
    """The stream as if the band came in at ``step`` (steps from the stream's start): the band's
    events before it are left out, with the NOTE_OFFs of notes it started before it, and each band
    voice's velocity then in effect is set again as it comes in. The lead is unchanged. Training
    on such windows teaches the band to start from the lead alone, as it does live."""
    s = voices.settings
    streams = split(tokens, voices)
    for v in range(1, voices.voices):
        base = streams[v]
        is_shift, at = event_steps(base, s)
        events, steps = base[~is_shift], at[~is_shift]
        kind = s.kinds[events]
        later = steps >= step
        keep: list[int] = []
        # Each pitch's sounding notes, oldest first (a NOTE_OFF ends the oldest, as decoding
        # pairs them): whether each began after the entry.
        sounding: list[list[bool]] = [[] for _ in range(128)]
        for i, (k, value, after) in enumerate(zip(kind.tolist(), s.values[events].tolist(),
                                                  later.tolist(), strict=True)):
            if k == Event.NOTE_ON:
                sounding[value].append(after)
            elif k == Event.NOTE_OFF:
                began_after = sounding[value].pop(0) if sounding[value] else False
                if after and began_after:
                    keep.append(i)
                continue
            if after:
                keep.append(i)
        # The velocity in effect, unless the band sets one before its first note anyway (a kept
        # NOTE_OFF always follows its kept NOTE_ON, so keep[0] is never one).
        before = np.flatnonzero((kind == Event.VELOCITY) & ~later)
        if len(before) and not (keep and kind[keep[0]] == Event.VELOCITY):
            keep.insert(0, int(before[-1]))
        moved = np.maximum(steps[keep], step)
        streams[v] = _with_shifts(moved, events[keep], s.time_shift, s.max_shift_steps)
    return merge(streams, voices)


# --- multi-part MIDI -> parts --------------------------------------------------------------------

@dataclass(frozen=True)
class LeadRule:
    """Which notes lead: the highest melodic track, a named track, or a piano split."""

    kind: Literal["top", "track", "split"]
    track: str = ""
    split_pitch: int = 60


def parse_lead(text: str) -> LeadRule:
    """"top", "track:NAME" or "split:PITCH" (the right hand: notes at or above PITCH)."""
    if text == "top":
        return LeadRule("top")
    if text.startswith("track:") and text[6:].strip():
        return LeadRule("track", track=text[6:].strip())
    m = re.fullmatch(r"split:(\d{1,3})", text)
    if m and 0 <= int(m.group(1)) <= 127:
        return LeadRule("split", split_pitch=int(m.group(1)))
    raise ValueError(f"lead must be {LEAD_RULES}, got {text!r}")


def split_parts(pm: pretty_midi.PrettyMIDI, voices: VoiceSettings,  # noqa: F821
                name: str = "<PrettyMIDI>") -> list[NoteTable]:
    """One PrettyMIDI -> a NoteTable per voice: the lead by the scheme's rule, then the band.

    Band tracks are ordered by mean pitch, highest first, one per band voice; tracks beyond the
    last band voice join it. With ``split:PITCH`` every melodic note at or above PITCH leads and
    the rest is the band (the pedal acts on both hands). Drums are band unless the encoder
    settings drop them. Raises MidiError when the rule finds no lead.
    """
    rule = parse_lead(voices.lead)
    table = table_from_pretty_midi(pm)
    melodic = [g for g, inst in enumerate(pm.instruments) if inst.notes and not inst.is_drum]
    if not melodic:
        raise MidiError(name, "no melodic track to lead")
    parts = [np.zeros(len(table), bool) for _ in range(voices.voices)]
    if rule.kind == "split":
        lead = (table.pitch >= rule.split_pitch) & ~table.is_drum
        parts[0] = lead
        parts[1] = ~lead
    else:
        mean = {g: float(np.mean([n.pitch for n in pm.instruments[g].notes])) for g in melodic}
        if rule.kind == "top":
            lead_group = max(melodic, key=lambda g: (mean[g], -g))
        else:
            lead_group = _named_track(pm, melodic, rule.track, name)
        parts[0] = table.group == lead_group
        others = [g for g in range(len(pm.instruments))
                  if g != lead_group and pm.instruments[g].notes]
        others.sort(key=lambda g: (-mean.get(g, -1.0), g))  # drums (no mean) last
        for i, g in enumerate(others):
            parts[1 + min(i, voices.voices - 2)] |= table.group == g
    return [table.select(keep) for keep in parts]


def encode_voices(source: MidiSource, voices: VoiceSettings = VoiceSettings()) -> np.ndarray:
    """A multi-part MIDI file (path, bytes or PrettyMIDI) -> voice-packed tokens.

    Parsed with pretty_midi (track names are needed to choose the lead); each voice is encoded
    exactly as `encoders.performance.encode` encodes a file, then the voices are merged.
    """

    name = source_name(source)
    parts = split_parts(read_pretty_midi(source, name), voices, name)
    return merge([encode_notes(part, voices.settings) for part in parts], voices)


def read_pretty_midi(source: MidiSource, name: str) -> pretty_midi.PrettyMIDI:  # noqa: F821
    """A path, bytes or PrettyMIDI -> PrettyMIDI; MidiError naming the file if unreadable."""
    import pretty_midi

    if isinstance(source, pretty_midi.PrettyMIDI):
        return source
    data = source if isinstance(source, (bytes, bytearray)) else _read(source, name)
    return parse_pretty_midi(bytes(data), name)


def _read(path: object, name: str) -> bytes:
    from pathlib import Path

    try:
        return Path(path).read_bytes()  # type: ignore[arg-type]
    except OSError as err:
        raise MidiError(name, err.strerror or str(err)) from err


def decode_voices(tokens: np.ndarray, voices: VoiceSettings,
                  programs: list[int] | None = None) -> pretty_midi.PrettyMIDI:  # noqa: F821
    """Voice-packed tokens -> a PrettyMIDI with one instrument per voice, named for it."""
    import pretty_midi

    pm = pretty_midi.PrettyMIDI()
    seconds_per_step = 1.0 / voices.settings.steps_per_second
    for v, stream in enumerate(split(tokens, voices)):
        program = programs[v] if programs else 0
        inst = pretty_midi.Instrument(program=program, name=voices.names[v])
        for start, end, pitch, velocity in decode_notes(stream, voices.settings):
            inst.notes.append(pretty_midi.Note(velocity=int(velocity), pitch=int(pitch),
                                               start=start * seconds_per_step,
                                               end=end * seconds_per_step))
        pm.instruments.append(inst)
    return pm


def melody_part(source: MidiSource, voices: VoiceSettings, track: str | None = None) -> NoteTable:
    """A melody to accompany: the track named ``track`` (exactly, else the first whose name
    holds it); else the whole file when it has one melodic track; else the track the scheme's
    lead rule names, where the file has it (a chorale's soprano, POP909's MELODY); else the
    most melody-like track: the highest of those that mostly play one note at a time (a folk
    tune's melody above its chords). A ``split:PITCH`` rule splits the file as in training."""
    name = source_name(source)
    pm = read_pretty_midi(source, name)
    melodic = [g for g, inst in enumerate(pm.instruments) if inst.notes and not inst.is_drum]
    if track is not None:
        return _track_table(pm, _named_track(pm, melodic, track, name))
    rule = parse_lead(voices.lead)
    if rule.kind == "split":
        return split_parts(pm, voices, name)[0]
    if len(melodic) <= 1:
        return table_from_pretty_midi(pm)
    if rule.kind == "track":
        try:
            return _track_table(pm, _named_track(pm, melodic, rule.track, name))
        except MidiError:
            pass  # not this file's names: find the melody by how it plays

    def melody_like(g: int) -> tuple[bool, float]:
        notes = sorted((n.start, n.end) for n in pm.instruments[g].notes)
        ends = np.maximum.accumulate([e for _, e in notes])
        alone = np.mean([s >= ends[i - 1] - 0.02 for i, (s, _) in enumerate(notes) if i] or [1])
        return alone >= 0.8, float(np.mean([n.pitch for n in pm.instruments[g].notes]))

    return _track_table(pm, max(melodic, key=melody_like))


def _named_track(pm: pretty_midi.PrettyMIDI, melodic: list[int], track: str,  # noqa: F821
                 name: str) -> int:
    """The melodic track called ``track`` (exactly, else the first whose name holds it)."""
    wanted = track.strip().casefold()
    names = {g: pm.instruments[g].name.strip().casefold() for g in melodic}
    found = [g for g in melodic if names[g] == wanted] or [g for g in melodic
                                                           if wanted and wanted in names[g]]
    if not found:
        tracks = ", ".join(repr(pm.instruments[g].name) for g in melodic) or "none"
        raise MidiError(name, f"no track named {track!r} (tracks with notes: {tracks})")
    return found[0]


def _track_table(pm: pretty_midi.PrettyMIDI, group: int) -> NoteTable:  # noqa: F821
    table = table_from_pretty_midi(pm)
    return table.select(table.group == group)


def melody_tokens(source: MidiSource, voices: VoiceSettings, track: str | None = None
                  ) -> np.ndarray:
    """`melody_part` as Performance tokens."""
    return encode_notes(melody_part(source, voices, track), voices.settings)


def voice_polyphony(tokens: np.ndarray, voices: VoiceSettings) -> np.ndarray:
    """The most notes each voice holds at once in a piece (a chorale voice: 1)."""
    out = np.zeros(voices.voices, np.int64)
    for v, stream in enumerate(split(tokens, voices)):
        notes = np.array(decode_notes(stream, voices.settings), np.int64).reshape(-1, 4)
        # A sweep: +1 at each start, -1 at each end, ends first where they meet.
        times = np.concatenate([notes[:, 0], notes[:, 1]])
        delta = np.concatenate([np.ones(len(notes), np.int64), -np.ones(len(notes), np.int64)])
        order = np.lexsort((delta, times))
        out[v] = int(np.cumsum(delta[order]).max(initial=0))
    return out
