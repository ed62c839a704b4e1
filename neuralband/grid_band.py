"""The grid model's band, one grid step at a time: the lead's state in, the band's next states out.

A grid model (`encoders.grid`) reads (the lead at t+1, the band at t) as one class and scores
every combination of the band's states at t+1 as one class: one softmax decides what the whole
band does next, so its voices move together (the Neural iPad Band's trick). `GridBand` keeps the
band's current states, masks the combinations that cannot follow them (a voice that rests cannot
hold) and samples; `accompany_grid` runs it over a whole melody offline.
`neuralband.live.grid_engine` drives it live, on a clock.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from neuralband.encoders.grid import (
    HOLD,
    REST,
    GridSettings,
    grid_states,
    grid_to_pretty_midi,
    output_packer,
    step_input,
    unpack_band,
)
from neuralband.encoders.midi_io import MidiSource, NoteTable
from neuralband.encoders.performance import prepare_notes
from neuralband.loaded import LoadedModel, loaded
from neuralband.runtime import Stepper
from neuralband.sampling import Rules, Sampler


class GridBand:
    """A grid model's band voices: their states now, and `step` to the next grid step."""

    def __init__(self, stepper: Stepper, rules: Rules | None = None, seed: int | None = None):
        if stepper.info is None or stepper.info.scheme.plays != "clock":
            raise ValueError("not a grid model (its model file names no grid)")
        grid = stepper.info.scheme.grid_settings
        if stepper.batch != 1:
            raise ValueError("a grid band runs one stream")
        self.stepper, self.grid = stepper, grid
        self.rules = rules or Rules()
        n_out = grid.output_classes
        fields = output_packer(grid).unpack(np.arange(n_out))
        self._holds = np.stack(fields, axis=1) == HOLD  # (classes, band voices)
        self._masks: dict[tuple[bool, ...], np.ndarray] = {}
        self.sampler = Sampler(self.rules, seed, n_out)
        self.band: tuple[int, ...] = (REST,) * (grid.voices - 1)

    def reset(self) -> None:
        """Back to silence, before any step."""
        self.stepper.reset()
        self.band = (REST,) * (self.grid.voices - 1)

    def allowed(self) -> np.ndarray:
        """The band classes that may follow the current states: a resting voice cannot HOLD.
        One mask per pattern of resting voices, made once."""
        resting = tuple(s == REST for s in self.band)
        mask = self._masks.get(resting)
        if mask is None:
            mask = ~(self._holds & np.array(resting)).any(axis=1)
            self._masks[resting] = mask
        return mask

    def step(self, lead: int) -> tuple[int, ...]:
        """The lead's state at the new step in, the band's states at that step out."""
        self.stepper.feed(step_input(lead, self.band))
        code = self.sampler.sample(self.stepper.logits()[0], self.allowed())
        self.band = unpack_band(code, self.grid.voices)
        return self.band


def accompany_grid(band: GridBand, lead: Sequence[int] | np.ndarray) -> np.ndarray:
    """A melody's states (one per grid step) -> (T, voices) states: the lead, then the band the
    model plays along, from silence (the band rests before the first step, as in training)."""
    band.reset()
    lead = np.asarray(lead, np.int64).reshape(-1)
    out = np.zeros((len(lead), band.grid.voices), np.uint8)
    for t, state in enumerate(lead.tolist()):
        out[t, 0] = state
        out[t, 1:] = band.step(state)
    return out


def melody_states(melody: NoteTable, grid: GridSettings) -> np.ndarray:
    """A melody's prepared notes -> its state at every grid step, as the lead's column of
    `encoders.grid.grid_states` (the last note's end sets the length)."""
    return grid_states([melody], grid)[:, 0]


def accompany_file(model: LoadedModel | str | os.PathLike, melody: MidiSource, variations: int = 1,
                   rules: Rules | None = None, seed: int | None = None,
                   lead_track: str | None = None) -> list[pretty_midi.PrettyMIDI]:  # noqa: F821
    """Accompany a MIDI melody offline with a grid model: one PrettyMIDI per variation, the
    melody's own notes as the "lead" track and one track per band voice (`grid_to_pretty_midi`).

    From a file of several tracks ``lead_track`` names the melody, or the scheme's lead rule
    finds it (`TokenScheme.lead_notes`)."""
    import pretty_midi

    model = loaded(model)
    stepper = model.stepper()
    if model.scheme.plays != "clock":
        raise ValueError(f"{model.name} is not a grid model")
    grid, encoder = model.scheme.grid_settings, model.info.encoder
    part = prepare_notes(model.info.scheme.lead_notes(melody, lead_track), encoder)
    lead = melody_states(part, grid)
    seeds = np.random.SeedSequence(seed).spawn(variations)
    out = []
    for s in seeds:
        band = GridBand(stepper, rules, int(s.generate_state(1)[0]))
        pm = grid_to_pretty_midi(accompany_grid(band, lead), grid)
        pm.instruments[0].notes = [
            pretty_midi.Note(velocity=int(v), pitch=int(p), start=float(a), end=float(b))
            for a, b, p, v in zip(part.start_s, part.end_s, part.pitch, part.velocity,
                                  strict=True)]
        out.append(pm)
    return out

