"""`neuralband play`: the engine between two real MIDI ports, until Ctrl-C.

This shell opens the ports, the model and the signal handlers, polls for lost ports, shows the
status line and writes the recording; the music is `neuralband.live.engine`. Whatever ends the
performance (Ctrl-C, SIGTERM, an error, a lost port with ``--on-loss exit``), the `finally`
detaches the input, releases every sounding note and only then closes the output.
"""

from __future__ import annotations

import os
import queue
import select
import signal
import sys
import threading
from collections.abc import Callable
from contextlib import ExitStack, closing
from dataclasses import dataclass
from pathlib import Path

from neuralband.live.beat import LiveBeat
from neuralband.live.clock import realtime_scheduling
from neuralband.live.engine import Engine
from neuralband.live.grid_engine import GridEngine, bpm_step_s, step_bpm
from neuralband.live.midimap import Source, learn, save_map
from neuralband.live.ports import MidiInput, MidiOutput, PortError
from neuralband.live.takes import keep_take, write_recording
from neuralband.live.turns import PlaySettings
from neuralband.loaded import LoadedModel, loaded
from neuralband.sampling import Rules
from neuralband.steering import ControlChoice

Performer = Engine | GridEngine  # the event engine, or a grid model's on a clock: one interface
POLL_S = 0.5  # the ports (and the learner) are looked at this often, between two turns
STATUS_S = 1.0  # the status line is redrawn this often


@dataclass(frozen=True)
class PortChoice:
    """Which ports to play between."""

    inp: str | None = None  # name or substring; None with virtual=False: the first input
    out: str | None = None
    virtual: bool = False  # make our own ports for others to connect to
    api: str | None = None  # "alsa" or "jack"; None: JACK if a server runs, else ALSA
    on_loss: str = "wait"  # a port vanished: "wait" for it to come back, or "exit"


def live_precision(precision: str) -> str:
    """``auto``: int8 where numba is installed (half the step's time, the live timing goal met
    only with it on the pop model: heard p99 2.6 ms against 41.9 ms in fp32), else fp32."""
    if precision != "auto":
        return precision
    try:
        import neuralband.int8  # noqa: F401 - raises ImportError without numba
    except ImportError:
        return "fp32"
    return "int8"


def status_line(engine: Performer, learner=None) -> str:
    """Mode, events/s, model step time, absorb latency and output timing error (p50/p99; a
    dash until the first measurement); with ``learner``, the version the band plays."""
    s, turns = engine.stats, engine.turns
    state = " ENDING" if engine.ending else " resting" if turns.resting else ""
    follower = getattr(engine, "follower", None)
    if follower is not None:  # an external MIDI clock, or a Link session
        bpm, peers = follower.bpm, getattr(follower, "peers", None)
        state += (f" | {'clock' if peers is None else 'link'} "
                  + ("-" if bpm is None else f"{bpm:.1f} bpm")
                  + ("" if follower.running else " stopped")
                  + (f", {follower.lost:+d} pulses from gaps" if follower.lost else "")
                  + ("" if peers is None else f", {peers} peers"))
    beat = getattr(engine, "beat", None)
    if beat is not None:
        state += " | " + beat.describe(engine.clock())
    if learner is not None:
        state += " | " + learner.describe()
    return (f"{engine.settings.mode}{state} | {engine.panel.summary()}"
            f" | in {s.absorbed} out {s.band_events} ev"
            f" | step {_p50_p99(s.step_s)} ms | absorb {_p50_p99(s.absorb_s)} ms"
            f" | timing {_p50_p99(s.timing_s, '+')} ms | sounding {engine.out.sounding}"
            f" | rt {engine.realtime.split(' (')[0]}")


def _p50_p99(ring, sign: str = "") -> str:
    if not ring.count:
        return "-"
    return f"{ring.percentile(50) * 1e3:{sign}.2f}/{ring.percentile(99) * 1e3:{sign}.2f}"


def _not_open(data: list[int]) -> None:
    raise RuntimeError("the output port is not open yet")


class PortWatch:
    """Polls both ports (python-rtmidi does not notice an unplugged device) and reconnects."""

    def __init__(self, engine: Performer, inp: MidiInput, out: MidiOutput, on_loss: str,
                 say: Callable[[str], None]):
        self.engine, self.inp, self.out, self.on_loss, self.say = engine, inp, out, on_loss, say
        self.in_lost = False
        self.out_lost = False
        self.lost_for_good = False

    def __call__(self) -> None:
        e = self.engine
        if e.output_ok and not self.out.alive():
            e.output_ok = False
        if not e.output_ok and not self.out_lost:
            self.out_lost = True
            e.out.forget()  # the synth went with its notes
            self._lost(f"output '{self.out.port_name}' disappeared")
        elif self.out_lost and self.out.reopen():
            self.out_lost = False
            e.output_ok = True
            self.say(f"output '{self.out.port_name}' is back")
        if not self.in_lost and not self.inp.alive():
            self.in_lost = True
            e.player_gone()
            self._lost(f"input '{self.inp.port_name}' disappeared")
        elif self.in_lost and self.inp.reopen():
            self.in_lost = False
            self.say(f"input '{self.inp.port_name}' is back")

    def _lost(self, what: str) -> None:
        if self.on_loss == "exit":
            self.say(f"{what}; stopping")
            self.lost_for_good = True
            self.engine.stop()
        else:
            self.say(f"{what}; waiting for it to come back (Ctrl-C to stop)")


def play(ports: PortChoice, model: LoadedModel | str | os.PathLike | None = None,
         settings: PlaySettings | None = None, rules: Rules | None = None,
         seed: int | None = None, record: str | os.PathLike | None = None,
         seconds: float | None = None, show_status: bool | None = None,
         client: str = "neuralband", bpm: float | None = None, grace_s: float | None = None,
         click: bool = False, precision: str = "auto",
         controls: ControlChoice | None = None, midi_map: dict[Source, str] | None = None,
         osc: tuple[str, int] | None = None, sync: str = "internal",
         clock_out: bool = False, view: tuple[str, int] | None = None,
         view_cells: str | None = None, realtime: bool = True, meter: int | None = None,
         osc_allow: tuple[str, ...] | None = None, synth: bool = False,
         soundfont: str | None = None,
         follow_beat: bool = True, takes: str | os.PathLike | None = None,
         make_learner: Callable | None = None) -> int:
    """Play until Ctrl-C / SIGTERM (or ``seconds``); the exit status (0 fine, 1 port lost).
    ``precision="int8"`` steps the model with int8 weights (`neuralband.int8`, needs numba);
    "auto" takes int8 where numba is installed (`live_precision`).
    A conditioned model keeps to ``controls`` (by default the key and pace the player plays).

    A grid model plays on a clock (`neuralband.live.grid_engine`): ``bpm`` sets its tempo (4 steps a
    beat; None: the model's), ``grace_s`` its decision delay, ``click`` a metronome.

    The live controls (`neuralband.live.panel`): ``midi_map`` maps knobs and pads on the input to
    them, ``osc`` (host, port) serves them over OSC (`neuralband.live.osc`).

    ``sync="midi"`` follows an external MIDI clock on the input (`neuralband.live.sync`): a grid
    model's steps are its sixteenths, an event model's wait and answer are beats of it;
    ``clock_out`` sends the grid band's own tempo as MIDI clock.

    ``view`` (host, port) serves the live view (`neuralband.live.view`) of ``view_cells``
    ("L:N,..."; None: the most active cells).

    ``realtime`` asks real-time scheduling for the loop's thread (`clock.realtime_scheduling`);
    the start and status lines say what was granted.

    A model that reads the beat (`neuralband.live.beat`) plays on the followed MIDI clock's
    beat, else ``bpm`` (bars of ``meter`` beats; ``click`` sounds it), else the player's taps,
    else the player's own beat, tracked; ``follow_beat=False``: no beat.

    ``takes`` (a folder): the session is kept there as a take where the player played
    (`neuralband.live.takes`).

    ``make_learner`` (`play --learn-me`): called with (model, engine, precision=...), it makes
    the `neuralband.live.learner.Learner` that teaches the band while the player plays; it is
    polled with the ports (saying what it has to say), shown on the status line and closed
    (keeping what it learnt) at the end. Chosen by the caller: the learner sits a layer above
    the session (it trains)."""
    def say(line: str) -> None:
        print(("\r\033[K" if show_status else "") + f"neuralband: {line}", file=sys.stderr,
              flush=True)

    settings = settings or PlaySettings()
    if show_status is None:
        show_status = sys.stderr.isatty()
    precision = live_precision(precision)
    learn = make_learner is not None
    keeping = record is not None or takes is not None or learn  # the engine records it
    model = loaded(model)
    stepper = model.stepper(precision=precision)
    rules = model.rules(rules)
    if model.scheme.plays == "clock":
        if controls is not None and controls != ControlChoice():
            raise ValueError("--key and --density are for models trained with --controls")
        grid = {} if grace_s is None else {"grace_s": grace_s}
        engine = GridEngine(stepper, _not_open, settings, rules, seed, record=keeping,
                            step_s=None if bpm is None else bpm_step_s(bpm), click=click,
                            sync=sync, clock_out=clock_out, **grid)
    elif sync == "link" and not stepper.reads_beat:
        raise ValueError("--link puts the band on the session's beat: a grid model, or a model "
                         "that reads the beat (trained with --beat); this one keeps no tempo")
    elif grace_s is not None or clock_out:
        raise ValueError("--grace-ms and --clock-out are for grid models (an event model "
                         "keeps no grid of steps)")
    elif not stepper.reads_beat and (bpm is not None or click or meter is not None):
        raise ValueError("--bpm, --meter and --click are for grid models and models that read "
                         "the beat (trained with --beat); this one keeps no tempo of its own")
    elif click and bpm is None:
        raise ValueError("--click sounds a --bpm beat: give --bpm too")
    else:
        beat = LiveBeat(meter or 4, bpm, follow=follow_beat) if stepper.reads_beat else None
        if beat is not None and not follow_beat and bpm is not None:
            raise ValueError("--beat free plays without a beat: leave out --bpm")
        engine = Engine(stepper, _not_open, settings, rules, seed, record=keeping,
                        controls=controls, sync=sync, beat=beat, click=click, keep_tokens=learn)
    engine.map_midi(midi_map or {})
    # The input first: the keyboard is what a player names, and its error lists the inputs.
    inp = MidiInput(engine.receive, name=ports.inp, api=ports.api, virtual=ports.virtual,
                    client=client, timing=sync == "midi")
    out = server = page = sound = None
    try:
        if synth:  # FluidSynth started for the band, its MIDI input our output
            if ports.out:
                raise ValueError("--synth plays the band on its own FluidSynth: leave out --out")
            from neuralband.live.synth import Synth

            sound = Synth(inp.api, soundfont)
            out = MidiOutput(name=sound.port, api=inp.api, client=client)
        else:
            out = MidiOutput(name=ports.out, api=ports.api, virtual=ports.virtual,
                             client=client)
        if osc is not None:
            from neuralband.live.osc import OscControl

            server = OscControl(engine.panel, *osc, say=say, allow=osc_allow)
        if view is not None:
            from neuralband.live.view import ViewServer, parse_cells

            page = ViewServer(engine, *view, say=say, cells=parse_cells(view_cells, stepper),
                              model=Path(model.name).name)
    except (PortError, ValueError):
        inp.close()
        if out is not None:
            out.close()
        if server is not None:
            server.close()
        if sound is not None:
            sound.close()
        raise
    engine.out.send = out.send
    watch = PortWatch(engine, inp, out, ports.on_loss, say)
    learner = None
    if learn:
        learner = make_learner(model, engine, precision=precision)
        try:
            learner.start()
        except OSError as err:
            say(f"learning is off: the learner could not start ({err})")
            learner = None
        if page is not None:
            page.learner = learner
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

    def on_signal(signum: int, frame: object) -> None:
        if engine.stopping:  # a second Ctrl-C: stop harder (the finally still runs)
            raise KeyboardInterrupt
        engine.stop(from_signal=True)

    for sig in previous:
        signal.signal(sig, on_signal)
    tempo = f", {step_bpm(engine.step_s):g} bpm" if isinstance(engine, GridEngine) else ""
    if getattr(engine, "beat", None) is not None:
        tempo = (f", {bpm:g} bpm" + (" with a click" if click else "") if bpm is not None
                 else ", on no beat" if not follow_beat else ", on the beat of your playing "
                 "(or your taps)")
    if sync == "midi":
        tempo = ", following the MIDI clock on the input"
    elif sync == "link":
        tempo = ", joining an Ableton Link session"
    elif clock_out:
        tempo += ", sending MIDI clock"
    scheduling = ExitStack()  # this thread runs the loop: its real-time scheduling, undone after
    try:
        if realtime:
            engine.realtime = scheduling.enter_context(realtime_scheduling())
        name = Path(model.name).name
        say(f"playing {name} ({settings.mode}{tempo}): in '{inp.where}', out '{out.where}'; "
            "Ctrl-C to stop")
        say(f"{precision} weights; real-time scheduling {engine.realtime}")
        steering = getattr(engine, "steering", None)
        if steering is not None:
            say(f"the band's {steering.choice.words()}")
        if midi_map:
            say("controls: " + ", ".join(f"{src} {name}" for src, name in midi_map.items()))
        if server is not None:
            host, port = server.address[:2]
            say(f"OSC on {host}:{port}: /neuralband/CONTROL value, /neuralband/state")
        if page is not None:
            say(f"the view: {page.url}")
        if sound is not None:
            say(f"sound: {sound.where}" + ("; your notes too (--thru)" if settings.thru else
                                           "; add --thru to hear your own notes"))
        if learner is not None:
            say(f"learning you as you play: each {learner.every_notes} notes, a new version "
                "comes in at a pause" + (f" (also from {', '.join(learner.learn_from)})"
                                         if learner.learn_from else ""))
        shown = engine.clock()  # the first status line a second in, then every second
        with closing(engine.running(seconds, every_s=POLL_S)) as turns:
            for now in turns:  # between two turns, in the loop's thread
                watch()
                news = None if learner is None else learner.poll()
                if news is not None:
                    say(news)
                if show_status and now - shown >= STATUS_S:
                    print("\r\033[K" + status_line(engine, learner), end="", file=sys.stderr,
                          flush=True)
                    shown = now
    finally:
        scheduling.close()
        inp.close()  # the callback is detached first, then the port closed
        if server is not None:
            server.close()
        unsent = engine.close()
        if page is not None:
            page.close()  # after the band's last NOTE_OFFs, which the pages see too
        out.close()
        if sound is not None:
            sound.close()  # after the band's last NOTE_OFFs reached it
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if show_status:
            print(file=sys.stderr)
        say(status_line(engine, learner)
            + (f" | {unsent} note-offs could not be sent" if unsent else ""))
        if learner is not None:
            news = learner.news()  # what went wrong after the last look
            if news is not None:
                say(news)
            kept = learner.close()
            say(f"learnt: {kept} (version {engine.version}; --model {kept} plays it)" if kept
                else "nothing learnt: no new version came in before the end")
        if record is not None:
            say(f"recorded {write_recording(engine, record)} (track 1 player, track 2 band)")
        if takes is not None:
            kept = keep_take(engine, takes, {
                "model": Path(model.name).name, "model_sha256": model.info.sha256,
                "mode": settings.mode, "temperature": rules.temperature, "top_p": rules.top_p,
                "bpm": bpm, "seed": seed})
            if kept is not None:
                say(f"kept this take: {kept} (neuralband takes lists them)")
    return 1 if watch.lost_for_good else 0


def learn_controls(ports: PortChoice, path: str | os.PathLike, client: str = "neuralband",
                   names: tuple[str, ...] | None = None) -> Path:
    """``play --learn FILE``: ask for each control in turn on the terminal, take the first knob
    or pad that moves on the input as its source, and write the map file for ``--map-file``.
    Enter skips a control; Ctrl-C stops and writes nothing."""
    path = Path(path)
    if path.exists():
        raise ValueError(f"{path} exists; name a new file (or delete it first)")
    inbox: queue.SimpleQueue[list[int]] = queue.SimpleQueue()
    inp = MidiInput(lambda t, data: inbox.put(data), name=ports.inp, api=ports.api,
                    virtual=ports.virtual, client=client)
    skips = threading.Semaphore(0)

    def read_enter() -> None:  # a line on the terminal skips the control being asked for
        while True:
            try:
                ready = select.select([sys.stdin], [], [], 0.2)[0]
            except (OSError, ValueError):
                return
            if ready:
                if not sys.stdin.readline():
                    return  # end of input: no more skips
                skips.release()

    def next_message(timeout: float) -> list[int] | None:
        try:
            return inbox.get(timeout=timeout)
        except queue.Empty:
            return None

    def say(line: str) -> None:
        print(f"neuralband: {line}", file=sys.stderr, flush=True)

    threading.Thread(target=read_enter, daemon=True).start()
    say(f"learning controls from '{inp.where}' (Ctrl-C stops, writing nothing)")
    try:
        pairs = learn(next_message, say, lambda: skips.acquire(blocking=False), names=names)
    finally:
        inp.close()
    if not pairs:
        raise ValueError("no control was learnt; nothing written")
    save_map(pairs, path)
    say(f"wrote {path} ({len(pairs)} controls): neuralband play --map-file {path}")
    return path
