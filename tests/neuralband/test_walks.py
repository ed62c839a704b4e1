"""The walks of issue 27 go one way: followed call by call (`tests.helpers.walk`), a note through
`play`, `generate --lead` and `train` never call back into a module that called them, directly or
round a longer cycle (a progress bar, a stop flag, the band's sent notes, the port watch and the
learner's news are all handed over as objects or taken when the caller asks, not called back)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from neuralband.cli import main
from tests.helpers import jack
from tests.helpers.data import CHORALES, TRAIN_CHORALES
from tests.helpers.walk import traced


def _one_way(walk, *through: str) -> None:
    """No tangle, and the walk went through the modules named (it walked where it should)."""
    assert not walk.tangles(), "\n".join(walk.describe(t) for t in walk.tangles())
    missing = [m for m in through if m not in walk.modules]
    assert not missing, f"the walk never reached {missing}"


def test_generate_lead_goes_one_way(tmp_path):
    with traced() as walk:
        assert main(["generate", "--model", "pop-duet", "--lead", str(CHORALES[0]), "-n", "2",
                     "--seconds", "25", "-o", str(tmp_path / "x.mid")]) == 0
    _one_way(walk, "neuralband.commands.generating", "neuralband.generate", "neuralband.runtime",
             "neuralband.trial", "neuralband.voicing", "neuralband.sampling")


def test_the_offline_commands_go_one_way(tmp_path):
    """Continuing a primer, scoring, evaluating, drawing the activations."""
    with traced() as walk:
        assert main(["generate", "--model", "pop", "--primer", str(TRAIN_CHORALES[0]),
                     "--seconds", "25", "-o", str(tmp_path / "g.mid")]) == 0
        assert main(["score", "pop", str(TRAIN_CHORALES[1])]) == 0
        assert main(["evaluate", str(tmp_path / "g.mid"), "--against",
                     str(TRAIN_CHORALES[2])]) == 0
        assert main(["audition", "--activations", str(tmp_path / "a.png"), "--model", "pop",
                     str(TRAIN_CHORALES[1])]) == 0
    _one_way(walk, "neuralband.generate", "neuralband.score", "neuralband.evaluate",
             "neuralband.activations")


@pytest.mark.slow
def test_encode_and_train_go_one_way(tmp_path):
    with traced() as walk:
        assert main(["encode", str(TRAIN_CHORALES[0].parent), "-o", str(tmp_path / "ds"),
                     "-q"]) == 0
        assert main(["train", str(tmp_path / "ds"), "-o", str(tmp_path / "run"), "--steps",
                     "3", "--preset", "tiny", "--batch", "4", "--window", "32", "-q"]) == 0
    _one_way(walk, "neuralband.commands.data", "neuralband.training.dataset",
             "neuralband.training.train", "neuralband.training.windows")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


PLAYS = [
    pytest.param(["--mode", "solo", "--model", "pop"], id="solo"),
    pytest.param(["--mode", "duet", "--model", "pop-duet", "--view", "VIEW", "--osc", "OSC",
                  "--map", "1=density", "--thru", "--feedback-guard"], id="duet-view-osc",
                 marks=pytest.mark.slow),
    pytest.param(["--mode", "duet", "--model", "grid", "--clock-out"], id="grid",
                 marks=pytest.mark.slow),
    pytest.param(["--mode", "solo", "--model", "pop", "--learn-me"], id="learn",
                 marks=pytest.mark.slow),
]


@pytest.mark.usefixtures("jack_server")
@pytest.mark.parametrize("options", PLAYS)
def test_a_note_through_play_goes_one_way(tmp_path, options):
    """`play` in this process between a real JACK keyboard and listener: the loop, the band,
    the output's notes, the port watch and the status line's polling, traced in every thread
    Python starts (the MIDI callback runs in JACK's thread: it only queues and wakes)."""
    tag = f"walk{_free_port()}"
    options = [str(_free_port()) if o in ("VIEW", "OSC") else o for o in options]
    kbd = jack.keyboard(f"{tag}kbd", 2.0)
    dump = jack.listener(f"{tag}dump", tmp_path / "dump.txt")
    try:
        with traced() as walk:
            assert main(["play", "--in", f"{tag}kbd", "--out", f"{tag}dump", "--seconds", "4",
                         *options]) == 0
    finally:
        kbd.terminate()
        jack.close_listener(dump)
    assert jack.dumped(Path(tmp_path / "dump.txt")), "the band played nothing"
    _one_way(walk, "neuralband.commands.playing", "neuralband.live.session",
             "neuralband.live.loop", "neuralband.live.notes_out", "neuralband.live.ports",
             "neuralband.live.clock")
