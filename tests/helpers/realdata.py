"""Real MIDI files nobody here wrote, for tests and benchmarks: MidiTok's test folder from PyPI."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

MIDITOK_VERSION = "3.1.0"
CACHE = Path(os.environ.get("NEURALBAND_TEST_CACHE", Path.home() / ".cache" / "neuralband-tests"))


def fetch_miditok_tests() -> Path | None:
    """MidiTok's tests/ folder from its PyPI source archive, downloaded once; None if offline."""
    root = CACHE / f"miditok-{MIDITOK_VERSION}" / "tests"
    if (root / "MIDIs_one_track").is_dir() and (root / "abc_files").is_dir():
        return root
    CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=CACHE) as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
               "-d", tmp, f"miditok=={MIDITOK_VERSION}"]
        try:
            subprocess.run(cmd, check=True, capture_output=True, timeout=300)
        except (subprocess.SubprocessError, OSError):
            return None
        archive = next(Path(tmp).glob("miditok-*.tar.gz"), None)
        if archive is None:
            return None
        with tarfile.open(archive) as tar:
            members = [m for m in tar.getmembers()
                       if ("/tests/MIDIs_" in m.name or "/tests/abc_files" in m.name)
                       and (m.isfile() or m.isdir())]
            tar.extractall(tmp, members=members, filter="data")
        (root.parent).mkdir(parents=True, exist_ok=True)
        if root.exists():  # an older cache without the ABC files
            shutil.rmtree(root)
        os.replace(Path(tmp) / f"miditok-{MIDITOK_VERSION}" / "tests", root)
    return root


def pop909_root() -> Path | None:
    """The POP909 songs the team shares (``../shared/data/pop909``, or $NEURALBAND_POP909), each
    folder NNN/ with NNN.mid and key_audio.txt; None where they are not here."""
    default = Path(__file__).resolve().parents[3] / "shared" / "data" / "pop909"
    root = Path(os.environ.get("NEURALBAND_POP909", default))
    return root if (root / "001" / "001.mid").is_file() else None
