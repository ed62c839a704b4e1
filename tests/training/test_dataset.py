"""`neuralband encode`: a mixed folder gives exactly the expected manifest and errors; splits stay
put when files are added; an interrupted run leaves a valid dataset."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from neuralband.encoders import EncoderSettings, encode
from neuralband.encoders.schemes import EventScheme
from neuralband.training import dataset
from neuralband.training.dataset import build_dataset, split_of
from tests.helpers.data import CHORALES


def mixed_folder(root: Path) -> Path:
    """Real chorales in nested folders, a duplicate, and four kinds of bad file."""
    src = root / "src"
    (src / "a" / "b").mkdir(parents=True)
    for i, path in enumerate(CHORALES):
        shutil.copy(path, (src / "a" / "b" if i % 2 else src) / path.name)
    shutil.copy(CHORALES[0], src / "a" / "copy.MID")  # same bytes, other name and suffix case
    data = CHORALES[1].read_bytes()
    (src / "truncated.mid").write_bytes(data[: len(data) // 2])
    (src / "notes.mid").write_text("this is a text file")
    (src / "empty.mid").write_bytes(b"")
    (src / "readme.txt").write_text("not a MIDI suffix, ignored")
    header_only = (b"MThd" + (6).to_bytes(4, "big") + (1).to_bytes(2, "big")
                   + (0).to_bytes(2, "big") + (480).to_bytes(2, "big"))
    (src / "no_notes.midi").write_bytes(header_only)
    return src


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_mixed_folder(tmp_path):
    src = mixed_folder(tmp_path)
    out = tmp_path / "ds"
    summary = build_dataset([src], out, workers=2)
    assert (summary.found, summary.encoded, summary.failed, summary.duplicates) == (8, 3, 4, 1)

    manifest = read_jsonl(out / "manifest.jsonl")
    # Each piece once: the duplicate under its first name in path order (a/copy.MID).
    assert {r["sha256"] for r in manifest} == {sha(p) for p in CHORALES}
    assert {Path(r["source"]).name for r in manifest} == {p.name for p in CHORALES[1:]} | {
        "copy.MID"}
    for row in manifest:
        shard = np.load(out / "shards" / row["shard"], mmap_mode="r")
        assert shard.dtype == np.uint16
        tokens = shard[row["offset"]: row["offset"] + row["length"]]
        assert np.array_equal(tokens, encode(row["source"]))
        assert row["split"] == split_of(row["sha256"])
        assert row["notes"] == int((tokens < 128).sum()) and row["duration_s"] > 10

    errors = {Path(e["source"]).name: e["reason"] for e in read_jsonl(out / "errors.jsonl")}
    assert set(errors) == {"truncated.mid", "notes.mid", "empty.mid", "no_notes.midi"}
    assert "not a MIDI file" in errors["notes.mid"] and "is empty" in errors["empty.mid"]
    assert errors["truncated.mid"].startswith("cut short")
    assert errors["no_notes.midi"] == "empty: no notes"
    settings = json.loads((out / "settings.json").read_text())
    assert settings["version"] == 2 and settings["scheme"] == EventScheme().to_dict()


def test_rerun_adds_only_new_files_and_splits_stay_put(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for path in CHORALES[:2]:
        shutil.copy(path, src)
    out = tmp_path / "ds"
    build_dataset([src], out, workers=1)
    before = {r["sha256"]: r for r in read_jsonl(out / "manifest.jsonl")}
    for path in CHORALES[2:]:
        shutil.copy(path, src)
    summary = build_dataset([src], out, workers=1)
    assert (summary.encoded, summary.already) == (len(CHORALES) - 2, 2)
    after = {r["sha256"]: r for r in read_jsonl(out / "manifest.jsonl")}
    assert len(after) == len(CHORALES)
    for sha, row in before.items():
        assert after[sha] == row  # same split, same shard, same place


def test_other_settings_are_refused(tmp_path):
    out = tmp_path / "ds"
    build_dataset([CHORALES[0]], out, workers=1)
    with pytest.raises(ValueError, match="other settings") as err:
        build_dataset([CHORALES[1]], out, EventScheme(EncoderSettings(include_drums=True)),
                      workers=1)
    # the one setting that differs, not two whole settings dicts
    assert "include_drums: False there, True asked" in str(err.value)
    assert "steps_per_second" not in str(err.value)


def test_interrupted_run_leaves_the_old_dataset(tmp_path, monkeypatch):
    out = tmp_path / "ds"
    build_dataset([CHORALES[0]], out, workers=1)
    manifest_before = (out / "manifest.jsonl").read_text()
    real_write = dataset._write_atomic

    def die_at_manifest(path, text):
        if path.name == "manifest.jsonl":
            raise KeyboardInterrupt
        real_write(path, text)

    monkeypatch.setattr(dataset, "_write_atomic", die_at_manifest)
    with pytest.raises(KeyboardInterrupt):
        build_dataset(CHORALES, out, workers=1, shard_tokens=100)
    assert (out / "manifest.jsonl").read_text() == manifest_before
    monkeypatch.undo()
    summary = build_dataset(CHORALES, out, workers=1)
    assert summary.encoded == len(CHORALES) - 1
    for row in read_jsonl(out / "manifest.jsonl"):
        shard = np.load(out / "shards" / row["shard"])
        assert np.array_equal(shard[row["offset"]: row["offset"] + row["length"]],
                              encode(row["source"]))


def test_killed_process_leaves_a_valid_dataset(tmp_path):
    """kill -9 in the middle of a run: the manifest is the old one or the new one, never half."""
    src = mixed_folder(tmp_path)
    out = tmp_path / "ds"
    build_dataset([CHORALES[0]], out, workers=1)
    old = (out / "manifest.jsonl").read_text()
    code = ("import sys, os, signal; from neuralband.training import dataset;"
            "real = dataset._save_shard\n"
            "def save(path, tokens):\n"
            "    real(path, tokens); os.kill(os.getpid(), signal.SIGKILL)\n"
            "dataset._save_shard = save\n"
            f"dataset.build_dataset([{str(src)!r}], {str(out)!r}, workers=1)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=120)
    assert proc.returncode == -9
    assert (out / "manifest.jsonl").read_text() == old


def test_cli(tmp_path):
    src = mixed_folder(tmp_path)
    out = tmp_path / "ds"
    run = [sys.executable, "-m", "neuralband", "encode", str(src), "-o", str(out), "-q"]
    proc = subprocess.run(run, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "8 files found: 3 pieces encoded, 4 failed, 1 duplicate" in proc.stdout
    assert "warning: 4 pieces" in proc.stderr
    strict = subprocess.run(run + ["--strict"], capture_output=True, text=True, timeout=120)
    assert strict.returncode == 1
    missing = subprocess.run(run[:4] + [str(tmp_path / "nope"), "-o", str(out)],
                             capture_output=True, text=True, timeout=120)
    assert missing.returncode == 2
    assert missing.stderr.strip() == f"neuralband: no such file or folder: {tmp_path / 'nope'}"


def test_oversized_pieces_are_refused_with_the_cap_named(tmp_path):
    out = tmp_path / "ds"
    summary = build_dataset(CHORALES, out, workers=1, limits=dataset.Limits(max_notes=150))
    errors = read_jsonl(out / "errors.jsonl")
    big = [e for e in errors if "oversized" in e["reason"]]
    assert summary.failed == len(big) > 0
    assert all("> 150 (--max-notes)" in e["reason"] for e in big)
    capped = build_dataset(CHORALES, tmp_path / "ds2", workers=1,
                           limits=dataset.Limits(max_seconds=5.0))
    assert capped.encoded == 0 and capped.failed == len(CHORALES)
