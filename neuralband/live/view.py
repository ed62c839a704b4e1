"""The live view: ``play --view`` serves a page that shows the band while it plays.

The page (``neuralband/live/web/``, served by the package itself, nothing fetched at run time)
draws a scrolling piano roll (the player's notes and each band voice in its own colour, the
band's next planned events ahead of the now-line), the entropy of every draw the band made (how
sure it was), a heat strip of the LSTM's most active cells, and the live controls, which act
through the same panel as MIDI maps and OSC (`neuralband.live.panel`).

Two sides, so that the engine never waits for a page:

- `ViewFeed` (`neuralband.live.view_feed`) is the engine's: one tuple appended to a bounded
  deque per note (no lock, no I/O).
- `ViewServer` is a thread with its own asyncio loop (the ``websockets`` library: HTTP for the
  page, a websocket at ``/ws``). Every `POLL_S` it turns new notes into one JSON message each,
  every `FRAME_S` it adds a state frame (controls, entropy, cells, plan), and it puts them on each
  page's own bounded queue: a page that falls behind loses messages (counted), it never holds
  the engine or the other pages up. A page opened late gets the last `KEEP_S` of notes first.

What a page sends is ``{"set": CONTROL, "value": V}`` (a trigger needs no value); anything else
is answered with an error message to that page and logged at most once a second.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import math
import secrets
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any

import numpy as np

from neuralband.live.osc import is_loopback
from neuralband.live.panel import CHOICE, CONTROLS, RANGE, TRIGGER, Panel, control
from neuralband.live.ratelog import RateLog
from neuralband.live.view_feed import ViewFeed
from neuralband.palette import hex_colours

DEFAULT_HOST = "127.0.0.1"
POLL_S = 0.02  # new notes reach the pages this often
FRAME_S = 0.1  # a state frame this often
KEEP_S = 30.0  # a page opened late gets this much of the past
QUEUE = 256  # messages waiting for one page; beyond it, that page's new messages are dropped
SEND_BUFFER = 16384  # bytes the kernel holds for a page: a stalled page is found out soon
CELLS = 32  # cells in the heat strip (the most active unless chosen)
RESELECT_S = 5.0  # the most active cells are chosen again this often (a steady picture)
MAX_MESSAGE = 4096  # bytes: a page's message is a control's name and a value
PAGES = {"/": ("view.html", "text/html; charset=utf-8"),
         "/index.html": ("view.html", "text/html; charset=utf-8"),
         "/view.js": ("view.js", "text/javascript; charset=utf-8"),
         "/view.css": ("view.css", "text/css; charset=utf-8")}
NOTE_ON, NOTE_OFF = "note_on", "note_off"


@dataclass(frozen=True)
class Cell:
    layer: int
    index: int

    @classmethod
    def parse(cls, text: str, layers: int, hidden: int) -> Cell:
        """``L:N`` (layer L, cell N, both from 0)."""
        layer, sep, index = text.strip().partition(":")
        try:
            cell = cls(int(layer), int(index)) if sep else None
        except ValueError:
            cell = None
        if cell is None:
            raise ValueError(f"a cell is LAYER:CELL (e.g. 1:17), not {text!r}")
        if not (0 <= cell.layer < layers and 0 <= cell.index < hidden):
            raise ValueError(f"cell {text} is not in the model ({layers} layers of {hidden})")
        return cell


def parse_cells(text: str | None, stepper: Any) -> list[Cell] | None:
    """``--view-cells 0:3,1:17`` for ``stepper``'s model; None for none named."""
    if not text:
        return None
    layers, _, hidden = stepper.h.shape
    return [Cell.parse(part, layers, hidden) for part in text.split(",") if part.strip()]


class CellWatch:
    """The LSTM's hidden state, looked at once a frame: running variance per cell, the
    `CELLS` most active chosen every `RESELECT_S` (or the cells asked for, always)."""

    def __init__(self, h: np.ndarray, chosen: list[Cell] | None = None, count: int = CELLS):
        self.h = h  # (layers, batch, hidden): the stepper's own array, read in place
        layers, _, hidden = h.shape
        self.chosen = chosen
        self.count = min(count, layers * hidden)
        self.mean = np.zeros(layers * hidden)
        self.var = np.zeros(layers * hidden)
        self.seen = 0
        self.picked = (np.array([c.layer * hidden + c.index for c in chosen]) if chosen
                       else np.arange(self.count))
        self._picked_at = -math.inf

    def cells(self) -> list[list[int]]:
        hidden = self.h.shape[2]
        return [[int(i // hidden), int(i % hidden)] for i in self.picked]

    def look(self, now: float) -> list[float]:
        """The chosen cells' values now; True in the second item where the choice changed."""
        x = self.h[:, 0, :].ravel().astype(np.float64)
        self.seen += 1
        rate = max(1.0 / self.seen, 0.02)  # a plain mean at first, then ~5 s of memory
        d = x - self.mean
        self.mean += rate * d
        self.var += rate * (d * d - self.var)
        if self.chosen is None and now - self._picked_at >= RESELECT_S and self.seen > 5:
            self.picked = np.sort(np.argsort(self.var)[::-1][:self.count])
            self._picked_at = now
        return [round(float(v), 2) for v in x[self.picked]]


class ViewServer:
    """Serve the view of ``loop`` (an `engine.LiveLoop`) on ``host:port`` until `close`."""

    def __init__(self, loop: Any, host: str = DEFAULT_HOST, port: int = 8765,
                 say: Callable[[str], None] = print, cells: list[Cell] | None = None,
                 model: str = "", log_every_s: float = 1.0, queue: int = QUEUE,
                 send_buffer: int = SEND_BUFFER):
        from websockets.asyncio.server import serve  # noqa: F401 (fail here if missing)

        self.loop, self.queue, self.send_buffer = loop, queue, send_buffer
        self._bad = RateLog(say, "view", log_every_s)
        self.panel: Panel = loop.panel
        self.feed = loop.view = ViewFeed()
        self.model = model
        self.learner = None  # `play --learn-me`'s `Learner`, whose versions the page shows
        stepper = getattr(loop, "stepper", None) or getattr(loop, "band", None).stepper
        self.cells = CellWatch(stepper.h, cells) if stepper is not None else None
        self.pages: set[_Page] = set()
        self.sent = self.dropped = 0
        self._seen = 0
        self._entropy_seen = 0
        self._ready = threading.Event()
        self._error: str | None = None
        self._aio: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self.address: tuple[str, int] = (host, port)
        self.host = host
        # Beyond loopback (a phone on stage), anyone on the network could open the page's
        # websocket: only with the secret in the URL the start line prints, as notebook servers
        # do. On loopback only this machine can reach it, and it stays as easy as it was.
        self.token = None if is_loopback(host) else secrets.token_urlsafe(16)
        self.thread = threading.Thread(target=self._serve, args=(host, port),
                                       name="neuralband-view", daemon=True)
        self.thread.start()
        self._ready.wait(10)
        if self._error is not None:
            self.thread.join(2)
            raise ValueError(self._error)

    @property
    def url(self) -> str:
        host, port = self.address[:2]
        page = f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"
        return page if self.token is None else f"{page}?token={self.token}"

    def close(self) -> None:
        """The last notes (the band's closing NOTE_OFFs) out to the pages, then stop."""
        if self._aio is not None and self._stop is not None:
            try:
                asyncio.run_coroutine_threadsafe(self._flush(), self._aio).result(timeout=2)
            except Exception:  # a page that will not take them: it is closing anyway
                pass
            try:
                self._aio.call_soon_threadsafe(self._stop.set)
            except RuntimeError:  # the loop has already ended
                pass
        self.thread.join(timeout=5)
        self.loop.view = None

    async def _flush(self) -> None:
        self._send_new()
        end = time.monotonic() + 1.0
        while any(not p.queue.empty() for p in self.pages) and time.monotonic() < end:
            await asyncio.sleep(0.01)

    # --- the server's thread --------------------------------------------------------------------

    def _serve(self, host: str, port: int) -> None:
        try:
            asyncio.run(self._main(host, port))
        except Exception as err:  # the port taken, say: told to the caller in one line
            if not self._ready.is_set():
                self._error = f"cannot serve the view on {host}:{port}: {_why(err)}"
                self._ready.set()

    async def _main(self, host: str, port: int) -> None:
        from websockets.asyncio.server import serve

        self._aio = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with serve(self._page, host, port, process_request=self._http,
                         max_size=MAX_MESSAGE, max_queue=16, ping_interval=5,
                         ping_timeout=10, write_limit=4096, close_timeout=1,
                         server_header="neuralband") as server:
            self.address = server.sockets[0].getsockname()[:2]
            self._ready.set()
            pump = asyncio.create_task(self._pump())
            await self._stop.wait()
            pump.cancel()
            for page in list(self.pages):
                page.task.cancel()

    def _http(self, connection: Any, request: Any) -> Any:
        """Every path but ``/ws`` is a file of the page (or 404); ``/ws`` goes on to the
        websocket handshake."""
        from websockets.datastructures import Headers
        from websockets.http11 import Response

        path, _, query = request.path.partition("?")
        if path == "/ws":
            if self.token is not None and not self._has_token(query):
                self._bad("a page without the view's token (the URL the start line prints)")
                return connection.respond(403, "the view needs its token: open the URL "
                                               "neuralband printed\n")
            if not self._same_origin(request.headers):
                return connection.respond(403, "the view's controls are for its own page\n")
            return None
        if path not in PAGES:
            return connection.respond(404, f"no {path} here: the view is at /\n")
        name, kind = PAGES[path]
        body = resources.files("neuralband.live").joinpath("web", name).read_bytes()
        return Response(200, "OK", Headers([("Content-Type", kind),
                                            ("Content-Length", str(len(body))),
                                            ("Cache-Control", "no-store")]), body)

    def _has_token(self, query: str) -> bool:
        from urllib.parse import parse_qs

        given = parse_qs(query).get("token", [""])[0]
        return hmac.compare_digest(given.encode(), self.token.encode())

    def _same_origin(self, headers: Any) -> bool:
        """A browser says which page opens a websocket: only the view's own page may (another
        site open in the player's browser could otherwise press panic, or read the notes).
        The Host must be this server's address or a loopback name (no DNS rebinding); a
        client that is not a browser sends no Origin."""
        try:
            origin, host = headers.get("Origin"), headers.get("Host", "")
        except Exception:  # two Origins or two Hosts: not a browser's honest request
            return False
        if origin is None:
            return True
        if self.token is not None:  # beyond loopback, the token says who: the page's own origin
            return origin == f"http://{host}"
        name = host[1:].split("]")[0] if host.startswith("[") else host.rsplit(":", 1)[0]
        ours = {self.address[0], "localhost", "127.0.0.1", "::1", self.host}
        return origin == f"http://{host}" and name in ours

    async def _page(self, ws: Any) -> None:
        sock = ws.transport.get_extra_info("socket")
        if sock is not None:  # a stale frame is no use: drop it here rather than queue it there
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.send_buffer)
        page = _Page(ws, asyncio.Queue(self.queue))
        page.task = asyncio.create_task(self._send_to(page))
        self.pages.add(page)
        try:
            self._put(page, self._hello())
            async for message in ws:
                self._command(page, message)
        except Exception:  # a page gone mid-frame, a bad frame: that page ends, nothing else
            pass
        finally:
            self.pages.discard(page)
            page.task.cancel()

    async def _send_to(self, page: _Page) -> None:
        try:
            while True:
                text = await page.queue.get()
                await page.ws.send(text)
                self.sent += 1
        except asyncio.CancelledError:
            raise
        except Exception:  # the connection closed: `_page` ends it
            return

    def _put(self, page: _Page, text: str) -> None:
        try:
            page.queue.put_nowait(text)
        except asyncio.QueueFull:
            page.dropped += 1
            self.dropped += 1

    def _broadcast(self, text: str) -> None:
        for page in list(self.pages):
            self._put(page, text)

    async def _pump(self) -> None:
        next_frame = 0.0
        while True:
            try:
                self._send_new()
                self._bad.flush()  # a refused burst's count, a second after its first line
                now = time.monotonic()
                if now >= next_frame:
                    next_frame = now + FRAME_S
                    frame = self._frame(now)
                    if self.pages:
                        self._broadcast(json.dumps(frame))
            except Exception as err:  # a view must never stop for the engine's sake
                self._bad(f"the view skipped a frame: {type(err).__name__}: {err}")
            await asyncio.sleep(POLL_S)

    def _send_new(self) -> None:
        for note in self.feed.since(self._seen):
            self._seen = note[0] + 1
            if self.pages:
                self._broadcast(json.dumps(self._note(note)))

    # --- messages ------------------------------------------------------------------------------

    def _now(self) -> float:
        return self.loop.clock() - self.loop.t0

    def _voice(self, band: int, channel: int) -> str:
        if not band:
            return "player"
        return self.loop.voice_name(channel)

    def _note(self, note: tuple[int, float, int, int, int, int]) -> dict:
        _, t, band, channel, pitch, velocity = note
        return {"type": NOTE_ON if velocity else NOTE_OFF, "who": "band" if band else "player",
                "voice": self._voice(band, channel), "channel": channel + 1, "pitch": pitch,
                "velocity": velocity, "t": round(t, 4)}

    def _hello(self) -> str:
        now = self._now()
        # What the pages were already sent (the pump sends the rest to this one too).
        notes = [self._note(n) for n in self.feed.since(0)
                 if n[0] < self._seen and n[1] >= now - KEEP_S]
        return json.dumps({
            "type": "hello", "model": self.model, "t": round(now, 4),
            "controls": [_describe(c) for c in CONTROLS],
            "voices": self.loop.voice_names(),
            "cells": self.cells.cells() if self.cells is not None else [],
            "notes": notes, "frame_s": FRAME_S, "keep_s": KEEP_S,
            "max_note_s": float(self.loop.rules.max_note_s),
            "palette": hex_colours()})  # the piano rolls' colours: the player's first

    def _frame(self, now: float) -> dict:
        ring = self.loop.stats.entropy
        count = ring.count  # once: the engine adds to it meanwhile
        new = min(count - self._entropy_seen, len(ring.values))
        entropy = [round(float(ring.values[(count - new + k) % len(ring.values)]), 3)
                   for k in range(max(new, 0))]
        self._entropy_seen = count
        frame = {"type": "state", "t": round(self._now(), 4), "controls": self.panel.state(),
                 "entropy": entropy, "plan": self.loop.plan(),
                 "status": {"band_events": self.loop.stats.band_events,
                            "absorbed": self.loop.stats.absorbed,
                            "dropped": self.dropped, "pages": len(self.pages)}}
        beat = getattr(self.loop, "beat", None)
        if beat is not None:  # the band's tempo, beat and how sure the tracker is
            frame["beat"] = beat.describe(self.loop.clock())  # on the engine's clock
        if self.learner is not None:  # `play --learn-me`: the version playing, what it learnt on
            frame["learning"] = self.learner.describe()
        if self.cells is not None:
            before = self.cells.cells()
            frame["cell_values"] = self.cells.look(now)
            after = self.cells.cells()
            if after != before:
                frame["cells"] = after
        return frame

    def _command(self, page: _Page, message: str | bytes) -> None:
        """A page's message: set a control, else an error back to that page (and a log line,
        at most one a second)."""
        try:
            if isinstance(message, bytes):
                raise ValueError("a control message is JSON text, not bytes")
            try:
                data = json.loads(message)
            except ValueError:
                raise ValueError("a control message is JSON, e.g. "
                                 '{"set": "temperature", "value": 0.8}') from None
            if not isinstance(data, dict) or not isinstance(data.get("set"), str):
                raise ValueError('a control message names a control: {"set": NAME, ...}')
            c = control(data["set"])
            if c.kind == TRIGGER:
                self.panel.set(c.name)
            elif "value" not in data:
                raise ValueError(f"{c.name} needs a value")
            else:
                self.panel.set(c.name, data["value"])
        except ValueError as err:
            self._put(page, json.dumps({"type": "error", "error": str(err)}))
            self._bad(str(err))
        except Exception as err:  # nothing a page sends may end the server
            self._bad(f"{type(err).__name__}: {err}")

    @property
    def ignored(self) -> int:
        """The page messages (and skipped frames) ignored so far."""
        return self._bad.count


@dataclass(eq=False)
class _Page:
    ws: Any
    queue: asyncio.Queue
    task: Any = None
    dropped: int = 0


def _describe(c: Any) -> dict:
    """A control as the page builds its widget."""
    out: dict[str, Any] = {"name": c.name, "kind": c.kind, "help": c.help}
    if c.kind == RANGE:
        out.update(low=c.low, high=c.high, unset=c.unset or None, unit=c.unit or None)
    if c.kind == CHOICE:
        out["choices"] = list(c.choices)
    return out


def _why(err: Exception) -> str:
    return getattr(err, "strerror", None) or str(err) or type(err).__name__
