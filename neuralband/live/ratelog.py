"""One log line a second at most: for a source that can be flooded with bad input (OSC, the
view's websocket), the first bad message is said, the rest counted and said with the next line."""

from __future__ import annotations

import time
from collections.abc import Callable


class RateLog:
    """``log(what)``: says "PREFIX: ignored WHAT", at most once every ``every_s``; counts all."""

    def __init__(self, say: Callable[[str], None], prefix: str, every_s: float = 1.0):
        self.say, self.prefix, self.every_s = say, prefix, every_s
        self.count = 0  # every bad message, said or not
        self._unsaid = 0
        self._said_at = -float("inf")

    def __call__(self, what: str) -> None:
        self.count += 1
        now = time.monotonic()
        if now - self._said_at < self.every_s:
            self._unsaid += 1
            return
        more = f" (and {self._unsaid} more since the last)" if self._unsaid else ""
        self.say(f"{self.prefix}: ignored {what}{more}")
        self._said_at, self._unsaid = now, 0

    def flush(self) -> None:
        """Say the count of what came after the last line, once a second has passed since it
        (called by the source's own loop: two bad messages back to back, then nothing, would
        otherwise leave the second unsaid for ever)."""
        if self._unsaid and time.monotonic() - self._said_at >= self.every_s:
            self.say(f"{self.prefix}: ignored {self._unsaid} more since the last")
            self._said_at, self._unsaid = time.monotonic(), 0
