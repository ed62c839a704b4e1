"""Shared fixtures: real MIDI files nobody here wrote, and the reference implementation.

Real files: the Bach chorales in tests/data/chorales (exported from the music21 corpus) are always
here; MidiTok's test MIDI (piano performances with pedal, POP909, multitrack pop, a corrupt file)
come from MidiTok's source archive on PyPI, fetched once into a cache; 809 POP909 songs with their
annotated keys are shared at ../shared/data/pop909. Where a reference is missing
the tests that need it skip with the reason, and fail instead under NEURALBAND_REQUIRE_REFERENCE=1
(CI sets it).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.realdata import MIDITOK_VERSION, fetch_miditok_tests, pop909_root

DATA = Path(__file__).parent / "data"
CHORALES = sorted((DATA / "chorales").glob("*.mid"))
# 36 more chorales for training tests (music21 corpus, exported to MIDI).
TRAIN_CHORALES = sorted((DATA / "chorales_train").glob("*.mid"))


def require_reference() -> bool:
    return os.environ.get("NEURALBAND_REQUIRE_REFERENCE") == "1"


def missing(reason: str) -> None:
    """Skip with a reason, or fail where the reference is required."""
    if require_reference():
        pytest.fail(f"{reason} (NEURALBAND_REQUIRE_REFERENCE=1)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def miditok_tests() -> Path:
    root = fetch_miditok_tests()
    if root is None:
        missing(f"MidiTok {MIDITOK_VERSION} test files could not be downloaded from PyPI")
    return root


@pytest.fixture(scope="session")
def pop909() -> Path:
    """The shared POP909 songs (folders NNN/ of NNN.mid and key_audio.txt)."""
    root = pop909_root()
    if root is None:
        missing("POP909 is not at ../shared/data/pop909 (or $NEURALBAND_POP909)")
    return root


@pytest.fixture(scope="session")
def note_seq_reference():
    """note_seq's own pipeline: MIDI (path, bytes or PrettyMIDI) -> Performance tokens."""
    try:
        import note_seq
        from note_seq import performance_lib, sequences_lib
        from note_seq.performance_encoder_decoder import PerformanceOneHotEncoding
    except ImportError:
        missing("note_seq is not installed (pip install -e '.[reference]')")
    import numpy as np

    encoding = PerformanceOneHotEncoding(num_velocity_bins=32)

    def tokens(source) -> np.ndarray:
        if isinstance(source, (str, os.PathLike)):
            ns = note_seq.midi_file_to_note_sequence(os.fspath(source))
        else:
            ns = note_seq.midi_to_note_sequence(source)
        ns = sequences_lib.apply_sustain_control_changes(ns)
        quantized = sequences_lib.quantize_note_sequence_absolute(ns, 100)
        perf = performance_lib.Performance(quantized, num_velocity_bins=32)
        return np.array([encoding.encode_event(e) for e in perf], dtype=np.int64)

    return tokens


# --- JACK: a real server with the dummy driver -------------------------------------------------

def require_jack() -> bool:
    return os.environ.get("NEURALBAND_REQUIRE_JACK") == "1"


def jack_missing(reason: str) -> None:
    """Skip with a reason, or fail where JACK is required (CI sets NEURALBAND_REQUIRE_JACK=1)."""
    if require_jack():
        pytest.fail(f"{reason} (NEURALBAND_REQUIRE_JACK=1)")
    pytest.skip(reason)


def jack_running() -> bool:
    """Whether a JACK server answers (jack_lsp exits 0 only when it can connect)."""
    import shutil
    import subprocess

    if shutil.which("jack_lsp") is None:
        return False
    return subprocess.run(["jack_lsp"], capture_output=True, timeout=10).returncode == 0


@pytest.fixture(scope="session")
def jack_server():
    """A running JACK server: the one already up (CI starts it), or a dummy-driver server started
    here for the session where jackd is installed; otherwise the test skips (fails under
    NEURALBAND_REQUIRE_JACK=1) naming the Debian package."""
    import shutil
    import subprocess
    import time

    if jack_running():
        yield None
        return
    if shutil.which("jackd") is None:
        jack_missing("JACK is not installed (Debian: apt-get install jackd2)")
    proc = subprocess.Popen(["jackd", "--no-realtime", "-d", "dummy", "-r", "48000", "-p", "128"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        if jack_running():
            break
        time.sleep(0.1)
    else:
        proc.kill()
        jack_missing("jackd --no-realtime -d dummy did not start")
    yield proc
    proc.terminate()
    proc.wait(timeout=10)
