"""``play --synth``: hear the band at once. FluidSynth (the program Debian's ``fluidsynth``
package brings, with a General MIDI soundfont) is started for the session, its MIDI input takes
the band's output, and its audio goes to the system's output: on JACK its ports are connected
to the system's playback ports, on ALSA it plays through PulseAudio where that runs, else ALSA.
It stops with the session. Many keyboards are controllers with no sound of their own: with
``--thru`` the player's notes sound too.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

from neuralband.fluidsynth import AuditionError, find_fluidsynth, find_soundfont

READY_S = 15.0  # a 140 MB soundfont takes a moment to load
GAIN = 0.6


class SynthError(ValueError):
    """The synth cannot start: one line, naming what to install."""


class Synth:
    """FluidSynth for one session: `port` is its MIDI input (for the band's output), `where`
    says in words where its sound goes; `close` stops it."""

    def __init__(self, api: str, soundfont: str | os.PathLike | None = None,
                 name: str | None = None):
        name = name or f"neuralband-synth-{os.getpid()}"  # one per session, found by name
        try:
            program, sf2 = find_fluidsynth(), find_soundfont(soundfont)
        except AuditionError as err:
            raise SynthError(f"--synth: {err}") from None
        self.api, self.name, self.soundfont = api, name, Path(sf2)
        if api == "jack":
            audio = "jack"
            options = ["-a", "jack", "-m", "jack", "-j", "-o", f"midi.jack.id={name}",
                       "-o", f"audio.jack.id={name}"]
        else:
            audio = "pulseaudio" if _pulse_runs() else "alsa"
            options = ["-a", audio, "-m", "alsa_seq", "-o", f"midi.alsa_seq.id={name}"]
        self.audio = audio
        # FluidSynth's shell keeps it running while its stdin is open (-i would let it exit at
        # once with nothing to play); nothing is ever typed into it.
        self.process = subprocess.Popen(
            [program, *options, "-q", "-g", str(GAIN), str(sf2)], stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            self.port = self._wait_for_port()
        except SynthError:
            self.close()
            raise

    def _wait_for_port(self) -> str:
        from neuralband.live.ports import list_ports

        end = time.monotonic() + READY_S
        while time.monotonic() < end:
            if self.process.poll() is not None:
                why = (self.process.stderr.read() or "").strip().splitlines()
                raise SynthError("--synth: fluidsynth stopped: "
                                 + (why[-1] if why else f"exit status {self.process.returncode}"))
            for port in list_ports(self.api):
                if port.direction == "out" and self.name in port.name:
                    return port.name
            time.sleep(0.1)
        raise SynthError(f"--synth: fluidsynth's MIDI input did not appear in {READY_S:g} s")

    @property
    def where(self) -> str:
        """Where the sound goes, for the start line."""
        out = ("JACK's system playback ports" if self.api == "jack"
               else "PulseAudio" if self.audio == "pulseaudio" else "the ALSA default device")
        return f"FluidSynth {self.name} ({self.soundfont.name}) -> {out}"

    def close(self) -> None:
        """Stop FluidSynth (after the band's last NOTE_OFFs have gone out to it)."""
        if self.process.poll() is None:
            try:
                self.process.stdin.close()
            except OSError:
                pass
            self.process.terminate()
            try:
                self.process.wait(timeout=3)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stderr is not None:
            self.process.stderr.close()


def _pulse_runs() -> bool:
    """Whether a PulseAudio (or PipeWire-Pulse) server answers here."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if os.environ.get("PULSE_SERVER") or (runtime and Path(runtime, "pulse", "native").exists()):
        return True
    pactl = shutil.which("pactl")
    return bool(pactl) and subprocess.run([pactl, "info"], capture_output=True,
                                          timeout=2).returncode == 0
