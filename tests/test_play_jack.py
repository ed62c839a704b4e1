"""`neuralband play` end to end on a real JACK server (dummy driver) with real outside clients.

The keyboard is Debian's `jack_midiseq` (a looping sequencer client), the listener is
`jack_midi_dump`, and the instrument runs as its own process, stopped by real signals.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import mido
import pytest

pytestmark = pytest.mark.usefixtures("jack_server")

RATE = 48_000  # the dummy driver's sample rate, as the jack_server fixture starts it


def start(cmd: list[str], out=subprocess.DEVNULL, **kw) -> subprocess.Popen:
    return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT if out is not
                            subprocess.DEVNULL else subprocess.DEVNULL, **kw)


def wait_for_port(name: str, timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if name in subprocess.run(["jack_lsp"], capture_output=True, text=True).stdout:
            return
        time.sleep(0.05)
    raise AssertionError(f"JACK port {name} never appeared")


def keyboard(name: str, loop_s: float = 4.0) -> subprocess.Popen:
    """jack_midiseq looping a short phrase (C4 E4 G4 E4, 0.2 s each) then a pause."""
    notes = []
    for i, pitch in enumerate((60, 64, 67, 64)):
        notes += [str(int(i * 0.25 * RATE)), str(pitch), str(int(0.2 * RATE))]
    proc = start(["jack_midiseq", name, str(int(loop_s * RATE)), *notes])
    wait_for_port(f"{name}:out")
    return proc


def listener(name: str, path: Path) -> subprocess.Popen:
    proc = start(["stdbuf", "-oL", "jack_midi_dump", name], out=path.open("w"))
    wait_for_port(f"{name}:input")
    return proc


def close_listener(dump: subprocess.Popen) -> None:
    """Let the last messages arrive, then stop jack_midi_dump (SIGINT flushes its output)."""
    time.sleep(0.2)
    dump.send_signal(signal.SIGINT)
    dump.wait(timeout=10)


def dumped(path: Path) -> list[list[int]]:
    """The raw messages jack_midi_dump printed ("frames: 90 3c 40 note on ...")."""
    msgs = []
    for line in path.read_text().splitlines():
        if ":" not in line:
            continue
        fields = line.split(":", 1)[1].split()
        raw = []
        for f in fields:
            if len(f) != 2:
                break
            try:
                raw.append(int(f, 16))
            except ValueError:
                break
        if len(raw) == 3:
            msgs.append(raw)
    return msgs


def left_sounding(msgs: list[list[int]]) -> set[tuple[int, int]]:
    """(channel, pitch) whose last message the listener saw is a NOTE_ON.

    A JACK client that misses its cycle on a loaded machine without real-time scheduling loses
    that period's MIDI (jackd logs "was not finished"), so the listener may miss an early
    message; what matters to the ear is that each pitch's last word is a NOTE_OFF.
    """
    last: dict[tuple[int, int], bool] = {}
    for status, pitch, vel in msgs:
        if status & 0xF0 in (0x80, 0x90):
            last[(status & 0x0F, pitch)] = status & 0xF0 == 0x90 and vel > 0
        elif status & 0xF0 == 0xB0 and pitch == 123:  # All Notes Off on that channel
            last = {key: False if key[0] == status & 0x0F else on for key, on in last.items()}
    return {key for key, on in last.items() if on}


def unmatched(msgs: list[list[int]]) -> Counter:
    held: Counter = Counter()
    for status, pitch, vel in msgs:
        key = (status & 0x0F, pitch)
        if status & 0xF0 == 0x90 and vel > 0:
            held[key] += 1
        elif status & 0xF0 in (0x80, 0x90) and held[key]:
            held[key] -= 1
    return +held


def neuralband(*args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "neuralband", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def stop(proc: subprocess.Popen, sig: int = signal.SIGINT) -> tuple[str, str]:
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=20)
    return out, err


@pytest.fixture
def names(request):
    tag = f"{os.getpid()}{request.node.name[-6:]}".replace("[", "").replace("]", "")
    return f"nbkbd{tag}", f"nbdump{tag}"


def test_ports_lists_the_outside_clients(names):
    kbd_name, dump_name = names
    kbd = keyboard(kbd_name)
    try:
        res = subprocess.run([sys.executable, "-m", "neuralband", "ports", "--api", "jack"],
                             capture_output=True, text=True, timeout=30)
    finally:
        kbd.kill()
    assert res.returncode == 0, res.stderr
    assert f"{kbd_name}:out" in res.stdout


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_play_answers_and_releases_every_note_on_a_signal(names, tmp_path, sig):
    kbd_name, dump_name = names
    dump_path = tmp_path / "dump.txt"
    dump = listener(dump_name, dump_path)
    kbd = keyboard(kbd_name, loop_s=3.0)
    record = tmp_path / "take.mid"
    proc = neuralband("play", "--api", "jack", "--in", kbd_name, "--out", dump_name,
                      "--mode", "call", "--wait", "0.4", "--answer", "1.5", "--seed", "1",
                      "--record", str(record))
    try:
        time.sleep(7.0)  # two loops of the phrase and the answers to them
        assert proc.poll() is None, proc.communicate()
        out, err = stop(proc, sig)
    finally:
        kbd.kill()
        proc.kill()  # a no-op when it has exited; never leave an instrument running
        close_listener(dump)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    sent = dumped(dump_path)
    band_on = [m for m in sent if m[0] == 0x90 and m[2] > 0]
    assert band_on, f"no answer reached jack_midi_dump; stderr: {err}"
    assert not left_sounding(sent), f"stuck notes: {left_sounding(sent)}"
    take = mido.MidiFile(record)
    band = [m.bytes() for m in take.tracks[1] if m.type in ("note_on", "note_off")]
    assert not unmatched(band), "the instrument itself left notes open"
    assert [t.name for t in take.tracks] == ["player", "band"]
    player_ons = [m for m in take.tracks[0] if m.type == "note_on" and m.velocity > 0]
    assert {m.note for m in player_ons} == {60, 64, 67}
    recorded = sum(m.type == "note_on" and m.velocity > 0 for m in take.tracks[1])
    # Everything the instrument sent reached the listener, but for what JACK dropped when a
    # client missed its cycle (this machine runs JACK without real-time scheduling).
    assert 0.8 * recorded <= len(band_on) <= recorded + 2


def test_a_killed_keyboard_is_reported_and_the_band_stops_clean(names, tmp_path):
    kbd_name, dump_name = names
    dump_path = tmp_path / "dump.txt"
    dump = listener(dump_name, dump_path)
    kbd = keyboard(kbd_name, loop_s=2.0)
    proc = neuralband("play", "--api", "jack", "--in", kbd_name, "--out", dump_name,
                      "--mode", "solo", "--on-loss", "exit", "--seed", "2")
    try:
        time.sleep(3.0)
        kbd.kill()  # the keyboard is unplugged mid-performance
        out, err = proc.communicate(timeout=20)
    finally:
        kbd.kill()
        proc.kill()
        close_listener(dump)
    assert proc.returncode == 1
    assert "disappeared" in err and "Traceback" not in err
    sent = dumped(dump_path)
    assert any(m[0] == 0x90 for m in sent)
    assert not left_sounding(sent)


def test_a_keyboard_that_comes_back_is_reconnected(names, tmp_path):
    kbd_name, dump_name = names
    dump = listener(dump_name, tmp_path / "dump.txt")
    kbd = keyboard(kbd_name)
    proc = neuralband("play", "--api", "jack", "--in", kbd_name, "--out", dump_name,
                      "--mode", "call")
    try:
        time.sleep(2.0)
        kbd.kill()
        kbd.wait()
        time.sleep(1.5)
        kbd = keyboard(kbd_name)
        time.sleep(1.5)
        out, err = stop(proc)
    finally:
        kbd.kill()
        proc.kill()
        close_listener(dump)
    assert "disappeared; waiting" in err
    assert "is back" in err
    assert proc.returncode == 0


def test_virtual_ports_are_named_as_they_are_on_the_start_line():
    """`play --virtual` says which ports others connect to, by the names JACK gave them (the
    output's client is renamed, 'neuralband-01'), and those ports exist."""
    proc = neuralband("play", "--api", "jack", "--virtual", "--mode", "solo", "--seed", "1")
    try:
        first = ""
        end = time.monotonic() + 30
        while "playing" not in first and time.monotonic() < end:
            first = proc.stderr.readline() or first
        listed = subprocess.run(["jack_lsp"], capture_output=True, text=True).stdout.split()
    finally:
        stop(proc)
        proc.kill()
    found = re.search(r"in 'virtual ([^']+)', out 'virtual ([^']+)'", first)
    assert found, first
    assert found[1] in listed and found[2] in listed
    assert found[1].endswith(":in") and found[2].endswith(":out")


def test_a_missing_port_is_one_line_listing_the_ports(names):
    kbd_name, _ = names
    kbd = keyboard(kbd_name)
    try:
        res = subprocess.run([sys.executable, "-m", "neuralband", "play", "--api", "jack",
                              "--in", "no-such-keyboard"], capture_output=True, text=True,
                             timeout=30)
    finally:
        kbd.kill()
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "no-such-keyboard" in lines[0] and kbd_name in lines[0]


def test_audition_plays_a_file_to_a_port_and_ctrl_c_leaves_nothing_sounding(names, tmp_path):
    _, dump_name = names
    chorale = Path(__file__).parent / "data" / "chorales" / "bwv10.7.mid"
    dump_path = tmp_path / "dump.txt"
    dump = listener(dump_name, dump_path)
    proc = neuralband("audition", str(chorale), "--play", dump_name, "--api", "jack")
    try:
        time.sleep(3.0)
        assert proc.poll() is None, proc.communicate()
        out, err = stop(proc)  # Ctrl-C in the middle of the chorale, chords sounding
    finally:
        proc.kill()
        close_listener(dump)
    assert proc.returncode == 0, err
    assert "every note ended" in out and "Traceback" not in err
    sent = dumped(dump_path)
    assert sum(m[0] & 0xF0 == 0x90 and m[2] > 0 for m in sent) >= 8
    assert not left_sounding(sent)


def test_duet_with_the_bundled_duet_model(names, tmp_path):
    """You lead, the SATB duet model answers with three voices, each on its own channel."""
    kbd_name, dump_name = names
    dump_path = tmp_path / "dump.txt"
    dump = listener(dump_name, dump_path)
    kbd = keyboard(kbd_name, loop_s=1.2)  # the phrase over and over: the player never stops
    proc = neuralband("play", "--api", "jack", "--in", kbd_name, "--out", dump_name,
                      "--model", "duet", "--mode", "duet", "--channel", "2", "--seed", "3")
    try:
        time.sleep(5.0)
        assert proc.poll() is None, proc.communicate()
        out, err = stop(proc)
    finally:
        kbd.kill()
        proc.kill()
        close_listener(dump)
    assert proc.returncode == 0, err
    sent = dumped(dump_path)
    band_on = [m for m in sent if m[0] & 0xF0 == 0x90 and m[2] > 0]
    assert band_on, f"the band never played; stderr: {err}"
    assert {m[0] & 0x0F for m in band_on} <= {1, 2, 3}  # band voices 1-3 on channels 2-4
    assert not left_sounding(sent), f"stuck notes: {left_sounding(sent)}"
