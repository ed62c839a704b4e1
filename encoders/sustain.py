"""Folding the sustain pedal into note lengths, as note_seq's `apply_sustain_control_changes`.

note_seq walks every event in time order, keeping a list of sounding notes. The outcome for one
note depends only on the pedal of its own instrument and on later onsets of its own pitch, so it
can be computed for all notes at once:

- a note released while the pedal is up ends where it was released;
- a note released while the pedal is down ends at the next pedal release (or, with none, at
  the last event of the piece);
- either way, an onset of the same pitch and instrument while the pedal is down cuts it short
  at that onset, if it comes before the end above; a note cut to zero length is dropped.

Ties follow note_seq's event order at equal times: pedal down, pedal up, note on, note off, and
within each kind the order of the notes. Drum notes are left alone.
"""

from __future__ import annotations

import numpy as np

from neuralband.encoders.midi_io import NoteTable

PEDAL_DOWN_MIN = 64


def apply_sustain(table: NoteTable) -> NoteTable:
    """Return the notes with the sustain pedal folded into their end times."""
    n = len(table)
    if n == 0 or len(table.pedal_time_s) == 0:
        return table
    melodic = ~table.is_drum
    # The last event note_seq sees: any non-drum note boundary or any pedal change.
    last_time = max(
        float(table.end_s[melodic].max(initial=-np.inf)),
        float(table.start_s[melodic].max(initial=-np.inf)),
        float(table.pedal_time_s.max()),
    )
    new_end = table.end_s.copy()
    keep = np.ones(n, bool)
    for g in np.unique(table.group[melodic]):
        pedals = table.pedal_group == g
        if not pedals.any():
            continue
        idx = np.flatnonzero(melodic & (table.group == g))
        _sustain_group(
            table.start_s[idx], table.end_s[idx], table.pitch[idx],
            table.pedal_time_s[pedals], table.pedal_value[pedals] >= PEDAL_DOWN_MIN,
            last_time, idx, new_end, keep,
        )
    out = table.with_end(new_end)
    return out if keep.all() else out.select(keep)


def _sustain_group(start: np.ndarray, end: np.ndarray, pitch: np.ndarray,
                   pedal_t: np.ndarray, pedal_down: np.ndarray, last_time: float,
                   idx: np.ndarray, new_end: np.ndarray, keep: np.ndarray) -> None:
    """Sustain for one instrument; writes into ``new_end`` and ``keep`` at positions ``idx``."""
    # Pedal events in note_seq's order: by time, downs before ups at one time, else file order.
    order = np.lexsort((~pedal_down, pedal_t))
    pedal_t, pedal_down = pedal_t[order], pedal_down[order]

    def down_at(t: np.ndarray) -> np.ndarray:
        """Pedal state just after every pedal event at or before time t."""
        k = np.searchsorted(pedal_t, t, side="right") - 1
        return np.where(k >= 0, pedal_down[np.maximum(k, 0)], False)

    held_at_release = down_at(end)
    up_times = np.append(pedal_t[~pedal_down], np.inf)  # inf: no release after this one
    next_up = up_times[np.searchsorted(up_times, end, side="right")]
    # Where each note would end without a same-pitch cut.
    natural_end = np.where(held_at_release, np.where(np.isfinite(next_up), next_up, last_time), end)

    # The first later onset of the same pitch that happens with the pedal down.
    m = len(start)
    by_pitch = np.lexsort((np.arange(m), start, pitch))
    cutter_pos = np.append(np.flatnonzero(down_at(start[by_pitch])), m)  # m: none left
    j = cutter_pos[np.searchsorted(cutter_pos, np.arange(m), side="right")]
    pitch_sorted = np.append(pitch[by_pitch], -1)
    start_sorted = np.append(start[by_pitch], np.inf)
    cut_at = np.empty(m)
    cut_at[by_pitch] = np.where(pitch_sorted[j] == pitch_sorted[:m], start_sorted[j], np.inf)

    # A cut counts if note_seq sees that onset before the note leaves its sounding list:
    # released with pedal up -> removed at its NOTE_OFF, which sorts after a NOTE_ON at that time;
    # released with pedal down -> removed at the pedal-up, which sorts before a NOTE_ON then.
    cut = np.where(held_at_release, cut_at < natural_end, cut_at <= end)
    final_end = np.where(cut, cut_at, natural_end)
    new_end[idx] = final_end
    keep[idx] = ~(cut & (cut_at == start))
