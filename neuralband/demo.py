"""`neuralband demo`: the live instrument on a machine with no keyboard.

A built-in player plays real phrases (the soprano of the bundled Bach chorale) into the engine as
if from a keyboard; the bundled model answers each phrase in call-and-response. Where a JACK
server runs, the player is a real JACK client and the notes cross the server into
`neuralband.live.ports`; elsewhere the player calls the engine's input directly. The session is then
written as a two-track MIDI file, a piano roll and (where FluidSynth is installed) a WAV.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from neuralband.encoders.midi_io import read_notes
from neuralband.live.clock import sleep_until
from neuralband.live.engine import Engine
from neuralband.live.turns import PlaySettings
from neuralband.modelfile import bundled_model
from neuralband.roundtrip import bundled_example
from neuralband.runtime import Stepper
from neuralband.sampling import model_rules

PHRASE_S = 4.0  # the player's phrases
ANSWER_S = 4.0  # the band's answers
WAIT_S = 0.8  # silence before the band answers


@dataclass
class DemoResult:
    route: str  # "jack" or "in-process"
    midi: Path
    pianoroll: Path
    wav: Path | None
    wav_missing: str | None  # why there is no WAV
    player_notes: int
    band_notes: int
    status: str
    files: list[Path] = field(default_factory=list)


def top_voice(source: str | os.PathLike) -> tuple[np.ndarray, ...]:
    """(start_s, end_s, pitch, velocity) of the part with the highest mean pitch: a melody."""
    table = read_notes(source)
    groups = np.unique(table.group)
    top = groups[int(np.argmax([table.pitch[table.group == g].mean() for g in groups]))]
    sel = table.group == top
    return table.start_s[sel], table.end_s[sel], table.pitch[sel], table.velocity[sel]


def phrases(source: str | os.PathLike, count: int = 3) -> list[tuple[float, list[int]]]:
    """The top voice's first ``count`` phrases of PHRASE_S seconds, each followed by room for
    an answer: (time, raw message) in playing order."""
    start, end, pitch, vel = top_voice(source)
    msgs: list[tuple[float, list[int]]] = []
    at = 0.5
    for k in range(count):
        lo, hi = k * PHRASE_S, (k + 1) * PHRASE_S
        for s, e, p, v in zip(start, end, pitch, vel, strict=True):
            if lo <= s < hi:
                msgs.append((at + s - lo, [0x90, int(p), int(v)]))
                msgs.append((at + min(e, hi) - lo - 0.01, [0x80, int(p), 0]))
        at += PHRASE_S + WAIT_S + ANSWER_S + 0.5
    return sorted(msgs, key=lambda m: m[0])


def _jack_running() -> bool:
    from neuralband.live.ports import available_apis

    return "jack" in available_apis()


class ScriptedPlayer(threading.Thread):
    """Plays (seconds, raw message) pairs on time from `start()`, into a port's send or straight
    into an engine; ``t0`` is when it began."""

    def __init__(self, messages: list[tuple[float, list[int]]],
                 send: Callable[[list[int]], None]) -> None:
        super().__init__(daemon=True)
        self.messages, self.send = messages, send
        self.t0 = 0.0

    def run(self) -> None:
        self.t0 = time.perf_counter()
        for t, data in self.messages:
            sleep_until(self.t0 + t)
            self.send(data)


class _JackPlayer:
    """The built-in player as an outside JACK client: a child process with its own port."""

    port = "neuralband-demo-player:out"

    def __init__(self, messages: list[tuple[float, list[int]]]) -> None:
        import json
        import subprocess
        import sys

        self.proc = subprocess.Popen(
            [sys.executable, "-c", "from neuralband.demo import _player_main; _player_main()"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(json.dumps(messages) + "\n")
        self.proc.stdin.flush()
        if self.proc.stdout.readline().strip() != "ready":
            self.close()
            raise RuntimeError("the demo player could not open its JACK port")

    def start(self) -> None:
        assert self.proc.stdin
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()


def _player_main() -> None:
    """The child: open a JACK output named like `_JackPlayer.port`, play on "go"."""
    import json
    import sys

    from neuralband.live.ports import MidiOutput

    messages = json.loads(sys.stdin.readline())
    keys = MidiOutput(virtual=True, api="jack", client="neuralband-demo-player")
    print("ready", flush=True)
    sys.stdin.readline()
    ScriptedPlayer(messages, keys.send).run()
    time.sleep(0.2)
    keys.close()


def melody_label(melody: str | os.PathLike | None) -> str:
    """What the built-in player plays, in words: the chorale's soprano, or a file's top line."""
    return "the chorale's soprano" if melody is None else f"the top line of {Path(melody).name}"


def run_demo(out_dir: str | os.PathLike = "out", melody: str | os.PathLike | None = None,
             jack: bool | None = None, seed: int = 1, soundfont: str | None = None,
             count: int = 3, synth: bool = False,
             say: Callable[[str], None] | None = None) -> DemoResult:
    """Play the built-in player against the bundled model; write MIDI, piano roll and WAV.
    With ``synth`` both parts are heard as they play (`neuralband.live.synth`, the player's
    notes echoed to it), ``say`` told where the sound goes."""
    from neuralband.audition import AuditionError, draw_pianoroll, render_wav
    from neuralband.live.takes import write_recording

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    messages = phrases(melody or bundled_example(), count)
    settings = PlaySettings(mode="call", wait_s=WAIT_S, answer_s=ANSWER_S, thru=synth)
    use_jack = _jack_running() if jack is None else jack
    sink: list[list[int]] = []  # in-process, the band's output goes nowhere but the recording
    stepper = Stepper.load(bundled_model())
    rules = model_rules(stepper.info, None, temperature=0.9, top_p=0.95, max_polyphony=6)
    engine = Engine(stepper, sink.append, settings, rules, seed=seed, record=True)
    seconds = messages[-1][0] + WAIT_S + ANSWER_S + 0.7
    ports: list = []
    sound = None
    try:
        if synth:  # both parts heard: the band into FluidSynth, the player's notes echoed
            from neuralband.live.ports import MidiOutput, default_api
            from neuralband.live.synth import Synth

            api = "jack" if use_jack else default_api()
            sound = Synth(api, soundfont)
            if say is not None:
                say(f"sound: {sound.where}")
            band = MidiOutput(name=sound.port, api=api, client="neuralband-demo")
            ports.append(band)
            engine.out.send = band.send
        if use_jack:  # the player is a real JACK client in its own process
            from neuralband.live.ports import MidiInput, MidiOutput

            player = _JackPlayer(messages)
            ports.append(player)
            ports.append(MidiInput(engine.receive, name=player.port, api="jack",
                                   client="neuralband-demo"))
            if not synth:
                band = MidiOutput(virtual=True, api="jack", client="neuralband-demo")
                ports.append(band)
                engine.out.send = band.send
        else:
            player = ScriptedPlayer(messages, lambda d: engine.receive(time.perf_counter(), d))
        player.start()
        engine.run(seconds)
    finally:
        engine.close()
        for port in reversed(ports):
            port.close()
        if sound is not None:
            sound.close()
    from neuralband.live.session import status_line

    midi = write_recording(engine, out / "demo-session.mid")
    roll = draw_pianoroll([midi], out / "demo-session.png",
                          titles=[f"neuralband demo: player ({melody_label(melody)}) and the "
                                  "band"])
    wav, missing = None, None
    try:
        wav = render_wav(midi, out / "demo-session.wav", soundfont)
    except AuditionError as err:
        missing = str(err)
    rec = engine.recording or []
    return DemoResult(
        route="jack" if use_jack else "in-process", midi=midi, pianoroll=Path(roll), wav=wav,
        wav_missing=missing,
        player_notes=sum(1 for _, who, d in rec if who == "player" and d[0] & 0xF0 == 0x90
                         and d[2] > 0),
        band_notes=sum(1 for _, who, d in rec if who == "band" and d[0] & 0xF0 == 0x90),
        status=status_line(engine))
