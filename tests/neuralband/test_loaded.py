"""A model is read once, where the user names it, and handed on (`neuralband.loaded`)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from neuralband.cli import main
from neuralband.loaded import LoadedModel, loaded
from neuralband.modelfile import ModelFileError, bundled_model
from neuralband.runtime import Stepper
from tests.helpers.data import CHORALES


@pytest.fixture
def reads(monkeypatch) -> Counter:
    """How many times each model file (a .json or .safetensors) is read."""
    counts: Counter = Counter()
    read_bytes, read_text = Path.read_bytes, Path.read_text

    def counted(original):
        def read(self, *args, **kwargs):
            if self.suffix in (".json", ".safetensors"):
                counts[self.name] += 1
            return original(self, *args, **kwargs)
        return read

    monkeypatch.setattr(Path, "read_bytes", counted(read_bytes))
    monkeypatch.setattr(Path, "read_text", counted(read_text))
    return counts


def test_opening_a_model_reads_each_of_its_files_once(reads):
    model = LoadedModel.open("pop-duet")
    assert reads == Counter({"pop-duet.json": 1, "pop-duet.safetensors": 1})
    assert model.name == "pop-duet" and model.path == bundled_model("pop-duet").with_suffix(
        ".safetensors")
    assert model.voicing.voiced and model.rules().tight > 0  # a beat-reading duet band


def test_its_steppers_step_as_one_loaded_from_the_file():
    model = LoadedModel.open("pop")
    a, b = model.stepper(), Stepper.load(bundled_model("pop"))
    for tok in (355, 60, 300, 188):
        a.feed(tok)
        b.feed(tok)
    np.testing.assert_array_equal(a.logits(), b.logits())
    assert model.stepper(batch=3).batch == 3 and loaded(model) is model


def test_generate_with_a_lead_reads_the_model_once(reads, tmp_path):
    out = tmp_path / "band.mid"
    assert main(["generate", "--model", "pop-duet", "--lead", str(CHORALES[0]),
                 "--seconds", "2", "--quiet", "-o", str(out)]) == 0
    assert out.exists()
    assert reads["pop-duet.json"] == 1 and reads["pop-duet.safetensors"] == 1


def test_score_reads_the_model_once(reads, capsys):
    assert main(["score", "pop", str(CHORALES[0])]) == 0
    assert reads["pop.json"] == 1 and reads["pop.safetensors"] == 1


def test_a_damaged_model_is_named_in_one_line(tmp_path, capsys):
    src = bundled_model("pop")
    for suffix in (".json", ".safetensors"):
        (tmp_path / ("m" + suffix)).write_bytes(src.with_suffix(suffix).read_bytes())
    weights = tmp_path / "m.safetensors"
    weights.write_bytes(weights.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(ModelFileError, match="do not match their description"):
        LoadedModel.open(tmp_path / "m")
    assert main(["generate", "--model", str(tmp_path / "m"), "-o", str(tmp_path / "x.mid")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "m.safetensors" in err[0]
