"""MIDI ports: the one module that talks to python-rtmidi (ALSA sequencer and JACK on Linux).

The engine gets raw message bytes with a ``time.perf_counter()`` arrival stamp and parses them
itself (with mido, elsewhere); nothing here builds mido objects. Every failure the user can cause
(no server, no such port, an ambiguous name) is a ``PortError`` with one readable line.

python-rtmidi does not notice a device that goes away (rtmidi issues #98, #61): ``alive()`` polls
whether the remote port is still listed and ``reopen()`` connects again once it is back.

Costs measured on jackd2 1.9.21 (dummy driver, 48 kHz / 128 frames; 2-core Intel Xeon): one
``alive()`` poll (a ``jack_get_ports`` round trip to the server) takes 50-70 us, negligible every
0.5 s from the real-time thread; one ``send()`` of 3 bytes (a copy into rtmidi's 16 KB JACK ring
buffer, drained each cycle; no server round trip) takes 0.3-3 us. Bursts of up to 2,000 messages
arrived whole; of 4,000 sent at once about 1,500 arrived, with no error. Opening a port
(a JACK client, plus two listings to learn our own port's name) takes 60-150 ms, ``list_ports()``
about 50 ms and ``available_apis()`` about 16 ms: keep them out of the real-time loop.

On JACK, rtmidi calls the input callback from JACK's process thread, which must then take the
GIL: keep the callback short (stamp and enqueue), or a busy Python thread delays the JACK cycle.
When a client misses its cycle (xrun), receivers can see that period's events a second time.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import rtmidi

APIS: dict[str, int] = {
    "alsa": rtmidi.API_LINUX_ALSA,
    "jack": rtmidi.API_UNIX_JACK,
    "coremidi": rtmidi.API_MACOSX_CORE,
    "winmm": rtmidi.API_WINDOWS_MM,
}
_API_TITLES = {"alsa": "ALSA", "jack": "JACK", "coremidi": "CoreMIDI", "winmm": "Windows MM"}
# Preference order of default_api(): JACK where a server runs, else the OS's own MIDI system.
_DEFAULT_ORDER = ("jack", "alsa", "coremidi", "winmm")
_DIRECTIONS = {"in": "input", "out": "output"}
_NO_API_HELP = (
    "no usable MIDI system: start a JACK server (e.g. `jackd -d alsa`, or "
    "`jackd --no-realtime -d dummy` without a sound card) or load the ALSA sequencer "
    "(`sudo modprobe snd-seq`)"
)
_PROBE_CLIENT = "neuralband-probe"


class PortError(Exception):
    """A MIDI port problem the user can fix; the message is one readable line."""


@dataclass(frozen=True)
class PortInfo:
    """One MIDI port as the system lists it; ``index`` is rtmidi's index within its direction."""

    api: str
    direction: str  # "in": a port we can read from (a source); "out": one we can send to
    index: int
    name: str


# Full names of the ports this process opened itself, per API: list_ports leaves them out.
_own_ports: dict[str, set[str]] = {}
_own_lock = threading.Lock()


@contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Silence fd 2 at the C level: libjack and alsa-lib print there when no server answers."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _api_id(api: str) -> int:
    try:
        return APIS[api]
    except KeyError:
        raise PortError(f"unknown MIDI API {api!r}; choose one of: {', '.join(APIS)}") from None


def _new(cls: type, api: str, client: str) -> Any:
    """A new rtmidi MidiIn/MidiOut on ``api``; PortError (not C noise) when it cannot start."""
    api_id = _api_id(api)
    if api_id not in rtmidi.get_compiled_api():
        raise PortError(f"this python-rtmidi was built without {_API_TITLES[api]} support")
    if api == "alsa" and not os.path.exists("/dev/snd/seq"):
        raise PortError("the ALSA sequencer is not available (/dev/snd/seq is missing): "
                        "load it with `sudo modprobe snd-seq`, or start a JACK server")
    try:
        with _quiet_stderr():
            return cls(api_id, client)
    except rtmidi.RtMidiError as e:
        if api == "jack":
            raise PortError("no JACK server is running: start one (e.g. `jackd -d alsa`, or "
                            "`jackd --no-realtime -d dummy`) or use --midi-api alsa") from None
        raise PortError(f"cannot open {_API_TITLES[api]} MIDI: {e}") from None


def _delete(midi: Any) -> None:
    """Close an rtmidi object's port and its client now (not whenever it is collected)."""
    midi.close_port()
    midi.delete()


def available_apis() -> list[str]:
    """The MIDI APIs compiled into python-rtmidi that work right now (a JACK server answers, the
    ALSA sequencer device exists), in preference order; probing prints nothing."""
    usable = []
    for api in _DEFAULT_ORDER:
        try:
            midi = _new(rtmidi.MidiIn, api, _PROBE_CLIENT)
        except PortError:
            continue
        midi.delete()
        usable.append(api)
    return usable


def default_api() -> str:
    """"jack" where a JACK server runs, else the OS's MIDI system (ALSA on Linux); PortError with
    what to start when there is none."""
    apis = available_apis()
    if not apis:
        raise PortError(_NO_API_HELP)
    return apis[0]


def _own(api: str) -> set[str]:
    with _own_lock:
        return set(_own_ports.get(api, ()))


def _listing(api: str, direction: str) -> list[str]:
    """Every port rtmidi lists for one API and direction (ours included), by a throwaway client."""
    midi = _new(rtmidi.MidiIn if direction == "in" else rtmidi.MidiOut, api, _PROBE_CLIENT)
    try:
        return midi.get_ports()
    finally:
        midi.delete()


def list_ports(api: str | None = None) -> list[PortInfo]:
    """The MIDI ports of one API, or of every usable API when None; this process's own ports are
    left out (they would only ever loop back into ourselves)."""
    apis = [api] if api is not None else available_apis()
    if not apis:
        raise PortError(_NO_API_HELP)  # no MIDI system at all: what to start, in one line
    ports = []
    for a in apis:
        own = _own(a)
        for direction in ("in", "out"):
            for index, name in enumerate(_listing(a, direction)):
                if name not in own:
                    ports.append(PortInfo(a, direction, index, name))
    return ports


def format_ports(ports: list[PortInfo]) -> str:
    """A readable table of ports (API, direction, index, name); one line when there are none."""
    if not ports:
        return ("no MIDI ports: plug in a keyboard or start a synth (e.g. `fluidsynth -a jack "
                "-m jack` on JACK), or play with `neuralband play --virtual`, which makes "
                "ports others connect to")
    rows = [("API", "DIRECTION", "INDEX", "NAME")]
    rows += [(_API_TITLES.get(p.api, p.api), _DIRECTIONS[p.direction], str(p.index), p.name)
             for p in ports]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    return "\n".join(
        f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:>{widths[2]}}  {r[3]}" for r in rows)


def find_port(names: list[str], wanted: str, direction: str) -> int:
    """The index of ``wanted`` in ``names``: an exact match, else the one name containing it
    (case-insensitively); PortError naming the candidates when none or several match."""
    kind = _DIRECTIONS[direction]
    if wanted in names:
        return names.index(wanted)
    low = wanted.lower()
    hits = [i for i, n in enumerate(names) if low in n.lower()]
    if len(hits) == 1:
        return hits[0]
    if hits:
        matches = ", ".join(names[i] for i in hits)
        raise PortError(f"MIDI {kind} name {wanted!r} is ambiguous; it matches: {matches}")
    here = ", ".join(names) if names else "none"
    raise PortError(f"no MIDI {kind} matching {wanted!r}; {kind}s here: {here}")


def pick_port(names: list[str], ask: Callable[[str], str], say: Callable[[str], None],
              kind: str = "input") -> str:
    """A player's pick among several ports (``play`` without --in, on a terminal): the list
    numbered, then a number, a name or part of one; Enter takes the first. Three wrong answers
    are a PortError; end of input (Ctrl-D) is a KeyboardInterrupt."""
    say(f"MIDI {kind}s here:")
    for k, name in enumerate(names, 1):
        say(f"  {k}. {name}")
    for _ in range(3):
        try:
            answer = ask(f"which {kind}? [1-{len(names)}, Enter: 1] ").strip()
        except EOFError:
            raise KeyboardInterrupt from None
        if not answer:
            return names[0]
        if answer.isdigit() and 1 <= int(answer) <= len(names):
            return names[int(answer) - 1]
        try:
            return names[find_port(names, answer, "in" if kind == "input" else "out")]
        except PortError as err:
            say(str(err))
    raise PortError(f"no MIDI {kind} chosen: name one with --in")


def _mark_own(api: str, names: set[str], own: bool) -> None:
    with _own_lock:
        ports = _own_ports.setdefault(api, set())
        if own:
            ports |= names
        else:
            ports -= names


_P = TypeVar("_P", bound="_Port")


class _Port:
    """What MidiInput and MidiOutput share: opening by name or virtually, polling, reopening."""

    _direction = "in"  # the direction of the remote ports this kind connects to
    _cls: type = rtmidi.MidiIn

    def __init__(self, name: str | None, api: str | None, virtual: bool, client: str) -> None:
        if virtual and name is not None:
            raise ValueError("a virtual port has no remote port name; others connect to it")
        self.api = api if api is not None else default_api()
        self.virtual = virtual
        self.client = client
        self.port_name: str | None = None  # the remote port we connect to (None when virtual)
        self.own_ports: set[str] = set()  # full names of our own port(s), e.g. "neuralband-01:in"
        self._wanted = name
        self._midi: Any = _new(self._cls, self.api, client)
        self._local = "in" if self._direction == "in" else "out"
        try:
            self._setup()
            self._open()
        except BaseException:
            midi, self._midi = self._midi, None
            self._before_close_midi(midi)
            _delete(midi)
            raise

    def _setup(self) -> None:
        pass

    def _open(self) -> None:
        """Open the virtual port, or connect to the remote one; learn our own port's full name."""
        # Our port shows up in the other direction's listing: an input's local port is a sink.
        other = "out" if self._direction == "in" else "in"
        before = set(_listing(self.api, other))
        if self.virtual:
            try:
                self._midi.open_virtual_port(self._local)
            except (rtmidi.UnsupportedOperationError, NotImplementedError):
                raise PortError(f"{_API_TITLES[self.api]} has no virtual MIDI ports; connect to "
                                "an existing port by name (e.g. a loopMIDI port)") from None
        else:
            names = self._midi.get_ports()
            if self._wanted is None:
                own = _own(self.api)
                choices = [i for i, n in enumerate(names) if n not in own]
                if not choices:
                    kind = _DIRECTIONS[self._direction]
                    raise PortError(f"no MIDI {kind}s to connect to on {_API_TITLES[self.api]}: "
                                    f"plug one in, or play with --virtual, which makes our own "
                                    f"{kind} for others to connect to")
                index = choices[0]
            else:
                index = self._find(names)
            self.port_name = names[index]
            try:
                self._midi.open_port(index, self._local)
            except rtmidi.RtMidiError as e:  # e.g. it went away since it was listed
                kind = _DIRECTIONS[self._direction]
                raise PortError(f"cannot open MIDI {kind} {self.port_name!r}: {e}") from None
        new = set(_listing(self.api, other)) - before
        mine = {n for n in new if n.startswith(self.client)}
        if len(mine) > 1:  # another client of ours appeared at the same moment: narrow by name
            mine = {n for n in mine if self._local in n.rsplit(":", 1)[-1]} or mine
        self.own_ports = mine
        _mark_own(self.api, mine, True)

    def _find(self, names: list[str]) -> int:
        own = _own(self.api)
        visible = [n for n in names if n not in own]
        return names.index(visible[find_port(visible, self._wanted, self._direction)])

    def alive(self) -> bool:
        """Whether the remote port is still listed (a virtual port always is); cheap enough to
        poll from the real-time thread every half second."""
        midi = self._midi
        if midi is None:
            return False
        if self.virtual:
            return True
        return self.port_name in midi.get_ports()

    def reopen(self) -> bool:
        """Connect again to the remote port once it is listed again; True when connected."""
        midi = self._midi
        if midi is None:
            return False
        if self.virtual:
            return True
        names = midi.get_ports()
        if self.port_name not in names:
            return False
        try:
            self._reconnect(midi, names.index(self.port_name))
        except rtmidi.RtMidiError:  # gone again since it was listed: try on the next poll
            return False
        return True

    def _reconnect(self, midi: Any, index: int) -> None:
        midi.close_port()
        midi.open_port(index, self._local)

    def close(self) -> None:
        """Close the port and its client; safe to call twice."""
        midi, self._midi = self._midi, None
        if midi is None:
            return
        self._before_close_midi(midi)
        _delete(midi)
        _mark_own(self.api, self.own_ports, False)

    def _before_close_midi(self, midi: Any) -> None:
        pass

    def __enter__(self: _P) -> _P:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def where(self) -> str:
        """The remote port we are connected to, or our own virtual port's full name (what
        another program connects to: JACK renames a second client of one name, so the output's
        is 'neuralband-01:out' beside 'neuralband:in')."""
        if self.virtual:
            return "virtual " + (", ".join(sorted(self.own_ports)) or self._local)
        return str(self.port_name)

    def __repr__(self) -> str:
        state = "closed" if self._midi is None else self.api
        return f"<{type(self).__name__} {self.where!r} ({state})>"


class MidiInput(_Port):
    """Receive MIDI: ``callback(time.perf_counter() at arrival, raw message bytes)`` runs on
    rtmidi's thread for every message except active sensing, sysex and (unless ``timing``)
    clock."""

    _direction = "in"
    _cls = rtmidi.MidiIn

    def __init__(self, callback: Callable[[float, list[int]], None], name: str | None = None,
                 api: str | None = None, virtual: bool = False,
                 client: str = "neuralband", timing: bool = False) -> None:
        self._callback = callback
        self._timing = timing  # pass MIDI clock, start, stop and song position on (--clock midi)
        super().__init__(name, api, virtual, client)

    def _setup(self) -> None:
        self._midi.ignore_types(sysex=True, timing=not self._timing, active_sense=True)
        callback, clock = self._callback, time.perf_counter

        def arrived(event: tuple[list[int], float], _data: object = None) -> None:
            callback(clock(), event[0])

        self._arrived = arrived
        self._midi.set_callback(arrived)

    def _reconnect(self, midi: Any, index: int) -> None:
        # python-rtmidi's close_port() drops the callback (later messages would only queue up):
        # cancel it first (mido#368), reconnect, and set it again.
        midi.cancel_callback()
        midi.close_port()
        midi.set_callback(self._arrived)
        midi.open_port(index, self._local)

    def _before_close_midi(self, midi: Any) -> None:
        # The callback goes first: closing with it set can crash in rtmidi (mido#368).
        midi.cancel_callback()


class MidiOutput(_Port):
    """Send raw MIDI bytes to a port (or to whoever connects to our virtual one)."""

    _direction = "out"
    _cls = rtmidi.MidiOut

    def __init__(self, name: str | None = None, api: str | None = None, virtual: bool = False,
                 client: str = "neuralband") -> None:
        super().__init__(name, api, virtual, client)

    # JACK hands sent messages to the server in its next process cycle: a port closed right
    # after the last note-offs would drop them (a stuck note). Closing waits this long after
    # the last send (several periods even at 1024 frames / 48 kHz).
    DRAIN_S = 0.05

    def send(self, data: list[int] | bytes) -> None:
        """Send one message's raw bytes (the fast path: no mido object)."""
        midi = self._midi
        if midi is None:
            raise PortError("the MIDI output is closed")
        midi.send_message(data)
        self._last_send = time.perf_counter()

    def _before_close_midi(self, midi: Any) -> None:
        wait = getattr(self, "_last_send", -1e9) + self.DRAIN_S - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
