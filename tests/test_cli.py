"""The `neuralband` command as a user runs it: a real process, its output and exit code."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import mido

from neuralband import __version__


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
    chorale = Path(__file__).parent / "data" / "chorales" / "bwv10.7.mid"
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
