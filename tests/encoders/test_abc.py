"""ABC collections: split into tunes, each rendered by abc2midi and encoded like any MIDI file."""

from __future__ import annotations

import json

import pytest

from neuralband.encoders import MidiError, encode
from neuralband.encoders.abc import split_tunes, tune_to_midi
from neuralband.training.dataset import build_dataset, find_files
from tests.helpers.data import DATA

TUNES = DATA / "abc" / "tunes.abc"


def test_split_tunes_keeps_the_file_header():
    tunes = split_tunes(TUNES.read_text())
    assert [(t.ref, t.title) for t in tunes] == [
        ("X:1", "Test Jig"), ("X:2", "Test Reel"), ("X:3", "No Key Line"), ("X:4", "Test Air")]
    assert all("L:1/8" in t.text for t in tunes)
    assert split_tunes("no tunes here") == []


def test_a_tune_encodes_like_its_midi():
    jig = split_tunes(TUNES.read_text())[0]
    tokens = encode(tune_to_midi(jig, "jig"))
    # |: DFA dAF | GBd gdB | AFD EFG | AFD D3 :| played twice: 4 bars x 2 = 22 notes x 2.
    assert int((tokens < 128).sum()) == 44
    assert tokens[1] == 62  # after the VELOCITY event, NOTE_ON D4


def test_a_bad_tune_raises_midi_error_naming_it(capfd):
    bad = split_tunes(TUNES.read_text())[2]
    with pytest.raises(MidiError, match=r"tunes.abc#X:3: ABC tune could not be read"):
        tune_to_midi(bad, "tunes.abc#X:3")
    out, err = capfd.readouterr()
    assert out == "" and err == ""  # abc2midi's own chatter is silenced


def test_dataset_from_abc(tmp_path):
    out = tmp_path / "ds"
    summary = build_dataset([TUNES.parent], out, workers=1)
    assert (summary.found, summary.encoded, summary.failed) == (1, 3, 1)
    rows = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert [r["tune"] for r in rows] == ["X:1", "X:2", "X:4"]
    assert all(r["source"] == str(TUNES) for r in rows)
    errors = [json.loads(line) for line in (out / "errors.jsonl").read_text().splitlines()]
    assert [(e["tune"], e["reason"]) for e in errors] == [
        ("X:3", "ABC tune could not be read: abc2midi made nothing of it")]
    again = build_dataset([TUNES.parent], out, workers=1)
    assert (again.encoded, again.already) == (0, 1)


def test_real_abc_files(miditok_tests):
    files = find_files([miditok_tests / "abc_files"])
    assert len(files) == 5
    for path in files:
        tunes = split_tunes(path.read_text())
        assert tunes, path
        for tune in tunes:
            assert len(encode(tune_to_midi(tune, path.name))) > 20
