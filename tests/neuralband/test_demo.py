"""`neuralband demo` end to end: the built-in player, the bundled model, MIDI + WAV + PNG."""

from __future__ import annotations

import os
import subprocess
import sys
import wave

import matplotlib.image
import mido
import pytest

from tests.helpers.jack import jack_missing


def run_demo(tmp_path, *flags: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "neuralband", "demo", "--phrases", "1",
                           "-o", str(tmp_path), *flags], capture_output=True, text=True,
                          timeout=120)


def check_session(tmp_path, res: subprocess.CompletedProcess, route: str) -> None:
    assert res.returncode == 0, res.stderr
    assert f"via {route}" in res.stdout
    take = mido.MidiFile(tmp_path / "demo-session.mid")
    ons = [[m for m in t if m.type == "note_on" and m.velocity > 0] for t in take.tracks]
    assert len(ons[0]) >= 5, "the player's phrase is missing"
    assert ons[1], "the band did not answer"
    # Every band note ends.
    held: dict[int, int] = {}
    for m in take.tracks[1]:
        if m.type in ("note_on", "note_off"):
            up = m.type == "note_on" and m.velocity > 0
            held[m.note] = held.get(m.note, 0) + (1 if up else -1 if held.get(m.note) else 0)
    assert not any(held.values())
    png = matplotlib.image.imread(tmp_path / "demo-session.png")
    assert png.shape[1] > 600 and (png[..., :3] < 0.99).mean() > 0.01
    wav_path = tmp_path / "demo-session.wav"
    if "no WAV" in res.stdout:
        reason = "FluidSynth is missing: " + res.stdout.split("no WAV:")[1].strip()
        if os.environ.get("NEURALBAND_REQUIRE_AUDITION") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    with wave.open(str(wav_path)) as w:
        seconds = w.getnframes() / w.getframerate()
    assert abs(seconds - take.length) < 0.6


@pytest.mark.slow
def test_demo_in_process(tmp_path):
    check_session(tmp_path, run_demo(tmp_path, "--no-jack"), "in-process")


@pytest.mark.slow
def test_demo_announces_the_melody_it_was_given(tmp_path):
    """`demo --melody FILE` plays and names that file, not the chorale's soprano."""
    from tests.helpers.data import CHORALES

    res = run_demo(tmp_path, "--no-jack", "--melody", str(CHORALES[1]))
    assert res.returncode == 0, res.stderr
    first = res.stdout.splitlines()[0]
    assert f"the top line of {CHORALES[1].name}" in first and "soprano" not in first


@pytest.mark.slow
def test_demo_through_jack(tmp_path, jack_server):
    res = run_demo(tmp_path, "--jack")
    if "could not" in res.stderr:
        jack_missing(res.stderr.strip())
    check_session(tmp_path, res, "jack")
