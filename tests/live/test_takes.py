"""The take library (`neuralband.live.takes`): a session played in is kept, never over another
file, and listed; one where nobody played is not kept."""

from __future__ import annotations

import json
from types import SimpleNamespace

import mido

from neuralband.live.takes import format_takes, keep_take, list_takes, takes_folder


def _engine(player_notes: int) -> SimpleNamespace:
    recording = []
    for k in range(player_notes):
        recording += [(10.0 + k, "player", [0x90, 60 + k, 90]),
                      (10.4 + k, "player", [0x80, 60 + k, 0])]
    recording += [(10.2, "band", [0x91, 48, 70]), (11.0, "band", [0x81, 48, 0])]
    return SimpleNamespace(recording=sorted(recording, key=lambda r: r[0]), t0=9.5,
                           closed_at=14.0)


def test_a_take_is_kept_with_its_note_listed_and_never_replaces_a_file(tmp_path):
    about = {"model": "pop", "mode": "call", "temperature": 1.0}
    first = keep_take(_engine(3), tmp_path, about)
    second = keep_take(_engine(2), tmp_path, about)  # the same second: a name of its own
    assert first != second and first.exists() and second.exists()
    note = json.loads(first.with_suffix(".json").read_text())
    assert note["player_notes"] == 3 and note["band_notes"] == 1 and note["model"] == "pop"
    assert [t.name for t in mido.MidiFile(first).tracks] == ["player", "band"]
    takes = list_takes(tmp_path)
    assert [t.path for t in takes] == sorted([first, second])
    table = format_takes(takes, tmp_path)
    assert first.name in table and "2 take(s)" in table


def test_a_session_nobody_played_in_is_not_kept(tmp_path):
    assert keep_take(_engine(0), tmp_path, {"model": "pop"}) is None
    assert not list(tmp_path.iterdir())
    assert "no takes in" in format_takes(list_takes(tmp_path), tmp_path)


def test_a_damaged_note_is_left_out_of_the_list(tmp_path):
    kept = keep_take(_engine(1), tmp_path, {"model": "pop"})
    (tmp_path / "junk.json").write_text("{not json")
    assert [t.path for t in list_takes(tmp_path)] == [kept]


def test_the_folder_is_the_option_then_the_environment_then_the_data_home(monkeypatch, tmp_path):
    monkeypatch.setenv("NEURALBAND_TAKES", str(tmp_path / "env"))
    assert takes_folder(tmp_path / "given") == tmp_path / "given"
    assert takes_folder() == tmp_path / "env"
    monkeypatch.delenv("NEURALBAND_TAKES")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert takes_folder() == tmp_path / "data" / "neuralband" / "takes"
