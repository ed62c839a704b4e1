"""An Ableton Link peer in this process (aalink): it opens a session at a tempo, samples the
session's beat every millisecond, and on the way out says the session's tempo then."""

from __future__ import annotations

import threading
import time


class LinkPeer:
    """``with LinkPeer(aalink, 110) as peer:``; ``peer.samples`` (perf_counter time, beat) and,
    after the block, ``peer.tempo`` (the session's, which Link settles as peers meet)."""

    def __init__(self, aalink, bpm: float, quantum: int = 4):
        self.aalink, self.bpm, self.quantum = aalink, bpm, quantum
        self.samples: list[tuple[float, float]] = []
        self.tempo: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run)

    def __enter__(self) -> LinkPeer:
        self._thread.start()
        time.sleep(0.5)  # the session is open
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        import asyncio
        import warnings

        async def session() -> None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)  # aalink's loop argument
                link = self.aalink.Link(self.bpm, asyncio.get_running_loop())
            link.quantum = self.quantum
            link.enabled = True
            while not self._stop.is_set():
                self.samples.append((time.perf_counter(), link.beat))
                await asyncio.sleep(0.001)
            self.tempo = link.tempo
            link.enabled = False

        asyncio.run(session())
