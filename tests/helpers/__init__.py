"""Building small MIDI pieces for tests, as PrettyMIDI objects or as file bytes."""

from __future__ import annotations

import io
import json
from pathlib import Path

import mido
import pretty_midi


def pretty(notes, pedals=(), program: int = 0, is_drum: bool = False) -> pretty_midi.PrettyMIDI:
    """notes: (pitch, velocity, start_s, end_s); pedals: (time_s, value). One instrument."""
    pm = pretty_midi.PrettyMIDI()
    inst = pretty_midi.Instrument(program=program, is_drum=is_drum)
    for pitch, velocity, start, end in notes:
        inst.notes.append(pretty_midi.Note(velocity=velocity, pitch=pitch, start=start, end=end))
    for time, value in pedals:
        inst.control_changes.append(pretty_midi.ControlChange(64, value, time))
    pm.instruments.append(inst)
    return pm


def midi_bytes(tracks, ticks_per_beat: int = 480) -> bytes:
    """tracks: lists of (tick, mido.Message or MetaMessage) in any order; a type-1 file."""
    mf = mido.MidiFile(ticks_per_beat=ticks_per_beat)
    for events in tracks:
        track = mido.MidiTrack()
        last = 0
        for tick, msg in sorted(events, key=lambda e: e[0]):
            track.append(msg.copy(time=tick - last))
            last = tick
        mf.tracks.append(track)
    buf = io.BytesIO()
    mf.save(file=buf)
    return buf.getvalue()


def on(note: int, velocity: int = 64, channel: int = 0) -> mido.Message:
    return mido.Message("note_on", note=note, velocity=velocity, channel=channel)


def off(note: int, channel: int = 0) -> mido.Message:
    return mido.Message("note_off", note=note, channel=channel)


def pedal(value: int, channel: int = 0) -> mido.Message:
    return mido.Message("control_change", control=64, value=value, channel=channel)


def track_name(name: str) -> mido.MetaMessage:
    return mido.MetaMessage("track_name", name=name)


def tempo(bpm: float) -> mido.MetaMessage:
    return mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(bpm))


def every_nth_valid(dataset: Path, n: int = 6) -> Path:
    """Move every n-th piece of a dataset's manifest to the valid split (a small real dataset
    encoded all-train then has a validation split to score); returns the dataset."""
    manifest = dataset / "manifest.jsonl"
    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    for row in rows[::n]:
        row["split"] = "valid"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return dataset
