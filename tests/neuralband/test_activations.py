"""`neuralband audition FILE --activations OUT.png`: the model's cells against the music."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pretty_midi
import pytest

from neuralband.activations import Activations, _features, record
from neuralband.modelfile import bundled_model

CHORALE = Path(bundled_model("pop")).parent / "chorale_bwv1.6.mid"


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "neuralband", "audition", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("model", ["pop", "chorale-folk"])
def test_a_real_piece_has_cells_that_follow_the_notes(tmp_path, model):
    out = run(str(CHORALE), "--activations", "sheet.png", "--model", str(bundled_model(model)),
              cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    png, found = tmp_path / "sheet.png", json.loads((tmp_path / "sheet.json").read_text())
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 50_000
    assert found["model"] == model and found["file"] == CHORALE.name
    cells = found["cells"]
    assert cells == sorted(cells, key=lambda c: -abs(c["r"]))
    assert {"layer", "cell", "feature", "r"} <= set(cells[0])
    assert any(abs(c["r"]) >= 0.5 for c in cells
               if c["feature"] in ("notes sounding", "time since the last onset")), cells
    # A chorale's four voices sound nearly all the time at one velocity: no such feature.
    assert "velocity" not in found["features"]
    assert f"cell {cells[0]['layer']}:{cells[0]['cell']} follows" in out.stdout


def test_the_strongest_finding_really_follows_its_feature(tmp_path):
    acts = record(bundled_model("chorale-folk"), CHORALE)
    best = acts.findings()[0]
    r = np.corrcoef(acts.cell(best.layer, best.cell), acts.features[best.feature])[0, 1]
    assert abs(r - best.r) < 1e-3 and abs(r) >= 0.5
    assert acts.states.shape == (len(acts.times), acts.layers * acts.hidden)


def test_a_saturated_cell_and_a_still_feature_are_not_findings():
    t = np.arange(0, 20, 0.05)
    rng = np.random.default_rng(0)
    feature = np.sin(t)
    follows = 0.5 * feature + 0.05 * rng.standard_normal(len(t))
    saturated = np.ones_like(t)
    saturated[100] = 0.999  # a flicker matching nothing
    noise = rng.standard_normal(len(t))
    acts = Activations("m", Path("x.mid"), t, np.stack([noise, saturated, follows], 1),
                       {"pitch height": feature}, [], 1, 3)
    found = acts.findings(per_feature=3)
    assert (found[0].cell, found[0].feature) == (2, "pitch height") and found[0].r > 0.95
    assert next(f for f in found if f.cell == 1).r == 0.0


def test_features_read_what_was_sounding_when(tmp_path):
    pm = pretty_midi.PrettyMIDI()
    inst = pretty_midi.Instrument(0)
    inst.notes += [pretty_midi.Note(100, 60, 0.0, 1.0), pretty_midi.Note(50, 72, 0.5, 1.0),
                   pretty_midi.Note(80, 64, 2.0, 3.0)]
    inst.control_changes += [pretty_midi.ControlChange(64, 127, 2.0),
                             pretty_midi.ControlChange(64, 0, 2.5)]
    pm.instruments.append(inst)
    path = tmp_path / "three.mid"
    pm.write(str(path))
    from neuralband.encoders.midi_io import read_notes

    times = np.array([0.25, 0.75, 1.5, 2.25, 2.75])
    notes = [(n.start, n.end, n.pitch, n.velocity, 0) for n in inst.notes]
    f = _features(times, notes, read_notes(path), path)
    assert f["notes sounding"].tolist() == [1, 2, 0, 1, 1]
    assert np.allclose(f["time since the last onset"], [0.25, 0.25, 1.0, 0.25, 0.75])
    assert f["pitch height"].tolist() == [60, 66, 72, 64, 64]  # a rest: the last note's pitch
    assert f["velocity"].tolist() == [100, 50, 50, 80, 80]
    assert f["sustain pedal"].tolist() == [0, 0, 0, 1, 0]
    assert "position in the bar" in f  # pretty_midi writes a 4/4 time signature


def test_bad_input_is_one_line(tmp_path):
    (tmp_path / "bad.mid").write_bytes(b"not midi at all")
    out = run("bad.mid", "--activations", "x.png", cwd=tmp_path)
    assert out.returncode == 2 and "bad.mid: not a MIDI file" in out.stderr
    assert "Traceback" not in out.stderr
    out = run(str(CHORALE), "--activations", "x.png", "--model", str(bundled_model("grid")),
              cwd=tmp_path)
    assert out.returncode == 2 and "a grid model steps on a clock" in out.stderr
    out = run(str(CHORALE), str(CHORALE), "--activations", "x.png", cwd=tmp_path)
    assert out.returncode == 2 and "reads one MIDI file" in out.stderr
