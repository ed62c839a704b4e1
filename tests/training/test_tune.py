"""`neuralband tune`: takes read as the player played them, the tune folder, and a tuned model
that learnt the takes and loads wherever a model does."""

from __future__ import annotations

import importlib.util
import io
import json
from pathlib import Path

import mido
import numpy as np
import pytest

from neuralband.cli import main
from neuralband.encoders.performance import encode
from neuralband.encoders.schemes import EventScheme, VoicedScheme
from neuralband.encoders.voices import VoiceSettings
from neuralband.loaded import LoadedModel
from neuralband.training.config import TuneSettings
from neuralband.training.runs import RunExists
from neuralband.training.tune import TakeEvents, TakeVoices, hold_out, is_take, player_part, tune
from tests.helpers.data import TRAIN_CHORALES

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def take_bytes(player: list[int], band: list[int]) -> bytes:
    """A take as `play` writes it: track ``player`` (with the tempo), track ``band``; each
    pitch a half-second note, one after another."""
    mid = mido.MidiFile(type=1, ticks_per_beat=480)
    for name, pitches in (("player", player), ("band", band)):
        track = mido.MidiTrack([mido.MetaMessage("track_name", name=name, time=0)])
        if name == "player":
            track.append(mido.MetaMessage("set_tempo", tempo=500_000, time=0))
        for p in pitches:
            track.append(mido.Message("note_on", note=p, velocity=80, time=0))
            track.append(mido.Message("note_off", note=p, velocity=0, time=480))
        mid.tracks.append(track)
    buffer = io.BytesIO()
    mid.save(file=buffer)
    return buffer.getvalue()


def pitches(tokens: np.ndarray) -> list[int]:
    return [int(t) for t in tokens if t < 128]  # NOTE_ON events of the default vocabulary


def test_a_takes_player_part_is_what_a_solo_model_learns():
    take = take_bytes([60, 62, 64], [36, 43])
    assert is_take(take) and not is_take(b"not midi")
    assert pitches(encode(player_part(take))) == [60, 62, 64]
    plain = take.replace(b"player", b"melody")  # any other file: read whole
    assert not is_take(plain) and player_part(plain) == plain
    piece = TakeEvents().pieces("t.mid", take)[0]
    assert piece.content == take and pitches(TakeEvents().encode(piece, "t.mid")) == [60, 62, 64]
    assert TakeEvents() == EventScheme()  # stored as the plain event scheme


def test_a_duet_model_hears_the_player_as_its_lead_and_the_band_as_its_band():
    scheme = VoiceSettings(2, "track:MELODY")
    reader = TakeVoices(scheme)
    voice, base = scheme.unpack(reader.encode_midi(take_bytes([72, 74], [48])))
    ons = base < 128
    heard = sorted(zip(voice[ons].tolist(), base[ons].tolist(), strict=True))
    assert heard == [(0, 72), (0, 74), (1, 48)]
    assert reader.to_dict() == VoicedScheme(scheme).to_dict()


def test_held_out_takes_are_chosen_by_content_and_never_leave_nothing(tmp_path):
    def dataset(n: int) -> Path:
        root = tmp_path / f"d{n}"
        root.mkdir()
        rows = [{"source": f"t{i}.mid", "sha256": f"{(7 * i) % 10:x}" * 8, "split": "train",
                 "shard": "00000.npy", "offset": 0, "length": 10} for i in range(n)]
        (root / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        return root

    ten = dataset(10)
    assert hold_out(ten) == 2
    rows = [json.loads(line) for line in (ten / "manifest.jsonl").read_text().splitlines()]
    assert sorted(r["sha256"] for r in rows if r["split"] == "valid") == ["0" * 8, "1" * 8]
    two = dataset(2)
    assert hold_out(two) == 0  # too few to spare one: the takes are their own valid split
    rows = [json.loads(line) for line in (two / "manifest.jsonl").read_text().splitlines()]
    assert [r["split"] for r in rows] == ["train", "train", "valid", "valid"]


@pytest.fixture(scope="module")
def chorale_takes(tmp_path_factory) -> Path:
    """Four chorales rendered as a player's takes (examples/player_takes.py)."""
    spec = importlib.util.spec_from_file_location("player_takes", EXAMPLES / "player_takes.py")
    player_takes = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(player_takes)
    folder = tmp_path_factory.mktemp("takes")
    assert player_takes.main([*map(str, TRAIN_CHORALES[:4]), "-o", str(folder)]) == 0
    (folder / "broken.mid").write_bytes(b"MThd but not really")
    return folder


QUICK = TuneSettings(steps=30, batch=8, window=128, replay_minutes=0.7, threads=1,
                     progress=False)


@pytest.fixture(scope="module")
def tuned(chorale_takes, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("tune") / "mine"
    return out, tune("pop", [str(chorale_takes)], str(out), QUICK, argv=["neuralband", "tune"])


@pytest.mark.slow  # a real tune (about 15 s)
def test_tune_learns_the_takes_and_writes_a_model_that_names_its_base(tuned):
    out, result = tuned
    assert result["held_out"] == 1  # four takes read (the broken one skipped): one held out
    assert result["held_out_nll_tuned"] < 0.95 * result["held_out_nll_base"]  # 30 steps: -9%
    model = LoadedModel.open(str(out))
    about = model.info.summary["tuned"]
    base = LoadedModel.open("pop").info
    assert about["base"] == "pop" and about["base_sha256"] == base.sha256
    assert len(about["takes"]) == 4 and all(len(t["sha256"]) == 64 for t in about["takes"])
    assert about["mixed"] == "replay" and about["command"] == "neuralband tune"
    # It reads MIDI, keys and the beat as its base does, and keeps what the base measured.
    assert model.scheme == base.scheme and model.info.controls == base.controls
    assert model.info.summary["max_note_s"] == base.summary["max_note_s"]
    assert len(list((out / "replay").glob("*.mid"))) == 1  # 0.7 minutes: one 40 s piece


@pytest.mark.slow  # a real tune (about 15 s)
def test_a_tuned_model_plays_wherever_a_model_does(tuned, tmp_path):
    out, _ = tuned
    assert main(["generate", "--model", str(out), "--seconds", "3", "-o",
                 str(tmp_path / "g.mid"), "--seed", "1"]) == 0
    assert mido.MidiFile(str(tmp_path / "g.mid")).length > 0


@pytest.mark.slow  # a real tune (about 15 s)
def test_a_tune_folder_is_never_replaced_unasked(tuned, chorale_takes):
    out, _ = tuned
    with pytest.raises(RunExists, match="--force"):
        tune("pop", [str(chorale_takes)], str(out), QUICK)


def test_tune_refuses_what_it_cannot_learn_in_one_line(tmp_path, capsys):
    assert main(["tune", "grid", str(tmp_path), "-o", str(tmp_path / "o")]) == 2
    assert "tune learns event models" in capsys.readouterr().err
    assert main(["tune", "pop", str(tmp_path), "-o", str(tmp_path / "o")]) == 2
    assert "no MIDI file" in capsys.readouterr().err
    assert main(["tune", "nosuch", str(tmp_path), "-o", str(tmp_path / "o")]) == 2
    assert "nosuch" in capsys.readouterr().err
    assert main(["tune", "pop", "--takes-dir", str(tmp_path / "none"), "-o", "o"]) == 2
    assert "no takes yet in" in capsys.readouterr().err  # the library, before any session


@pytest.mark.slow  # a real tune (about 15 s)
def test_tune_from_the_command_line(chorale_takes, tmp_path, capsys):
    out = tmp_path / "cli"
    assert main(["tune", "pop", str(chorale_takes), "-o", str(out), "--steps", "2", "--batch",
                 "4", "--window", "64", "--replay-minutes", "0.3", "--threads", "1", "-q"]) == 0
    said = capsys.readouterr()
    assert "NLL on your held-out takes:" in said.out and f"--model {out}" in said.out
    assert said.err.splitlines() == [f"neuralband: skipped {chorale_takes / 'broken.mid'}: "
                                     + said.err.split(": ", 2)[2].splitlines()[0]]  # -q
    assert (out / "model.json").exists() and (out / "args.json").exists()
