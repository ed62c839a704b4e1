"""The panel over OSC: ``/neuralband/CONTROL value`` sets a control, ``/neuralband/state`` is
answered with every control's value, to the address that asked.

One UDP socket read by its own thread (python-osc parses and builds the messages); it only
writes the panel (`Panel.set`), so the engine never waits for it. A message that is not OSC, has
an unknown address, the wrong type or a value out of range is ignored with one log line (a flood
of them: the first, then a count once a second), never an exception in the engine.

Bound to loopback (the default) only this machine can steer the band. Bound beyond it (a phone
or a second laptop on stage), anyone on the network could press panic: the senders that may are
named (``--osc-allow``), and a message from any other is ignored with a log line.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable

from neuralband.live.panel import TRIGGER, Panel, control
from neuralband.live.ratelog import RateLog

PREFIX = "/neuralband/"
STATE = PREFIX + "state"
DEFAULT_HOST = "127.0.0.1"
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def is_loopback(host: str) -> bool:
    """Whether only this machine can reach ``host``."""
    import ipaddress

    if host in LOOPBACK:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_allow(text: str | None) -> tuple[str, ...] | None:
    """``--osc-allow 192.168.1.20,192.168.1.21`` -> the senders' addresses (resolved)."""
    if text is None:
        return None
    hosts = []
    for name in filter(None, (h.strip() for h in text.split(","))):
        try:
            hosts.append(socket.gethostbyname(name))
        except OSError:
            raise ValueError(f"--osc-allow: no such host {name!r}") from None
    if not hosts:
        raise ValueError("--osc-allow names the senders that may steer the band: HOST[,HOST]")
    return tuple(hosts)


def parse_address(text: str) -> tuple[str, int]:
    """``9000`` or ``HOST:9000`` -> (host, port); loopback unless a host is named."""
    host, _, port = str(text).rpartition(":")
    try:
        number = int(port)
    except ValueError:
        raise ValueError(f"--osc takes PORT or HOST:PORT (e.g. 9000), not {text!r}") from None
    if not 0 <= number <= 65535:
        raise ValueError(f"an OSC port is 0..65535, got {number}")
    return host or DEFAULT_HOST, number


class OscControl:
    """Serve the panel on a UDP port until `close`."""

    def __init__(self, panel: Panel, host: str = DEFAULT_HOST, port: int = 9000,
                 say: Callable[[str], None] = print, log_every_s: float = 1.0,
                 allow: tuple[str, ...] | None = None):
        if not is_loopback(host) and not allow:
            raise ValueError(f"--osc on {host} lets anyone on the network steer the band: name "
                             "the senders that may with --osc-allow HOST[,HOST]")
        self.panel = panel
        self.allow = None if allow is None else set(allow)
        self._bad = RateLog(say, "OSC", log_every_s)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        # Room for a burst (a controller's fader sends dozens of messages at once).
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        try:
            self.sock.bind((host, port))
        except OSError as err:
            self.sock.close()
            raise ValueError(f"cannot listen for OSC on {host}:{port}: "
                             f"{err.strerror or err}") from None
        self.sock.settimeout(0.1)
        self.address = self.sock.getsockname()
        self.received = 0
        self._closing = False
        self.thread = threading.Thread(target=self._serve, name="neuralband-osc", daemon=True)
        self.thread.start()

    def close(self) -> None:
        self._closing = True
        self.thread.join(timeout=2)
        self.sock.close()

    def _serve(self) -> None:
        from pythonosc.osc_packet import OscPacket, ParseError

        while not self._closing:
            self._bad.flush()  # the count of a burst, a second after its first line
            try:
                data, client = self.sock.recvfrom(65536)
            except TimeoutError:
                continue
            except OSError:
                if self._closing:
                    return
                continue
            self.received += 1
            if self.allow is not None and client[0] not in self.allow:
                self._bad(f"a message from {client[0]}, not a sender --osc-allow names")
                continue
            try:
                messages = [m.message for m in OscPacket(data).messages]
            except ParseError:
                self._bad(f"{len(data)} bytes that are not an OSC message")
                continue
            except Exception as err:  # python-osc on bytes it did not foresee
                self._bad(f"an unreadable OSC packet ({err})")
                continue
            for message in messages:
                try:
                    self._message(message.address, list(message.params), client)
                except ValueError as err:
                    self._bad(f"{message.address} {message.params}: {err}")
                except Exception as err:  # never let one message end the server
                    self._bad(f"{message.address}: {type(err).__name__}: {err}")

    def _message(self, address: str, args: list, client: tuple[str, int]) -> None:
        if not address.startswith(PREFIX):
            raise ValueError(f"not a neuralband address (they start {PREFIX})")
        if address == STATE:
            self._reply(client)
            return
        c = control(address[len(PREFIX):])
        if len(args) > 1:
            raise ValueError(f"{c.name} takes one value, got {len(args)}")
        if c.kind == TRIGGER:
            if args and not _truthy(args[0]):
                return  # a button's release
            self.panel.set(c.name)
            return
        if not args:
            raise ValueError(f"{c.name} needs a value")
        self.panel.set(c.name, args[0])

    def _reply(self, client: tuple[str, int]) -> None:
        from pythonosc.osc_message_builder import OscMessageBuilder

        b = OscMessageBuilder(address=STATE)
        for name, value in self.panel.state().items():
            b.add_arg(name)
            b.add_arg(value)
        self.sock.sendto(b.build().dgram, client)

    @property
    def ignored(self) -> int:
        return self._bad.count


def _truthy(value: object) -> bool:
    try:
        return float(value) != 0  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return bool(value)
