"""The table every MIDI parser fills (`NoteTable`: notes and sustain-pedal changes as flat arrays)
and pretty_midi's tick-to-seconds arithmetic they share: below `encoders.midi_io` (which picks a
parser) and `encoders.midi_exact` (one of them), so neither reaches up into the other."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

SUSTAIN_CC = 64
# pretty_midi refuses files whose last tick is beyond this ("likely corrupt"); so do we.
MAX_TICK = 10_000_000


@dataclass(frozen=True)
class NoteTable:
    """Notes and sustain-pedal changes as parallel numpy arrays, times in seconds.

    ``group`` numbers the instrument (track x channel x program) a note or pedal belongs to;
    the sustain pedal only acts within its group. Notes keep the parser's order, which
    note_seq's stable sorts use to break ties.
    """

    start_s: np.ndarray  # float64
    end_s: np.ndarray  # float64
    pitch: np.ndarray  # int64, 0..127
    velocity: np.ndarray  # int64, 1..127
    group: np.ndarray  # int64
    is_drum: np.ndarray  # bool
    pedal_time_s: np.ndarray  # float64
    pedal_value: np.ndarray  # int64, 0..127 (>= 64 is down)
    pedal_group: np.ndarray  # int64

    def __len__(self) -> int:
        return len(self.pitch)

    def select(self, keep: np.ndarray) -> NoteTable:
        """The same table with only the notes where ``keep`` is true (pedals untouched)."""
        return NoteTable(
            self.start_s[keep], self.end_s[keep], self.pitch[keep], self.velocity[keep],
            self.group[keep], self.is_drum[keep],
            self.pedal_time_s, self.pedal_value, self.pedal_group,
        )

    def with_end(self, end_s: np.ndarray) -> NoteTable:
        """The same table with new note end times."""
        return NoteTable(
            self.start_s, end_s, self.pitch, self.velocity, self.group, self.is_drum,
            self.pedal_time_s, self.pedal_value, self.pedal_group,
        )


def tick_to_seconds_fn(tpq: int, tempo_ticks: list[int],
                       tempo_mspq: list[int]) -> Callable[[np.ndarray], np.ndarray]:
    """Tick -> seconds exactly as pretty_midi computes it (same float operations, same order).

    pretty_midi keeps (tick, seconds-per-tick) segments: 120 qpm until the first tempo event, a
    tempo at tick 0 replaces the default, and a tempo equal to the current one is ignored.
    """
    scale_ticks = [0]
    scales = [60.0 / (120.0 * tpq)]
    for tick, mspq in sorted(zip(tempo_ticks, tempo_mspq, strict=True), key=lambda tm: tm[0]):
        scale = 60.0 / ((6e7 / mspq) * tpq)
        if tick == 0:
            scale_ticks, scales = [0], [scale]
        elif scale != scales[-1]:
            scale_ticks.append(tick)
            scales.append(scale)
    seg_tick = np.asarray(scale_ticks, np.int64)
    seg_scale = np.asarray(scales, np.float64)
    seg_start_s = np.zeros(len(scales), np.float64)
    for k in range(1, len(scales)):
        ticks_in_segment = float(seg_tick[k] - seg_tick[k - 1])
        seg_start_s[k] = seg_start_s[k - 1] + seg_scale[k - 1] * ticks_in_segment

    def to_seconds(ticks: np.ndarray) -> np.ndarray:
        k = np.searchsorted(seg_tick, ticks, side="right") - 1
        return seg_start_s[k] + seg_scale[k] * (ticks - seg_tick[k]).astype(np.float64)

    return to_seconds
