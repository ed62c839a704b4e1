"""Playing a MIDI file to a port in real time, for auditioning on a real synth.

Messages go out on the monotonic clock through `clock.sleep_until` (mido's `MidiFile.play`
sleeps between messages and drifts: mido#160). Every note passes through
`notes.OutputNotes`, so Ctrl-C, SIGTERM or an error ends every sounding note.
"""

from __future__ import annotations

import os
import signal
import time

import mido

from neuralband.live.clock import Stop, sleep_until
from neuralband.live.notes_out import OutputNotes
from neuralband.live.ports import MidiOutput


def file_messages(path: str | os.PathLike) -> list[tuple[float, list[int]]]:
    """(seconds, raw bytes) of every channel message in the file, in playing order."""
    from neuralband.encoders.errors import MidiError

    try:
        mid = mido.MidiFile(str(path))
    except (OSError, ValueError, EOFError, KeyError, IndexError) as err:
        raise MidiError(str(path), f"not a readable MIDI file ({err})") from None
    out, now = [], 0.0
    for msg in mid:  # merged tracks, delta times in seconds (tempo map applied)
        now += msg.time
        if not msg.is_meta and msg.type != "sysex":
            out.append((now, msg.bytes()))
    return out


def play_file(path: str | os.PathLike, port: str | None, api: str | None = None,
              virtual: bool = False) -> tuple[int, float]:
    """Play a MIDI file to a port until it ends or Ctrl-C; (messages sent, seconds played)."""
    messages = file_messages(path)
    out = MidiOutput(name=port, api=api, virtual=virtual, client="neuralband-audition")
    notes = OutputNotes(out.send, max_note_s=float("inf"))
    stop = Stop()
    previous = signal.signal(signal.SIGTERM, lambda *_: setattr(stop, "up", True))
    sent, t0 = 0, time.perf_counter()
    try:
        for at, data in messages:
            if not sleep_until(t0 + at, stop):
                break
            kind, channel = data[0] & 0xF0, data[0] & 0x0F
            if kind == 0x90 and data[2] > 0:
                notes.note_on(channel, data[1], data[2], time.perf_counter())
            elif kind in (0x80, 0x90):
                notes.note_off(channel, data[1])
            else:
                out.send(data)
            sent += 1
    except KeyboardInterrupt:
        pass
    finally:
        notes.all_off(again_after_s=0.01)
        out.close()
        signal.signal(signal.SIGTERM, previous)
    return sent, time.perf_counter() - t0
