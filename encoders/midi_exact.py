"""A lean MIDI reader with pretty_midi's exact semantics, for the files where symusic differs.

pretty_midi (through mido) builds an object per message; this walks the bytes once, keeps only
what the encoder needs (notes, CC64, program changes, tempo on track 0) and pairs notes as
pretty_midi does: a NOTE_OFF closes every open note of its pitch and channel that did not start
on the same tick; notes go to the instrument (program at the NOTE_OFF, channel, track), created
in the order their first note closes; control changes and pitch bends seen before an instrument
exists make a straggler per (channel, track), whose pedal list every instrument later made there
shares. About 4x pretty_midi's
speed; `tests/encoders/test_midi_exact.py` checks it against pretty_midi table for table.
"""

from __future__ import annotations

import numpy as np

from neuralband.encoders.errors import MidiError, plain_reason
from neuralband.encoders.note_table import MAX_TICK, SUSTAIN_CC, NoteTable, tick_to_seconds_fn

# Data bytes after a channel status byte, by its high nibble (0x80..0xE0).
_DATA_LEN = {0x8: 2, 0x9: 2, 0xA: 2, 0xB: 2, 0xC: 1, 0xD: 1, 0xE: 2}
# System common/real-time messages (0xF1..0xFE) and their data bytes, as mido reads them.
_SYSTEM_LEN = {0xF1: 1, 0xF2: 2, 0xF3: 1, 0xF6: 0, 0xF8: 0, 0xFA: 0, 0xFB: 0, 0xFC: 0, 0xFE: 0}


class _Instrument:
    __slots__ = ("program", "is_drum", "notes", "controls")

    def __init__(self, program: int, channel: int, controls: list) -> None:
        self.program = program
        self.is_drum = channel == 9
        self.notes: list[tuple[int, int, int, int]] = []  # (start_tick, end_tick, pitch, vel)
        self.controls = controls  # [(tick, value)] of CC64; may be shared, as in pretty_midi


def read_exact(data: bytes, name: str) -> NoteTable:
    """Parse MIDI bytes into a `NoteTable` equal to pretty_midi's; MidiError if malformed."""
    try:
        tpq, tracks = _chunks(data)
        return _pair(tpq, [_events(data, start, end) for start, end in tracks])
    except MidiError:
        raise
    except (IndexError, ValueError, KeyError) as err:
        raise MidiError(name, plain_reason(err)) from err


def _chunks(data: bytes) -> tuple[int, list[tuple[int, int]]]:
    if data[:4] != b"MThd":
        raise ValueError("no MThd header")
    header_len = int.from_bytes(data[4:8], "big")
    n_tracks = int.from_bytes(data[10:12], "big")
    tpq = int.from_bytes(data[12:14], "big")
    if tpq & 0x8000 or tpq == 0:
        raise ValueError(f"unsupported time division {tpq:#06x}")
    pos = 8 + header_len
    tracks = []
    while len(tracks) < n_tracks and pos + 8 <= len(data):
        kind, length = data[pos:pos + 4], int.from_bytes(data[pos + 4:pos + 8], "big")
        pos += 8
        if pos + length > len(data):
            raise ValueError(f"chunk of {length} bytes runs past the end of the file")
        if kind == b"MTrk":
            tracks.append((pos, pos + length))
        pos += length
    if len(tracks) < n_tracks:
        raise ValueError(f"header promises {n_tracks} tracks, file holds {len(tracks)}")
    return tpq, tracks


def _events(data: bytes, pos: int, end: int) -> list[tuple[int, int, int, int]]:
    """One track's (tick, kind, a, b): kind is the status byte, or 0x51 for a tempo (a = mspq)."""
    out: list[tuple[int, int, int, int]] = []
    tick = 0
    running = None
    while pos < end:
        delta, pos = _varint(data, pos)
        tick += delta
        status = data[pos]
        if status < 0x80:
            if running is None:
                raise ValueError("running status without a previous status byte")
            status = running
        else:
            pos += 1
            if status != 0xFF:
                running = status
        if status == 0xFF:
            kind = data[pos]
            length, pos = _varint(data, pos + 1)
            if kind == 0x51 and length == 3:
                out.append((tick, 0x51, int.from_bytes(data[pos:pos + 3], "big"), 0))
            else:
                out.append((tick, 0xFF, 0, 0))  # counts for the file's last tick
            pos += length
        elif status in (0xF0, 0xF7):
            length, pos = _varint(data, pos)
            pos += length
            out.append((tick, 0xF0, 0, 0))
        elif status >= 0xF0:
            pos += _SYSTEM_LEN[status]
            out.append((tick, status, 0, 0))
        else:
            n = _DATA_LEN[status >> 4]
            a = data[pos]
            b = data[pos + 1] if n == 2 else 0
            if a > 127 or b > 127:
                raise ValueError("data byte must be in range 0..127")
            pos += n
            out.append((tick, status, a, b))
    if pos > end:
        raise ValueError("last event runs past the end of its track")
    return out


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = 0
    while True:
        byte = data[pos]
        pos += 1
        value = (value << 7) | (byte & 0x7F)
        if byte < 0x80:
            return value, pos


def _pair(tpq: int, tracks: list[list[tuple[int, int, int, int]]]) -> NoteTable:
    """pretty_midi's `_load_instruments`, on the events kept."""
    last_tick = max((ev[-1][0] for ev in tracks if ev), default=0) + 1
    if last_tick > MAX_TICK:
        raise ValueError(f"MIDI file has a largest tick of {last_tick}, it is likely corrupt")
    tempos = [(t, a) for t, kind, a, _ in (tracks[0] if tracks else ()) if kind == 0x51]
    instruments: dict[tuple[int, int, int], _Instrument] = {}
    stragglers: dict[tuple[int, int], _Instrument] = {}

    def instrument(program: int, channel: int, track: int, create: bool) -> _Instrument:
        key = (program, channel, track)
        if key in instruments:
            return instruments[key]
        held = stragglers.get((channel, track))
        if not create and held is not None:
            return held
        inst = _Instrument(program, channel, held.controls if held is not None else [])
        if create:
            instruments[key] = inst
        else:
            stragglers[(channel, track)] = inst
        return inst

    for t, events in enumerate(tracks):
        program = [0] * 16
        open_notes: dict[tuple[int, int], list[tuple[int, int]]] = {}
        for tick, status, a, b in events:
            kind, channel = status & 0xF0, status & 0x0F
            if status >= 0xF0:
                continue
            if kind == 0xC0:
                program[channel] = a
            elif kind == 0x90 and b > 0:
                open_notes.setdefault((channel, a), []).append((tick, b))
            elif kind == 0x80 or kind == 0x90:
                waiting = open_notes.get((channel, a))
                if waiting is None:
                    continue
                closing = [(s, v) for s, v in waiting if s != tick]
                staying = [(s, v) for s, v in waiting if s == tick]
                for start, velocity in closing:
                    instrument(program[channel], channel, t, True).notes.append(
                        (start, tick, a, velocity))
                if closing and staying:
                    open_notes[(channel, a)] = staying
                else:
                    del open_notes[(channel, a)]
            elif kind == 0xB0 or kind == 0xE0:
                # Every controller and pitch bend finds its instrument or makes a straggler, as
                # in pretty_midi; a straggler made by (say) a volume change shares its list with
                # the instruments made there later, so a pedal sent under a program with no
                # instrument of its own lands in theirs.
                inst = instrument(program[channel], channel, t, False)
                if kind == 0xB0 and a == SUSTAIN_CC:
                    inst.controls.append((tick, b))

    to_seconds = tick_to_seconds_fn(tpq, [tk for tk, _ in tempos], [m for _, m in tempos])
    notes = [(*n, g, inst.is_drum) for g, inst in enumerate(instruments.values())
             for n in inst.notes]
    pedals = [(*c, g) for g, inst in enumerate(instruments.values()) for c in inst.controls]
    n_arr = np.array(notes, dtype=np.int64).reshape(-1, 6)
    p_arr = np.array(pedals, dtype=np.int64).reshape(-1, 3)
    return NoteTable(
        to_seconds(n_arr[:, 0]), to_seconds(n_arr[:, 1]), n_arr[:, 2], n_arr[:, 3],
        n_arr[:, 4], n_arr[:, 5].astype(bool),
        to_seconds(p_arr[:, 0]), p_arr[:, 1], p_arr[:, 2],
    )
