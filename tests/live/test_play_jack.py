"""`neuralband play` end to end on a real JACK server (dummy driver) with real outside clients.

The keyboard is Debian's `jack_midiseq` (a looping sequencer client), the listener is
`jack_midi_dump`, and the instrument runs as its own process, stopped by real signals.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import mido
import pytest

from tests.helpers.data import DATA
from tests.helpers.jack import (
    close_listener,
    dumped,
    keyboard,
    left_sounding,
    listener,
    neuralband,
    stop,
    unmatched,
    until_playing,
)

pytestmark = pytest.mark.usefixtures("jack_server")


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


@pytest.mark.slow
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
        first = until_playing(proc)
        time.sleep(7.0)  # two loops of the phrase and the answers to them, once it plays
        assert proc.poll() is None, proc.communicate()
        out, err = stop(proc, sig)
        err = first + err
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
        first = until_playing(proc)
        time.sleep(3.0)
        kbd.kill()  # the keyboard is unplugged mid-performance
        out, err = proc.communicate(timeout=20)
        err = first + err
    finally:
        kbd.kill()
        proc.kill()
        close_listener(dump)
    assert proc.returncode == 1
    assert "disappeared" in err and "Traceback" not in err
    sent = dumped(dump_path)
    assert any(m[0] == 0x90 for m in sent)
    assert not left_sounding(sent)


@pytest.mark.slow
def test_a_keyboard_that_comes_back_is_reconnected(names, tmp_path):
    kbd_name, dump_name = names
    dump = listener(dump_name, tmp_path / "dump.txt")
    kbd = keyboard(kbd_name)
    proc = neuralband("play", "--api", "jack", "--in", kbd_name, "--out", dump_name,
                      "--mode", "call")
    try:
        until_playing(proc)
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
        first = until_playing(proc)
        listed = subprocess.run(["jack_lsp"], capture_output=True, text=True).stdout.split()
    finally:
        stop(proc)
        proc.kill()
    found = re.search(r"in 'virtual ([^']+)', out 'virtual ([^']+)'", first)
    assert found, first
    assert found[1] in listed and found[2] in listed
    assert found[1].endswith(":in") and found[2].endswith(":out")


def thread_policies(pid: int) -> tuple[tuple[int, int], int | None]:
    """(policy, priority) of a process's main thread, and the highest real-time priority among
    its other threads (JACK's process thread, when the server runs real-time), or None."""
    main, top = None, None
    for tid in sorted(int(t) for t in os.listdir(f"/proc/{pid}/task")):
        policy = os.sched_getscheduler(tid) & ~os.SCHED_RESET_ON_FORK
        priority = os.sched_getparam(tid).sched_priority
        if tid == pid:
            main = (policy, priority)
        elif policy in (os.SCHED_FIFO, os.SCHED_RR):
            top = priority if top is None else max(top, priority)
    return main, top


@pytest.fixture
def realtime_jack():
    """A private JACK server with real-time scheduling on (jackd's default), for the tests that
    need its process threads real-time: its name, for JACK_DEFAULT_SERVER."""
    name = f"nbrt{os.getpid()}"
    env = dict(os.environ, JACK_DEFAULT_SERVER=name)
    proc = subprocess.Popen(["jackd", "-n", name, "-d", "dummy", "-r", "48000", "-p", "128"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    for _ in range(100):
        if subprocess.run(["jack_lsp"], capture_output=True, env=env).returncode == 0:
            break
        time.sleep(0.1)
    else:
        proc.kill()
        pytest.skip("a real-time jackd did not start here (no CAP_SYS_NICE or rtprio limit)")
    yield name
    proc.terminate()
    proc.wait(timeout=10)


def play_start_line(*flags: str, env: dict | None = None) -> tuple[str, tuple, int | None]:
    """`play --virtual` until its start lines (where it plays, then how: the precision and the
    scheduling granted); the lines, and its threads' scheduling then."""
    proc = neuralband("play", "--api", "jack", "--virtual", "--mode", "solo", *flags, env=env)
    try:
        first = until_playing(proc)
        first += proc.stderr.readline()  # the next line says what scheduling was granted
        main, top = thread_policies(proc.pid)
    finally:
        stop(proc)
        proc.kill()
    return first, main, top


def test_the_loop_runs_real_time_below_a_real_time_jack_s_thread(realtime_jack):
    """Under a real-time JACK server, `play`'s loop thread (its main thread) runs SCHED_FIFO one
    step below JACK's process thread, which runs the MIDI callback, and the start line says so."""
    env = dict(os.environ, JACK_DEFAULT_SERVER=realtime_jack)
    first, main, top = play_start_line(env=env)
    assert top is not None, "JACK's process thread should run real-time under this server"
    assert main == (os.SCHED_FIFO, max(1, top - 1)), (main, top)
    assert f"real-time scheduling SCHED_FIFO {max(1, top - 1)}" in first, first
    first, main, _ = play_start_line("--no-realtime", env=env)
    assert main[0] == os.SCHED_OTHER and "real-time scheduling off" in first, first


def test_the_loop_stays_ordinary_beside_an_ordinary_midi_thread(jack_server):
    """Under a JACK server without real-time (CI's, jackd --no-realtime) the loop does not ask:
    a real-time loop woken by an ordinary thread that holds the GIL waits for it. Said so."""
    first, main, top = play_start_line()
    if top is None:
        assert main[0] == os.SCHED_OTHER, main
        assert "real-time scheduling off (the MIDI thread is not real-time" in first, first
    else:  # this machine's server runs real-time: the other test's case
        assert main == (os.SCHED_FIFO, max(1, top - 1)), (main, top)


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
    chorale = DATA / "chorales" / "bwv10.7.mid"
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


@pytest.mark.slow
def test_duet_with_the_bundled_duet_model(names, tmp_path):
    """You lead, the SATB duet model answers with three voices, each on its own channel."""
    kbd_name, dump_name = names
    dump_path = tmp_path / "dump.txt"
    dump = listener(dump_name, dump_path)
    kbd = keyboard(kbd_name, loop_s=1.2)  # the phrase over and over: the player never stops
    proc = neuralband("play", "--api", "jack", "--in", kbd_name, "--out", dump_name,
                      "--model", "duet", "--mode", "duet", "--channel", "2", "--seed", "3")
    try:
        first = until_playing(proc)
        time.sleep(5.0)
        assert proc.poll() is None, proc.communicate()
        out, err = stop(proc)
        err = first + err
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


@pytest.mark.slow
def test_a_session_played_in_is_kept_as_a_take_and_listed(names, tmp_path):
    """play keeps the session as a take (both parts, beside a note of the model and settings);
    `neuralband takes` lists it; --no-takes keeps nothing."""
    kbd_name, dump_name = names
    dump = listener(dump_name, tmp_path / "dump.txt")
    kbd = keyboard(kbd_name, loop_s=1.2)
    takes = tmp_path / "takes"
    try:
        for extra in ([], ["--no-takes"]):
            proc = neuralband("play", "--api", "jack", "--in", kbd_name, "--out", dump_name,
                              "--mode", "solo", "--seconds", "3", "--takes", str(takes), *extra)
            _, err = proc.communicate(timeout=60)
            assert proc.returncode == 0, err
    finally:
        kbd.kill()
        close_listener(dump)
    kept = sorted(takes.glob("*.mid"))
    assert len(kept) == 1 and "kept this take" not in err  # the second run kept none
    note = json.loads(kept[0].with_suffix(".json").read_text())
    assert note["model"] == "pop" and note["mode"] == "solo" and note["player_notes"] >= 4
    tracks = mido.MidiFile(kept[0]).tracks
    assert [t.name for t in tracks] == ["player", "band"]
    listed = subprocess.run([sys.executable, "-m", "neuralband", "takes", "--takes", str(takes)],
                            capture_output=True, text=True, timeout=60)
    assert kept[0].name in listed.stdout and "1 take(s)" in listed.stdout, listed


@pytest.mark.slow
def test_the_band_learns_the_player_while_it_plays(names, tmp_path):
    """play --learn-me: rounds of learning while the band answers the keyboard, a new version
    taken in at a pause and kept at the end as a model that plays; nothing left sounding."""
    kbd_name, dump_name = names
    dump_path = tmp_path / "dump.txt"
    dump = listener(dump_name, dump_path)
    kbd = keyboard(kbd_name, loop_s=2.5)  # four notes, then a pause the band answers in
    takes = tmp_path / "takes"
    try:
        proc = neuralband("play", "--api", "jack", "--in", kbd_name, "--out", dump_name,
                          "--mode", "call", "--wait", "0.5", "--seconds", "50", "--seed", "3",
                          "--takes", str(takes), "--learn-me", "--learn-every", "8",
                          "--learn-steps", "3")
        _, err = proc.communicate(timeout=240)
    finally:
        kbd.kill()
        close_listener(dump)
    assert proc.returncode == 0, err
    assert "learning you as you play" in err
    learnt = re.search(r"learnt: (\S+) \(version (\d+);", err)
    assert learnt and int(learnt.group(2)) >= 1, err
    assert re.search(rf"v{learnt.group(2)} learnt on [\d.]+ min", err), err  # the status line
    model = json.loads((Path(learnt.group(1)) / "model.json").read_text())
    assert model["summary"]["tuned"]["command"] == "play --learn-me"
    sent = dumped(dump_path)
    assert not left_sounding(sent), f"stuck notes: {left_sounding(sent)}"
    made = subprocess.run([sys.executable, "-m", "neuralband", "generate", "--model",
                           learnt.group(1), "--seconds", "2", "-o", str(tmp_path / "g.mid")],
                          capture_output=True, text=True, timeout=120)
    assert made.returncode == 0, made.stderr
