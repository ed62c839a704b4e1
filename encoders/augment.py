"""Augmenting Performance tokens as training draws them: pitch moved by k semitones, time
stretched by a factor, each a pure function of the tokens (`encoders.schemes` applies them
under the voices of voice-packed tokens)."""

from __future__ import annotations

import numpy as np

from neuralband.encoders.performance import EncoderSettings, Event, shifts_before


def transpose_tokens(tokens: np.ndarray, k: int, settings: EncoderSettings) -> np.ndarray | None:
    """Shift every NOTE_ON and NOTE_OFF pitch by k semitones; None if a pitch would leave 0..127.

    Everything else (TIME_SHIFT, VELOCITY) is returned unchanged; the input is not modified.
    """
    tokens = np.asarray(tokens)
    if k == 0:
        return tokens.copy()
    wide = tokens.astype(np.int64)  # any integer dtype in, no unsigned wrap-around
    is_pitch = settings.kinds[wide] <= Event.NOTE_OFF  # NOTE_ON and NOTE_OFF
    pitch = settings.values[wide[is_pitch]]
    if pitch.size and (pitch.min() + k < 0 or pitch.max() + k > 127):
        return None
    out = tokens.copy()
    out[is_pitch] = wide[is_pitch] + k
    return out


def stretch_tokens(tokens: np.ndarray, factor: float, settings: EncoderSettings) -> np.ndarray:
    """Scale time by `factor`: each run of consecutive TIME_SHIFTs ends where its end's time
    times `factor` rounds to (at least 1 step after the last), re-emitted as the encoder does:
    full max shifts, then the remainder. Rounding the ends, not each run's length, keeps every
    event within half a step of its scaled time, so the piece's beats scale with it (rounded
    run by run, the error walked 30 ms off the beat in a few hundred events).

    Other tokens are kept in order. Rounding is half up, as the encoder quantises times.
    """
    tokens = np.asarray(tokens)
    if tokens.size == 0:
        return tokens.copy()
    wide = tokens.astype(np.int64)
    first_shift, max_shift = settings.time_shift, settings.max_shift_steps
    is_shift = settings.kinds[wide] == Event.TIME_SHIFT
    steps = np.where(is_shift, settings.values[wide], 0)

    # Groups: each non-shift token alone, each maximal run of shifts together.
    run_start = is_shift & ~np.concatenate([[False], is_shift[:-1]])
    starts = np.flatnonzero(~is_shift | run_start)
    group_shift = is_shift[starts]
    total = np.add.reduceat(steps, starts)
    ends = np.floor(np.cumsum(np.where(group_shift, total, 0)) * factor + 0.5).astype(np.int64)
    scaled = np.diff(ends, prepend=0)
    if np.any(group_shift & (scaled < 1)):  # a one-step run squeezed away: keep it, go on later
        scaled = np.where(group_shift, scaled, 0)
        for i in np.flatnonzero(group_shift):
            if scaled[i] < 1:
                scaled[i] = 1
                nxt = np.flatnonzero(group_shift[i + 1:])
                if len(nxt):
                    scaled[i + 1 + nxt[0]] -= 1

    # A shift group: its scaled steps by the encoder's shift rule; any other token: itself.
    out, at = shifts_before(np.where(group_shift, scaled, 0), (~group_shift).astype(np.int64),
                            first_shift, max_shift)
    out[at[~group_shift]] = wide[starts[~group_shift]]
    return out.astype(tokens.dtype)
