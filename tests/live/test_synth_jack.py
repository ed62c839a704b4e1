"""play --synth on a real JACK server (dummy driver): FluidSynth started by neuralband, the band
played into it, its audio ports carrying sound while the band plays and silence after panic;
the synth stopped with the session. Skipped without JACK or FluidSynth (failed under
NEURALBAND_REQUIRE_JACK / NEURALBAND_REQUIRE_AUDITION)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
import wave
from pathlib import Path

import numpy as np
import pytest

from tests.helpers.jack import Controller, neuralband, stop, wait_for_line

pytestmark = pytest.mark.usefixtures("jack_server")


@pytest.fixture
def synth_ready():
    from neuralband.fluidsynth import AuditionError, find_fluidsynth, find_soundfont

    try:
        find_fluidsynth()
        find_soundfont()
    except AuditionError as err:
        if os.environ.get("NEURALBAND_REQUIRE_AUDITION"):
            pytest.fail(str(err))
        pytest.skip(str(err))
    if shutil.which("jack_rec") is None:
        pytest.skip("jack_rec (JACK's example clients) records the synth's ports")


def record(ports: list[str], seconds: float, path: Path) -> np.ndarray:
    """What JACK ``ports`` carry for ``seconds`` (jack_rec: an outside client)."""
    subprocess.run(["jack_rec", "-f", str(path), "-d", str(seconds), *ports], check=True,
                   capture_output=True, timeout=seconds + 20)
    with wave.open(str(path), "rb") as w:
        width = w.getsampwidth()
        raw = w.readframes(w.getnframes())
    kind = {2: "<i2", 4: "<i4"}[width]
    return np.frombuffer(raw, dtype=kind).astype(np.float64) / (2 ** (8 * width - 1))


def rms(audio: np.ndarray) -> float:
    return float(np.sqrt(np.mean(audio ** 2))) if audio.size else 0.0


@pytest.mark.slow
def test_synth_sounds_while_the_band_plays_and_falls_silent_after_panic(synth_ready, tmp_path):
    name = f"nbsyn{os.getpid()}"
    ctl = Controller(name)
    proc = neuralband("play", "--api", "jack", "--in", name, "--synth", "--mode", "solo",
                      "--seed", "3", "--map", "note40=panic")
    try:
        lines = wait_for_line(proc, "sound: FluidSynth", timeout=60)
        client = re.search(r"FluidSynth (\S+) \(", lines[-1])[1]
        ports = [f"{client}:left", f"{client}:right"]
        listed = subprocess.run(["jack_lsp", "-c"], capture_output=True, text=True).stdout
        assert f"{client}:left\n   system:playback_1" in listed  # to the system's output
        ctl.phrase(time.monotonic() + 2.0)  # the player plays; in solo the band plays on
        playing = record(ports, 2.0, tmp_path / "playing.wav")
        ctl.send(0x90, 40, 100)  # the panic pad: every note off, the band rests
        ctl.send(0x80, 40, 0)
        time.sleep(2.0)  # FluidSynth's release tails die away
        after = record(ports, 1.0, tmp_path / "after.wav")
        out, err = stop(proc)
    finally:
        proc.kill()
        ctl.close()
    assert rms(playing) > 1e-3, rms(playing)
    assert rms(after) < rms(playing) / 30, (rms(after), rms(playing))
    assert proc.returncode == 0, err
    time.sleep(0.5)
    left = subprocess.run(["jack_lsp"], capture_output=True, text=True).stdout
    assert client not in left  # the synth stopped with the session



@pytest.mark.slow
def test_the_demo_can_be_heard(synth_ready, tmp_path):
    """demo --synth: the same session, both parts into a FluidSynth it starts and stops."""
    done = subprocess.run([*neuralband_command(), "demo", "--synth", "--jack", "--phrases", "1",
                           "-o", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "sound: FluidSynth neuralband-synth-" in done.stdout
    assert (tmp_path / "demo-session.mid").is_file()
    client = re.search(r"FluidSynth (\S+) \(", done.stdout)[1]
    assert client not in subprocess.run(["jack_lsp"], capture_output=True, text=True).stdout


def neuralband_command() -> list[str]:
    import sys

    return [sys.executable, "-m", "neuralband"]
