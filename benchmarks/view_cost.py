"""What the live view costs the real-time loop, against the naive way, one run.

The engine (`neuralband.live.engine.Engine`, bundled model, solo mode: the band plays all the time)
hears a scripted player (the chorale top voice of the tests) for ``--seconds``, in-process with a
capturing output (no ports: the loop's own work is what is measured), in three ways:

1. ``off``: no view.
2. ``view``: `neuralband.live.view.ViewServer` with ``--pages`` pages watching, each a websocket
   client in its own process (as browsers are), reading everything.
3. ``naive``: THE NAIVE WAY, for comparison only (``NaiveFeed`` below): the first attempt at a
   live view, each note turned into JSON and sent to every page from the engine's own thread, in
   the note's send path (a blocking UDP datagram per page, the cheapest socket send there is).

There is no peer: none of the live MIDI systems we know (notochord, ReaLJam, Magenta's
midi_interface) shows the model's state while it plays. Runs alternate (off, view, naive, off,
...) ``--repeats`` times; each figure is the median over repeats of the run's own:

- step: one band event, feed + sample (``Stats.step_s``; its median and 90th percentile),
  the work the view must not slow;
- absorb p99: a player's message from arrival to fed (``Stats.absorb_s``);
- note hook: what the engine's thread spends per note on the view (``ViewFeed.note``, timed
  alone in a loop), and the naive way's send per note.

Goal (issue 16): the view costs the loop at most 5% of its step time. Run from the repository
root::

    .venv/bin/python benchmarks/view_cost.py [--seconds 8] [--repeats 3] [--pages 2]
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.machine import cpu_model, usable_cpus  # noqa: E402
from neuralband.demo import ScriptedPlayer  # noqa: E402
from neuralband.live.engine import Engine  # noqa: E402
from neuralband.live.session import live_precision  # noqa: E402
from neuralband.live.turns import PlaySettings  # noqa: E402
from neuralband.live.view import ViewServer  # noqa: E402
from neuralband.live.view_feed import ViewFeed  # noqa: E402
from neuralband.modelfile import bundled_model  # noqa: E402
from neuralband.runtime import Stepper  # noqa: E402
from neuralband.sampling import model_rules  # noqa: E402
from tests.helpers.live import tune  # noqa: E402

PAGE = """
import json, sys, time
from websockets.sync.client import connect
end = time.monotonic() + float(sys.argv[2])
n = 0
with connect(sys.argv[1]) as ws:
    while time.monotonic() < end:
        try:
            json.loads(ws.recv(timeout=0.2)); n += 1
        except TimeoutError:
            pass
print(n)
"""


class NaiveFeed:
    """THE NAIVE WAY: JSON and a send per page, in the engine's thread, for every note."""

    def __init__(self, pages: int):
        self.socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(pages)]
        self.sinks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(pages)]
        for sink in self.sinks:
            sink.bind(("127.0.0.1", 0))
            sink.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
        self.count = 0

    def note(self, t: float, band: bool, channel: int, pitch: int, velocity: int) -> None:
        text = json.dumps({"type": "note_on" if velocity else "note_off",
                           "who": "band" if band else "player", "channel": channel + 1,
                           "pitch": pitch, "velocity": velocity, "t": round(t, 4)}).encode()
        for sock, sink in zip(self.socks, self.sinks, strict=True):
            sock.sendto(text, sink.getsockname())
        self.count += 1

    def close(self) -> None:
        for s in self.socks + self.sinks:
            s.close()


def run_once(way: str, seconds: float, pages: int, stepper: Stepper) -> dict:
    stepper.reset()
    sent: list = []
    engine = Engine(stepper, lambda d: sent.append(d), PlaySettings(mode="solo"),
                    model_rules(stepper.info), seed=5)
    engine.stats.step_s.values = np.zeros(1 << 16)
    engine.stats.absorb_s.values = np.zeros(1 << 14)
    server = naive = None
    watchers = []
    if way == "view":
        server = ViewServer(engine, port=0, say=lambda line: None)
        url = f"ws://127.0.0.1:{server.address[1]}/ws"
        watchers = [subprocess.Popen([sys.executable, "-c", PAGE, url, str(seconds + 1)],
                                     stdout=subprocess.PIPE, text=True) for _ in range(pages)]
        time.sleep(1.0)  # the pages' processes start (and connect) before the take
    elif way == "naive":
        naive = engine.view = NaiveFeed(pages)
    player = ScriptedPlayer(tune(seconds), lambda d: engine.receive(time.perf_counter(), d))
    threading.Timer(0.2, player.start).start()
    engine.run(seconds)
    player.join()
    engine.close()
    got = 0
    if server is not None:
        server.close()
        got = sum(int(w.communicate(timeout=30)[0] or 0) for w in watchers)
    if naive is not None:
        naive.close()
    step, absorb = engine.stats.step_s, engine.stats.absorb_s
    steps = step.values[:min(step.count, len(step.values))]
    absorbs = absorb.values[:min(absorb.count, len(absorb.values))]
    return {"step_us": float(np.median(steps)) * 1e6,
            "step_p90_us": float(np.percentile(steps, 90)) * 1e6,
            "absorb_p99_ms": float(np.percentile(absorbs, 99)) * 1e3,
            "band_events": engine.stats.band_events, "page_messages": got}


def hook_cost(n: int = 200_000) -> dict:
    feed = ViewFeed()
    t = time.perf_counter()
    for k in range(n):
        feed.note(0.5, True, 0, 60 + k % 12, 90)
    ours = (time.perf_counter() - t) / n
    naive = NaiveFeed(2)
    t = time.perf_counter()
    for k in range(n // 20):
        naive.note(0.5, True, 0, 60 + k % 12, 90)
    theirs = (time.perf_counter() - t) / (n // 20)
    naive.close()
    return {"view_hook_us": ours * 1e6, "naive_hook_us": theirs * 1e6}


def describe() -> str:
    return f"{cpu_model()}, {usable_cpus()} CPUs"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--pages", type=int, default=2)
    args = ap.parse_args()
    stepper = Stepper.load(bundled_model(), precision=live_precision("auto"))
    results: dict[str, list[dict]] = {"off": [], "view": [], "naive": []}
    run_once("off", 2.0, args.pages, stepper)  # warm: compiled kernels, caches
    for _ in range(args.repeats):
        for way in results:
            results[way].append(run_once(way, args.seconds, args.pages, stepper))
    med = {way: {k: statistics.median(r[k] for r in runs) for k in runs[0]}
           for way, runs in results.items()}
    hooks = hook_cost()
    base = med["off"]["step_us"]
    print(f"# {describe()}; {stepper.precision} steps, {args.seconds:g} s takes, "
          f"{args.pages} pages, median of {args.repeats}")
    print(f"{'way':<7}{'step p50 (us)':>14}{'vs off':>9}{'step p90 (us)':>15}"
          f"{'absorb p99 (ms)':>17}{'band events':>13}{'page msgs':>11}")
    for way, m in med.items():
        print(f"{way:<7}{m['step_us']:>14.1f}{m['step_us'] / base - 1:>+9.1%}"
              f"{m['step_p90_us']:>15.1f}{m['absorb_p99_ms']:>17.2f}{m['band_events']:>13.0f}"
              f"{m['page_messages']:>11.0f}")
    print(f"per note in the engine's thread: view {hooks['view_hook_us']:.2f} us, "
          f"naive {hooks['naive_hook_us']:.2f} us")
    print(json.dumps({"benchmark": "view_cost", "machine": describe(), "pages": args.pages,
                      "seconds": args.seconds, "repeats": args.repeats, **hooks,
                      **{f"{way}_{k}": round(v, 3) for way, m in med.items()
                         for k, v in m.items()},
                      "view_step_overhead": round(med["view"]["step_us"] / base - 1, 4)}))


if __name__ == "__main__":
    main()
