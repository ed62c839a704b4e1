"""The token-scheme interface (`encoders.schemes`): every encoding stored as one dict and read
back, old datasets and model files read as before, and text as a scheme of its own, from
`neuralband encode --scheme text` through `train` to `generate --length`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from neuralband.cli import main
from neuralband.encoders.grid import GridSettings
from neuralband.encoders.performance import EncoderSettings
from neuralband.encoders.schemes import (
    EventScheme,
    GridScheme,
    Limits,
    VoicedScheme,
    scheme_from_dict,
    scheme_names,
)
from neuralband.encoders.text import TextScheme
from neuralband.encoders.voices import VoiceSettings
from neuralband.modelfile import BUNDLED, bundled_model, read_info
from neuralband.training.dataset import build_dataset
from neuralband.training.windows import TokenWindows, model_shape, read_dataset
from tests.helpers.data import CHORALES

SCHEMES = [EventScheme(), EventScheme(EncoderSettings(velocity_bins=16)),
           VoicedScheme(VoiceSettings(4, "track:Soprano")),
           GridScheme(GridSettings(0.125, 4, "track:Soprano")), TextScheme(), TextScheme(300)]


@pytest.mark.parametrize("scheme", SCHEMES, ids=repr)
def test_every_scheme_is_one_dict_and_reads_back_equal(scheme):
    stored = json.loads(json.dumps(scheme.to_dict()))
    assert stored["name"] in scheme_names()
    again = scheme_from_dict(stored)
    assert again == scheme and type(again) is type(scheme)
    assert again.input_classes == scheme.input_classes >= again.output_classes


def test_unknown_or_broken_schemes_are_refused_in_words():
    with pytest.raises(ValueError, match="unknown token scheme 'midi-2'.*events"):
        scheme_from_dict({"name": "midi-2"})
    with pytest.raises(ValueError, match="unreadable voices scheme"):
        scheme_from_dict({"name": "voices", "encoder": EncoderSettings().to_dict()})
    with pytest.raises(ValueError, match="a dict with a name"):
        scheme_from_dict(["events"])


def test_the_bundled_models_read_as_their_schemes():
    """The bundled music models are files of the format before schemes (version 1): each still
    reads, as the scheme its entries name; folk and colours were written with their scheme."""
    kinds = {name: read_info(bundled_model(name)).scheme.name for name in BUNDLED}
    assert kinds == {"pop": "events", "pop-duet": "voices", "chorale-folk": "events",
                     "duet": "voices", "grid": "grid", "folk": "folk", "colours": "text"}
    duet = read_info(bundled_model("duet")).scheme
    assert duet.voice_settings == VoiceSettings(4, "track:Soprano")


def test_a_dataset_stores_its_scheme_once_and_refuses_another(tmp_path):
    out = tmp_path / "ds"
    scheme = VoicedScheme(VoiceSettings(4, "track:Soprano"))
    build_dataset(CHORALES[:2], out, scheme, workers=1, fractions=(1.0, 0.0, 0.0))
    settings = json.loads((out / "settings.json").read_text())
    assert settings["version"] == 2 and settings["scheme"] == scheme.to_dict()
    assert not {"encoder", "voices", "grid"} & set(settings)
    assert read_dataset(out)[0] == scheme
    assert model_shape(out) == {"vocab_size": 1252, "out_size": None, "fields": ()}
    with pytest.raises(ValueError, match="other settings"):
        build_dataset(CHORALES[2:3], out, EventScheme(), workers=1)


@given(st.lists(st.sampled_from([b"a", b"bc", b"\n", b"\xc3\xa9", b" ", b"defgh"]),
                max_size=200), st.integers(1, 40))
def test_text_pieces_are_whole_lines_that_make_up_the_file(parts, size):
    data = b"".join(parts)
    scheme = TextScheme(size)
    if not data:
        with pytest.raises(ValueError, match="empty"):
            scheme.pieces("a.txt", data)
        return
    pieces = scheme.pieces("a.txt", data)
    assert b"".join(p.content for p in pieces) == data
    for p in pieces[:-1]:  # every piece but the last ends a line, once it holds `size` bytes
        assert p.content.endswith(b"\n") and b"\n" not in p.content[size - 1:-1]
    lines = [int(p.ref.split()[1]) for p in pieces]
    assert lines[0] == 1 and all(lines[k + 1] == lines[k] + pieces[k].content.count(b"\n")
                                 for k in range(len(pieces) - 1))
    tokens = np.concatenate([scheme.encode(p, "a.txt") for p in pieces])
    assert tokens.max(initial=0) < 256 and scheme.decode(tokens) == data.decode("utf-8", "replace")


def test_text_refuses_what_holds_no_text():
    scheme = TextScheme()
    assert scheme.refusal(np.frombuffer(b" \n\n ", np.uint8), Limits()) == "empty: no text"
    assert scheme.refusal(np.frombuffer(b"teal\n", np.uint8), Limits()) is None
    assert scheme.describe(ord("a")) == "'a'" and scheme.describe(0xC3) == "byte 0xc3"


def test_text_from_encode_to_train_to_generate(tmp_path, capsys):
    """A char-RNN with the same three commands as music: the windows are bytes, never
    transposed or stretched; the model writes text after the primer, --length bytes of it."""
    src = tmp_path / "names.txt"
    words = ["teal", "dark teal", "sea green", "light sea green", "dusty rose", "rose"]
    src.write_text("\n".join(f"{w} {i}" for i in range(60) for w in words) + "\n")
    ds, run = tmp_path / "ds", tmp_path / "run"
    assert main(["encode", "--scheme", "text", str(src), "-o", str(ds), "--piece-bytes", "100",
                 "--split", "80/10/10", "-q"]) == 0
    assert "bytes" in capsys.readouterr().out
    windows = TokenWindows(ds, "train", window=32, batch_size=8, transpose=5, stretch=0.1)
    batch = windows.batch(0)
    raw = src.read_bytes()
    assert all(bytes(row.astype(np.uint8)) in raw for row in batch)  # untouched bytes
    assert main(["train", str(ds), "-o", str(run), "--preset", "tiny", "--window", "32",
                 "--batch", "16", "--steps", "40", "--eval-every", "20", "--threads", "1",
                 "-q"]) == 0
    info = read_info(run / "model")
    assert info.scheme == TextScheme(100) and info.encoder is None
    out = tmp_path / "out.txt"
    assert main(["generate", "--model", str(run / "model"), "--length", "120", "--primer",
                 "dark ", "-n", "2", "-o", str(out), "--seed", "3", "-q"]) == 0
    for k in (1, 2):
        written = (tmp_path / f"out-{k}.txt").read_bytes()
        assert written.startswith(b"dark ") and len(written) >= 5 + 120 - 3 * 40  # UTF-8 aside
    assert "120 bytes generated" in capsys.readouterr().out
    assert main(["generate", "--model", str(run / "model"), "--seconds", "5",
                 "-o", str(out)]) == 2


def test_length_counts_the_events_a_music_model_adds(tmp_path: Path):
    from neuralband.generate import generate

    piece, = generate(bundled_model("chorale-folk"), None, float("inf"), length=50, seed=0)
    added = len(piece.tokens) - piece.primer_length
    assert 50 <= added <= 50 + 12  # the events, then the NOTE_OFFs that close what sounds


@pytest.mark.parametrize(("options", "words"), [
    (["--scheme", "text", "--voices", "2"], "--scheme text takes no --grid or --voices"),
    (["--scheme", "voices"], "--scheme voices needs --voices N"),
    (["--scheme", "grid", "--voices", "4"], "--scheme grid needs --grid BPM"),
    (["--grid", "fast", "--voices", "4"], "--grid wants BPM or BPM/STEPS_PER_BEAT"),
])
def test_encode_options_that_make_no_scheme_are_one_line(tmp_path, capsys, options, words):
    assert main(["encode", str(CHORALES[0]), "-o", str(tmp_path / "ds"), *options]) == 2
    err = capsys.readouterr().err
    assert words in err and err.count("\n") == 1 and not (tmp_path / "ds").exists()


def test_each_scheme_says_what_it_can_do():
    """What a model can do is asked of its scheme (how it plays live, whether it takes a lead,
    whether its pieces become MIDI), not decided from its kind elsewhere."""
    from neuralband.loaded import LoadedModel

    can = {name: (s.plays, s.accompanies, s.writes_midi, s.source_unit)
           for name in ("pop", "pop-duet", "grid", "folk", "colours")
           for s in [LoadedModel.open(name).scheme]}
    assert can == {"pop": ("events", False, True, "notes"),
                   "pop-duet": ("events", True, True, "notes"),
                   "grid": ("clock", True, True, "notes"),
                   "folk": (None, False, True, "notes"),
                   "colours": (None, False, False, "bytes")}
