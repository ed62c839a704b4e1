"""The `neuralband` command as a user runs it: a real process, its output and exit code."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import mido

from neuralband import __version__
from tests.helpers.data import DATA


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "neuralband", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=120)


def test_version_and_help():
    assert run("--version").stdout.strip() == f"neuralband {__version__}"
    out = run("--help")
    assert out.returncode == 0
    assert "demo" in out.stdout and "tokens" in out.stdout


def test_roundtrip_round_trips_the_bundled_example(tmp_path):
    out = run("roundtrip", "-o", str(tmp_path))
    assert out.returncode == 0, out.stderr
    assert "491 notes back" in out.stdout
    written = tmp_path / "chorale_bwv1.6.roundtrip.mid"
    notes = [m for m in mido.MidiFile(written) if m.type == "note_on" and m.velocity > 0]
    assert len(notes) == 491


def test_tokens_lists_events():
    chorale = DATA / "chorales" / "bwv10.7.mid"
    out = run("tokens", str(chorale), "--limit", "3")
    assert out.returncode == 0
    lines = out.stdout.splitlines()
    assert "485 events" in lines[0] and "206 NOTE_ON" in lines[0]
    assert lines[1].split()[-2:] == ["VELOCITY", "23"]
    assert len(lines) == 5


def test_bad_files_give_one_readable_line(tmp_path):
    fake = tmp_path / "notes.mid"
    fake.write_text("not midi")
    for path in (fake, tmp_path / "missing.mid"):
        out = run("tokens", str(path))
        assert out.returncode == 2
        assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr
        assert str(path) in out.stderr


def test_files_may_follow_options(tmp_path):
    """`encode a -o x --workers 1 b`: both files are encoded (options and files intermixed)."""
    chorales = sorted((DATA / "chorales").glob("*.mid"))[:2]
    out = run("encode", str(chorales[0]), "-o", str(tmp_path / "ds"), "--workers", "1",
              str(chorales[1]), "-q")
    assert out.returncode == 0, out.stderr
    assert "2 files found: 2 pieces encoded" in out.stdout


def test_a_wrong_dataset_or_output_folder_is_one_readable_line(tmp_path):
    """`encode SRC -o A_FILE` and `train NOT_A_DATASET` say what is wrong, in one line, and
    create nothing."""
    chorale = DATA / "chorales" / "bwv10.7.mid"
    a_file = tmp_path / "notes.txt"
    a_file.write_text("mine")
    not_a_dataset = tmp_path / "empty"
    not_a_dataset.mkdir()
    cases = [
        (("encode", str(chorale), "-o", str(a_file)), "is a file, not a dataset folder"),
        (("train", str(not_a_dataset), "-o", str(tmp_path / "r1")), "is not a dataset"),
        (("train", str(tmp_path / "missing"), "-o", str(tmp_path / "r2")),
         "no such dataset folder"),
    ]
    for args, words in cases:
        out = run(*args)
        assert out.returncode == 2
        assert out.stderr.count("\n") == 1 and words in out.stderr, out.stderr
        assert "Errno" not in out.stderr and "Traceback" not in out.stderr
    assert a_file.read_text() == "mine"
    assert not (tmp_path / "r1").exists() and not (tmp_path / "r2").exists()


def test_every_option_of_every_command_says_what_it_does_and_its_default():
    import argparse

    from neuralband.options import build_parser

    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    checked = 0
    for name, sub in commands.choices.items():
        for action in sub._actions:
            if not action.option_strings or isinstance(action, argparse._HelpAction):
                continue
            assert action.help, (name, action.option_strings)
            if action.nargs != 0 and not action.required:
                assert "default" in action.help, \
                    (name, action.option_strings)
            checked += 1
    assert checked > 100
    assert "(default: 0.95)" in commands.choices["play"].format_help()
