"""The JACK harness: outside clients (jack_midiseq as a keyboard, jack_midi_dump as a listener, a
python-rtmidi controller), the instrument as its own process, and readers of what they heard."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.helpers.data import skip_unless_required

RATE = 48_000  # the dummy driver's sample rate, as the jack_server fixture starts it

PLAYER_CH = 1  # the controller's notes on channel 2; the band plays on channel 1 (0 here)
PHRASE = (60, 64, 67, 64)  # what the controller plays


def jack_missing(reason: str) -> None:
    """JACK is missing: skip, or fail under NEURALBAND_REQUIRE_JACK=1 (as CI sets it)."""
    skip_unless_required(reason, "NEURALBAND_REQUIRE_JACK")


def jack_running() -> bool:
    """Whether a JACK server answers (jack_lsp exits 0 only when it can connect)."""
    import shutil
    import subprocess

    if shutil.which("jack_lsp") is None:
        return False
    return subprocess.run(["jack_lsp"], capture_output=True, timeout=10).returncode == 0



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


def hex_bytes(text: str) -> list[int]:
    """The leading two-digit hex fields of a jack_midi_dump line's message ("90 3c 40 note on")."""
    raw = []
    for f in text.split():
        if len(f) != 2:
            break
        try:
            raw.append(int(f, 16))
        except ValueError:
            break
    return raw


def dumped(path: Path) -> list[list[int]]:
    """The raw messages jack_midi_dump printed ("frames: 90 3c 40 note on ...")."""
    msgs = []
    for line in path.read_text().splitlines():
        if ":" not in line:
            continue
        raw = hex_bytes(line.split(":", 1)[1])
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


def until_playing(proc: subprocess.Popen, timeout: float = 30.0) -> str:
    """The instrument's stderr up to its start line ("neuralband: playing ..."), said once its
    ports are open: a test times what it plays from there, not from a start that a loaded
    machine can stretch by seconds (importing torch, loading the model). One that has not
    started playing within ``timeout`` is killed, and the caller's assertions say so."""
    lines = ""
    watchdog = threading.Timer(timeout, proc.kill)  # a blocked readline ends at the kill's EOF
    watchdog.start()
    try:
        while "neuralband: playing" not in lines:
            line = proc.stderr.readline()
            if not line:
                break  # it exited (or was killed) before it played
            lines += line
    finally:
        watchdog.cancel()
    return lines


def stop(proc: subprocess.Popen, sig: int = signal.SIGINT) -> tuple[str, str]:
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=20)
    return out, err


class Controller:
    """A JACK MIDI client with one output port, connected to the instrument's input and to the
    listener, so that the listener hears what the controller sent when, beside the band."""

    def __init__(self, name: str):
        import rtmidi

        self.name = name
        self.out = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, name=name)
        self.out.open_virtual_port("out")
        wait_for_port(f"{name}:out")

    def connect(self, port: str) -> None:
        """Connect, and return once the server lists the connection and a few periods have
        run on it: a message sent at once could otherwise leave before the graph has it."""
        subprocess.run(["jack_connect", f"{self.name}:out", port], check=True)
        end = time.monotonic() + 10.0
        while port not in subprocess.run(["jack_lsp", "-c", f"{self.name}:out"],
                                         capture_output=True, text=True).stdout:
            if time.monotonic() > end:
                raise AssertionError(f"{self.name}:out never showed its connection to {port}")
            time.sleep(0.02)
        time.sleep(0.1)

    def send(self, *data: int) -> None:
        self.out.send_message(list(data))

    def phrase(self, until: float) -> None:
        """C E G E, a note every 0.25 s, until ``until`` (time.monotonic)."""
        i = 0
        while time.monotonic() < until:
            pitch = PHRASE[i % len(PHRASE)]
            self.send(0x90 | PLAYER_CH, pitch, 80)
            time.sleep(0.2)
            self.send(0x80 | PLAYER_CH, pitch, 0)
            time.sleep(0.05)
            i += 1

    def close(self) -> None:
        self.out.close_port()
        del self.out


def timed_listener(name: str, path: Path) -> subprocess.Popen:
    proc = start(["stdbuf", "-oL", "jack_midi_dump", "-a", name], out=path.open("w"))
    wait_for_port(f"{name}:input")
    return proc


def timed(path: Path) -> list[tuple[float, list[int]]]:
    """(seconds on the listener's clock, raw message) per line of ``jack_midi_dump -a``."""
    msgs = []
    for line in path.read_text().splitlines():
        frame, sep, rest = line.partition(":")
        if not sep or not frame.strip().isdigit():
            continue
        raw = hex_bytes(rest)
        if len(raw) == 3 or (len(raw) == 1 and raw[0] >= 0xF8):  # notes, CCs; clock, start
            msgs.append((int(frame) / RATE, raw))
    return msgs


def wait_for_line(proc: subprocess.Popen, words: str, timeout: float = 30.0) -> list[str]:
    """Read the instrument's stderr until a line holds ``words``; the lines read."""
    lines, end = [], time.monotonic() + timeout
    while time.monotonic() < end:
        line = proc.stderr.readline()
        if not line:
            if proc.poll() is not None:
                break
            continue
        lines.append(line)
        if words in line:
            return lines
    raise AssertionError(f"never said {words!r}: {''.join(lines)}")


def read_lines(proc: subprocess.Popen, words: str, timeout: float) -> list[str]:
    """The process's stderr lines for up to ``timeout`` seconds, until one holds ``words``;
    read from the pipe itself (select cannot see what a buffered reader already holds)."""
    import select

    fd, lines, rest = proc.stderr.fileno(), [], b""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if not select.select([fd], [], [], max(0.0, end - time.monotonic()))[0]:
            break
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        *done, rest = (rest + chunk).split(b"\n")
        lines += [line.decode() + "\n" for line in done]
        if any(words in line for line in lines):
            break
    return lines + ([rest.decode()] if rest else [])


def play_with(ctl: str, dump: str, *args: str) -> subprocess.Popen:
    return neuralband("play", "--api", "jack", "--in", ctl, "--out", dump, "--seed", "2",
                      *args)


@contextmanager
def controlled(ctl_name: str, dump_name: str, path: Path,
               *args: str) -> Iterator[tuple[Controller, subprocess.Popen]]:
    """A listener writing to ``path``, a controller, and `neuralband play ARGS` between them:
    yields (controller, instrument); on the way out the instrument is killed (a no-op once it
    has exited: never leave one running) and both clients are closed."""
    dump = timed_listener(dump_name, path)
    ctl = Controller(ctl_name)
    proc = play_with(ctl_name, dump_name, *args)
    try:
        yield ctl, proc
    finally:
        proc.kill()
        ctl.close()
        close_listener(dump)


def osc_state(port: int) -> dict:
    from pythonosc.osc_message import OscMessage
    from pythonosc.osc_message_builder import OscMessageBuilder

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(3.0)
        s.sendto(OscMessageBuilder(address="/neuralband/state").build().dgram,
                 ("127.0.0.1", port))
        reply = OscMessage(s.recvfrom(65536)[0])
    return dict(zip(reply.params[::2], reply.params[1::2], strict=True))
