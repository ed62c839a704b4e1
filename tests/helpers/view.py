"""A page of the live view, as a test reads it: the websocket's every message, parsed."""

from __future__ import annotations

import json
import time

import pytest

from neuralband.live.view import ViewServer

websockets = pytest.importorskip("websockets")
from websockets.sync.client import connect  # noqa: E402


class Watcher:
    """A page's websocket, read in its own thread: every message, parsed."""

    def __init__(self, server: ViewServer, start_after: float = 0.0, seconds: float = 6.0,
                 send=()):
        self.url = f"ws://127.0.0.1:{server.address[1]}/ws"
        self.start_after, self.seconds, self.send = start_after, seconds, send
        self.messages: list[dict] = []

    def __call__(self) -> None:
        time.sleep(self.start_after)
        with connect(self.url) as ws:
            for text in self.send:
                ws.send(text)
            end = time.monotonic() + self.seconds
            while time.monotonic() < end:
                try:
                    self.messages.append(json.loads(ws.recv(timeout=0.2)))
                except TimeoutError:
                    continue
                except websockets.ConnectionClosed:
                    return

    def of(self, kind: str) -> list[dict]:
        return [m for m in self.messages if m["type"] == kind]

    def notes(self, who: str) -> list[tuple[str, int]]:
        """What the page knows: the hello's past, then the stream."""
        past = [n for m in self.of("hello") for n in m["notes"]]
        return [(m["type"], m["pitch"]) for m in past + self.messages
                if m["type"] in ("note_on", "note_off") and m["who"] == who]
