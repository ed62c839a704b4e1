"""`play --learn-me`: the band learns the player while they play.

A separate process tunes a copy of the model (`training.tune`) on the session so far (and the
takes of ``--learn-from``), round after round, each from the model the session started with
(going on from the version before was measured: it learnt the pieces played so far better and a
new piece worse), its own music mixed in so that what it knew stays. A new version's recurrent
state is rebuilt on the session's stream in that process (the whole committed stream replayed
with its controls and beat placements, then the events that came meanwhile, until it is within
a few of the engine's: off the real-time thread); a thread here loads it and feeds it the last
few; the engine takes it at a pause (`Engine._take_learnt`), the weights rebound and the state
copied in (`Stepper.adopt`). The learner runs on one torch thread at the lowest priority
(SCHED_IDLE); if it fails, one line says so and the band plays on with what it had. When the
session ends the version playing is kept as a model folder beside the takes (``--model
FOLDER`` plays it).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from collections import deque
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from neuralband.live.learnt import Offer, replay
from neuralband.live.takes import notes_of, write_recording

LEARN_NOTES = 40  # the player's new notes that start a round of learning
ROUND_STEPS = 40  # optimizer steps a round (about 30 s on one core of this 2-core machine)
REPLAY_MINUTES = 3.0  # of the model's own music, mixed into every round (`training.tune`)
CATCH_UP = 32  # a version more events behind the stream than this is brought on by the learner


def _learn(conn, base: str, folder: str, learn_from: list[str], steps: int,
           replay_minutes: float, seed: int) -> None:
    """The learner process: a round per session take it is sent ("round"), the version's
    state brought on along the stream as long as the session sends more of it ("more"), until
    "stop"."""
    idle()
    import torch

    torch.set_num_threads(1)
    from neuralband.loaded import LoadedModel
    from neuralband.training.config import TuneSettings
    from neuralband.training.tune import replay_dataset, tune

    root = Path(folder)
    try:
        model = LoadedModel.open(base)
        mix = replay_dataset(model, root / "base", replay_minutes, seed)
    except Exception as err:  # noqa: BLE001 - said in one line by the session
        conn.send(("error", f"{type(err).__name__}: {err}"))
        return
    settings = TuneSettings(steps=steps, batch=16, mix=mix, seed=seed, threads=1,
                            progress=False, force=True)
    stepper, out, fed, minutes = None, root, 0, 0.0  # the last version, and where it stands
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):  # the session is gone
            return
        if message[0] == "stop":
            return
        try:
            if message[0] == "more":  # the stream went on meanwhile: on along it
                _, version, tokens, controls, beats = message
                fed = replay(stepper, tokens, controls, beats, fed)
                conn.send(("state", version, str(out), stepper.h, stepper.c, fed, minutes))
                continue
            _, version, take, tokens, controls, beats, minutes = message
            out = root / f"v{version}"
            tune(base, [take, *learn_from], str(out), settings, argv=["play", "--learn-me"],
                 compare=False)
            stepper = LoadedModel.open(str(out)).stepper()
            fed = replay(stepper, tokens, controls, beats)
            conn.send(("state", version, str(out), stepper.h, stepper.c, fed, minutes))
        except Exception as err:  # noqa: BLE001 - the band plays on with what it had
            conn.send(("error", f"{type(err).__name__}: {err}"))


def idle() -> None:
    """This process runs only on time the others leave (Linux's SCHED_IDLE; elsewhere the
    lowest niceness): the live loop, the MIDI driver and JACK come first."""
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):
        try:
            os.nice(19)
        except OSError:
            pass


class Learner:
    """The session's side of `play --learn-me`: starts the learner process, sends it the session
    so far every LEARN_NOTES new notes of the player's, and hands each version it returns to
    the engine. `poll` runs on the loop's thread and only looks; the work is done in threads."""

    def __init__(self, model, engine, keep: str | os.PathLike,
                 precision: str = "fp32", learn_from: list[str] | None = None,
                 steps: int = ROUND_STEPS, replay_minutes: float = REPLAY_MINUTES,
                 every_notes: int = LEARN_NOTES, seed: int = 0,
                 folder: str | os.PathLike | None = None):
        """``keep``: the folder the last version is kept in; ``folder``: where the rounds are
        made (default: a temporary folder, deleted at the end; one given is left as it is)."""
        check_learnable(model)
        self.model, self.engine, self.keep = model, engine, Path(keep)
        self.keep_all = folder is not None
        self.folder = Path(folder or tempfile.mkdtemp(prefix="neuralband-learning-"))
        self.precision, self.every_notes = precision, every_notes
        self.learn_from = [str(p) for p in learn_from or []]
        self.args = (str(model.path), str(self.folder), self.learn_from, steps, replay_minutes,
                     seed)
        self.sent = 0  # rounds sent
        self.versions: list[tuple[int, str]] = []  # (version, its folder), as they came
        self.failed: str | None = None
        self._news: deque[str] = deque()  # lines for the player, until `news` hands them on
        self._busy = False  # a round is under way
        self._notes = self._notes_at = 0  # the player's notes, and when the last round went
        self._seen = 0  # the recording's entries counted
        self._conn = self._process = None
        self._learnt_on: dict[int, float] = {}  # each version's minutes of the player's

    def start(self) -> None:
        import multiprocessing

        self.folder.mkdir(parents=True, exist_ok=True)
        context = multiprocessing.get_context("spawn")  # no copy of the live threads
        self._conn, child = context.Pipe()
        self._process = context.Process(target=_learn, args=(child, *self.args), daemon=True,
                                        name="neuralband-learner")
        self._process.start()

    def poll(self) -> str | None:
        """Now and then, on the loop's thread: send a round when due, take in a version;
        returns a line for the player when there is news (the learning stopped), once."""
        self._look()
        return self.news()

    def news(self) -> str | None:
        """What the player has not yet been told (set from the learner's threads), once."""
        lines = []
        while self._news:
            lines.append(self._news.popleft())
        return "; ".join(lines) or None

    def _look(self) -> None:
        if self.failed is not None or self._conn is None:
            return
        engine = self.engine
        if engine.learnt is not None and not engine.learnt.lock.locked() and \
                len(engine.tokens) - engine.learnt.fed > CATCH_UP:
            threading.Thread(target=self._catch_up, args=(engine.learnt,), daemon=True).start()
        try:
            while self._conn.poll():
                self._received(self._conn.recv())
        except (EOFError, OSError):
            self._fail("the learner process ended")
            return
        seen = len(engine.recording)  # the player's notes, counted once each
        self._notes += notes_of(engine.recording[self._seen:seen], "player")
        self._seen = seen
        if not self._busy and self._notes - self._notes_at >= self.every_notes:
            self._busy, self._notes_at = True, self._notes
            self.sent += 1
            snapshot = SimpleNamespace(recording=list(engine.recording), t0=engine.t0,
                                       closed_at=engine.clock())
            stream = (list(engine.tokens), list(engine.control_changes),
                      list(engine.beat_changes))
            threading.Thread(target=self._send, args=(self.sent, snapshot, stream),
                             daemon=True).start()

    def _send(self, version: int, snapshot, stream) -> None:
        take = write_recording(snapshot, self.folder / f"session-{version}.mid")
        played = [t for t, who, _ in snapshot.recording if who == "player"]
        minutes = (max(played) - min(played)) / 60 if played else 0.0
        try:
            self._conn.send(("round", version, str(take), *stream, minutes))
        except (OSError, ValueError):
            self._fail("the learner process ended")

    def _received(self, message) -> None:
        """A version's state at ``fed`` events of the stream: sent on along the stream while it
        is more than CATCH_UP behind (the replaying is the learner's work, not this process's),
        then loaded here."""
        if message[0] == "error":
            self._fail(message[1])
            return
        _, version, folder, h, c, fed, minutes = message
        engine = self.engine
        if len(engine.tokens) - fed > CATCH_UP:
            self._conn.send(("more", version, list(engine.tokens), list(engine.control_changes),
                             list(engine.beat_changes)))
            return
        threading.Thread(target=self._load, args=(version, folder, h, c, fed, minutes),
                         daemon=True).start()

    def _load(self, version: int, folder: str, h: np.ndarray, c: np.ndarray, fed: int,
              minutes: float) -> None:
        """Off the loop's thread: the version's stepper, in the live precision, at the state
        replayed for it, brought up to the engine's stream; then offered to the engine."""
        from neuralband.loaded import LoadedModel

        try:
            stepper = LoadedModel.open(folder).stepper(precision=self.precision)
        except Exception as err:  # noqa: BLE001
            self._fail(f"version {version} could not be loaded: {err}")
            return
        np.copyto(stepper.h, h)
        np.copyto(stepper.c, c)
        offer = Offer(stepper, fed, version)
        self._catch_up(offer)
        self._learnt_on[version] = minutes
        self.versions.append((version, folder))
        self.engine.learnt = offer
        self._busy = False

    def _catch_up(self, offer: Offer) -> None:
        engine = self.engine
        with offer.lock:
            while len(engine.tokens) - offer.fed > CATCH_UP // 2:
                offer.fed = replay(offer.stepper, engine.tokens, engine.control_changes,
                                   engine.beat_changes, offer.fed, len(engine.tokens))

    def _fail(self, why: str) -> None:
        if self.failed is None:
            self.failed = why
            self._busy = False
            self._news.append(f"learning stopped: {why}; the band plays on with version "
                              f"{self.engine.version}")

    def describe(self) -> str:
        """For the status line: the version playing and what it learnt on."""
        if self.failed is not None:
            return f"learning stopped (v{self.engine.version})"
        if self.engine.version:
            text = (f"v{self.engine.version} learnt on "
                    f"{self._learnt_on[self.engine.version]:.1f} min")
        else:
            text = "v0"
        if self._busy:
            text += f", learning v{self.sent}"
        elif self.engine.learnt is not None:
            text += f", v{self.engine.learnt.version} at the next pause"
        return text

    def close(self) -> Path | None:
        """Stop the process and keep the version the band plays at ``keep`` (a new folder);
        returns it (None: none was learnt). The rounds are deleted (from a temporary folder)."""
        if self._process is not None:
            try:
                self._conn.send(("stop",))
            except (OSError, ValueError):
                pass
            self._process.join(timeout=2.0)
            if self._process.is_alive():
                self._process.terminate()  # a round under way is of no use now
                self._process.join(timeout=2.0)
        playing = [folder for version, folder in self.versions
                   if version == self.engine.version]
        kept = None
        if playing:
            kept = self.keep
            kept.parent.mkdir(parents=True, exist_ok=True)
            shutil.copytree(playing[0], kept, ignore=shutil.ignore_patterns(
                "ckpt-*", "state.json", "*-dataset", "replay", "tensorboard"))
        if not self.keep_all:
            shutil.rmtree(self.folder, ignore_errors=True)
        return kept


def check_learnable(model) -> None:
    """ValueError in one line for a model the learner cannot teach (a grid model's band)."""
    if model.scheme.plays != "events":
        raise ValueError(f"--learn-me teaches event models (pop, pop-duet, duet, ...); "
                         f"{Path(model.name).name} plays on a clock")


def learnt_folder(takes: Path) -> Path:
    """Where a session's learnt model is kept: beside its take, named for when it ended."""
    return takes / time.strftime("%Y-%m-%d_%H%M%S-learnt")
