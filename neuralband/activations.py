"""The LSTM's cells against the music: Karpathy's picture of char-RNN cells, for MIDI.

`record` runs a model over a MIDI file (its own encoding, from a fresh state) and keeps every
cell's hidden state after every event; both the cells and the musical features are then read on
one clock (every `GRID_S`), so that a cell is compared with what was sounding when it had that
value. The features are those the model could track: notes sounding, time since the last onset,
pitch height, velocity (as the encoding hears them, sustain folded into note lengths), the
sustain pedal (where the file has one) and the position in the bar (where it has a time
signature). `Activations.findings` names the cells that follow each feature best (Pearson's r);
`draw` lays them under the piano roll.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from neuralband.loaded import LoadedModel, loaded

GRID_S = 0.05  # the clock cells and features are read on
GAP_CAP_S = 4.0  # "time since the last onset" stops growing here (a long rest is just long)
MIN_CELL_STD = 0.02  # a cell that moves less than this is not following anything
FEATURES = ("notes sounding", "time since the last onset", "pitch height", "velocity",
            "sustain pedal", "position in the bar")


@dataclass(frozen=True)
class Finding:
    layer: int
    cell: int
    feature: str
    r: float


@dataclass
class Activations:
    """Cells and features of one file on a common clock."""

    model: str
    path: Path
    times: np.ndarray  # (G,) seconds
    states: np.ndarray  # (G, layers * hidden): the hidden state at each time
    features: dict[str, np.ndarray]  # name -> (G,), only those the file has
    notes: list[tuple[float, float, int, int, int]]  # (start s, end s, pitch, velocity, voice)
    layers: int
    hidden: int

    def correlations(self) -> np.ndarray:
        """(cells, features) Pearson's r; 0 for a cell that hardly moves (a saturated cell's
        flickers would otherwise pass for a perfect match)."""
        x = self.states - self.states.mean(0)
        f = np.stack([self.features[k] for k in self.features], 1)
        f = f - f.mean(0)
        sx, sf = np.sqrt((x * x).mean(0)), np.sqrt((f * f).mean(0))
        with np.errstate(invalid="ignore", divide="ignore"):
            r = (x.T @ f) / len(x) / np.outer(sx, sf)
        r[sx < MIN_CELL_STD] = 0.0
        return np.nan_to_num(r)

    def findings(self, per_feature: int = 3) -> list[Finding]:
        """The cells that follow each feature best, strongest first."""
        if not self.features:
            return []
        r = self.correlations()
        out = []
        for j, name in enumerate(self.features):
            for i in np.argsort(-np.abs(r[:, j]))[:per_feature]:
                out.append(Finding(int(i // self.hidden), int(i % self.hidden), name,
                                   round(float(r[i, j]), 3)))
        return sorted(out, key=lambda f: -abs(f.r))

    def cell(self, layer: int, index: int) -> np.ndarray:
        return self.states[:, layer * self.hidden + index]


def record(model: LoadedModel | str | os.PathLike, midi_path: str | os.PathLike) -> Activations:
    """Run ``model`` over ``midi_path`` and read its cells and the music every `GRID_S`.
    A conditioned model hears the file's own key and density (what a musician would set)."""
    from neuralband.encoders.midi_io import read_notes
    from neuralband.encoders.performance import decode_notes
    from neuralband.score import encode_for
    from neuralband.voicing import from_info

    path = Path(midi_path)
    model = loaded(model)
    stepper = model.stepper()
    info = model.info
    if info.scheme.plays != "events":
        raise ValueError("--activations reads an event model's cells (pop, pop-duet, "
                         "chorale-folk, duet); a grid model steps on a clock, not on events")
    tokens = encode_for(path, info)
    if len(tokens) < 2:
        raise ValueError(f"{path.name} has too few notes to read a model's cells by")
    voicing = from_info(info)
    settings = voicing.settings
    sps = settings.steps_per_second
    controls = (info.scheme.controls(tokens, info.controls) if info.controls is not None
                else None)
    L, H = stepper.config.layers, stepper.config.hidden
    states = np.zeros((len(tokens), L * H), np.float32)
    for k, tok in enumerate(tokens.tolist()):
        if controls is not None:
            stepper.set_controls(controls[k])
        stepper.feed(tok)
        states[k] = stepper.h[:, 0, :].ravel()
    # The time after each event (the state holds from then until the next event).
    after = np.cumsum(voicing.shift_steps[tokens]) / sps
    # The notes as the model heard them: its own encoding decoded, per voice.
    streams = info.scheme.streams(tokens)
    notes = [(s / sps, e / sps, p, v, voice) for voice, stream in enumerate(streams)
             for s, e, p, v in decode_notes(stream, settings)]
    if not notes:
        raise ValueError(f"{path.name} has no notes to read a model's cells by")
    # From the first note to the last one's end: the silence before the music (where every
    # cell still settles from its fresh state) would otherwise pass for a feature.
    first, end = min(n[0] for n in notes), max(n[1] for n in notes)
    times = np.arange(first, end, GRID_S)
    idx = np.searchsorted(after, times, side="right") - 1
    grid_states = np.where(idx[:, None] >= 0, states[np.maximum(idx, 0)], 0.0)
    features = _features(times, notes, read_notes(path), path)
    return Activations(Path(model.name).name, path, times, grid_states.astype(np.float64),
                       features, notes, L, H)


def _features(times: np.ndarray, notes: list, table, path: Path) -> dict[str, np.ndarray]:
    starts = np.array([n[0] for n in notes])
    ends = np.array([n[1] for n in notes])
    pitches = np.array([n[2] for n in notes], np.float64)
    velocities = np.array([n[3] for n in notes], np.float64)
    # Sounding at t: started at or before t, not ended by t. Counts and pitch sums from sorted
    # starts and ends (no times x notes matrix: a long file has ~10^5 of each).
    order, by_end = np.argsort(starts, kind="stable"), np.argsort(ends, kind="stable")
    begun = np.searchsorted(starts[order], times, side="right")
    ended = np.searchsorted(ends[by_end], times, side="right")
    count = (begun - ended).astype(np.float64)
    pitch_sum = (np.concatenate([[0.0], np.cumsum(pitches[order])])[begun]
                 - np.concatenate([[0.0], np.cumsum(pitches[by_end])])[ended])
    last = np.searchsorted(starts[order], times, side="right") - 1  # the last onset so far
    since = np.where(last >= 0, times - starts[order][np.maximum(last, 0)], GAP_CAP_S)
    last_pitch = np.where(last >= 0, pitches[order][np.maximum(last, 0)], np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_pitch = pitch_sum / count
    height = np.where(count > 0, mean_pitch, last_pitch)
    height = np.where(np.isnan(height), np.nanmean(height) if np.isfinite(height).any()
                      else 60.0, height)
    velocity = np.where(last >= 0, velocities[order][np.maximum(last, 0)],
                        velocities.mean() if len(velocities) else 64.0)
    out = {"notes sounding": count, "time since the last onset": np.minimum(since, GAP_CAP_S),
           "pitch height": height, "velocity": velocity}
    if len(table.pedal_time_s):
        k = np.searchsorted(table.pedal_time_s, times, side="right") - 1
        down = np.where(k >= 0, table.pedal_value[np.maximum(k, 0)] >= 64, False)
        if down.any() and not down.all():
            out["sustain pedal"] = down.astype(np.float64)
    bar = _bar_position(times, path)
    if bar is not None:
        out["position in the bar"] = bar
    return {k: v for k, v in out.items() if _moves(v)}


def _moves(feature: np.ndarray) -> bool:
    """Whether a feature changes enough to follow: its commonest value under 95% of the time
    (four voices sounding through a whole chorale, one velocity for every note: no feature)."""
    _, counts = np.unique(np.round(feature, 6), return_counts=True)
    return len(feature) > 0 and counts.max() < 0.95 * len(feature)


def _bar_position(times: np.ndarray, path: Path) -> np.ndarray | None:
    """The fraction of the bar gone at each time, where the file has a time signature."""
    import pretty_midi

    try:
        pm = pretty_midi.PrettyMIDI(str(path))
    except Exception:
        return None
    if not pm.time_signature_changes:
        return None
    downbeats = pm.get_downbeats()
    if len(downbeats) < 2:
        return None
    bar = np.diff(downbeats).mean()
    edges = np.concatenate([downbeats, [downbeats[-1] + bar]])
    i = np.clip(np.searchsorted(edges, times, side="right") - 1, 0, len(edges) - 2)
    return np.clip((times - edges[i]) / (edges[i + 1] - edges[i]), 0.0, 1.0)


def write_json(acts: Activations, findings: list[Finding], path: str | os.PathLike) -> Path:
    path = Path(path)
    path.write_text(json.dumps({
        "model": acts.model, "file": acts.path.name, "grid_s": GRID_S,
        "features": list(acts.features),
        "cells": [{"layer": f.layer, "cell": f.cell, "feature": f.feature, "r": f.r}
                  for f in findings]}, indent=1) + "\n")
    return path


def draw(acts: Activations, findings: list[Finding], png_path: str | os.PathLike,
         rows: int = 18, window_s: float = 30.0) -> Path:
    """The piano roll, the found cells as a heat strip under it (strongest first, labelled
    with what each follows), and the strongest cell drawn over its feature: the first
    ``window_s`` of the music, so that single notes can be seen (r is the whole piece's)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.collections import PolyCollection
    from matplotlib.figure import Figure

    from neuralband.audition import PART_COLOURS, pitch_name

    seen, shown = set(), []
    for f in findings:  # each cell once, under its strongest feature
        if (f.layer, f.cell) not in seen:
            seen.add((f.layer, f.cell))
            shown.append(f)
    shown = shown[:rows]
    start, whole = float(acts.times[0]), float(acts.times[-1])
    end = min(whole, start + window_s)
    shown_t = acts.times <= end
    fig = Figure(figsize=(14, 3.2 + 0.22 * len(shown) + 2.0), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    roll, heat, trace = fig.subplots(3, 1, sharex=True, height_ratios=[
        3.0, 0.22 * max(len(shown), 1) + 0.4, 1.8])
    if acts.notes:
        n = np.array(acts.notes, np.float64)
        x0, x1, p, v, voice = n.T
        verts = np.stack([np.stack([x0, p - 0.45], 1), np.stack([x1, p - 0.45], 1),
                          np.stack([x1, p + 0.45], 1), np.stack([x0, p + 0.45], 1)], 1)
        base = PART_COLOURS[voice.astype(int) % len(PART_COLOURS)]
        light = (0.65 * (1.0 - v / 127.0))[:, None]
        roll.add_collection(PolyCollection(verts, facecolors=base + (1.0 - base) * light,
                                           edgecolors="face", linewidths=0.5))
        roll.set_ylim(p.min() - 1, p.max() + 1)
        ticks = list(range(int(p.min()) + (-int(p.min())) % 12, int(p.max()) + 1, 12))
        roll.set_yticks(ticks, [pitch_name(t) for t in ticks])
    roll.set_xlim(start, end)
    roll.set_title(f"{acts.path.name}: the cells of {acts.model} that follow the music "
                   f"({end - start:.0f} s of {whole - start:.0f} s shown; r over the whole piece)",
                   loc="left", fontsize=11)
    roll.set_ylabel("pitch")
    if shown:
        grid = np.stack([acts.cell(f.layer, f.cell)[shown_t] for f in shown])
        heat.imshow(grid, aspect="auto", cmap="RdBu_r", vmin=-1, vmax=1, interpolation="nearest",
                    extent=(start, end, len(shown) - 0.5, -0.5))
        heat.set_yticks(range(len(shown)), [f"{f.layer}:{f.cell} {f.feature} r={f.r:+.2f}"
                                            for f in shown], fontsize=7)
        best = shown[0]
        cell = acts.cell(best.layer, best.cell)[shown_t]
        feature = acts.features[best.feature][shown_t]

        def z(a: np.ndarray) -> np.ndarray:
            return (a - a.mean()) / (a.std() or 1.0)

        trace.plot(acts.times[shown_t], z(feature), color="0.55", linewidth=0.8, label=best.feature)
        trace.plot(acts.times[shown_t], np.sign(best.r) * z(cell), color="tab:red", linewidth=0.8,
                   label=f"cell {best.layer}:{best.cell} (r={best.r:+.2f}"
                         f"{', sign flipped' if best.r < 0 else ''})")
        trace.legend(loc="upper right", fontsize=8)
    trace.set_ylabel("z-score")
    trace.set_xlabel("time (s)")
    png_path = Path(png_path)
    png_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png_path, format="png")
    return png_path
