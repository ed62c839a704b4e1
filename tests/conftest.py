"""Shared fixtures: real MIDI files nobody here wrote, and the reference implementation.

Real files: the Bach chorales in tests/data/chorales (exported from the music21 corpus) are always
here; MidiTok's test MIDI (piano performances with pedal, POP909, multitrack pop, a corrupt file)
come from MidiTok's source archive on PyPI, fetched once into a cache; 809 POP909 songs with their
annotated keys are shared at ../shared/data/pop909. Where a reference is missing
the tests that need it skip with the reason, and fail instead under NEURALBAND_REQUIRE_REFERENCE=1
(CI sets it).
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from tests.helpers.data import missing
from tests.helpers.jack import jack_missing, jack_running
from tests.helpers.realdata import MIDITOK_VERSION, fetch_miditok_tests, pop909_root

# `play` keeps a take of each session played in: the tests' (and their subprocesses') go to a
# folder of their own, never the user's, removed when the run ends.
os.environ["NEURALBAND_TAKES"] = tempfile.mkdtemp(prefix="neuralband-test-takes-")
atexit.register(shutil.rmtree, os.environ["NEURALBAND_TAKES"], ignore_errors=True)


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
