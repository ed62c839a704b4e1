"""The `neuralband` command: each command's name and the function that runs it (the functions
live in `neuralband.commands`, grouped by what a user does), and the entry point that runs one."""

from __future__ import annotations

import os
import sys

from neuralband.commands.data import cmd_encode, cmd_roundtrip, cmd_tokens, cmd_train
from neuralband.commands.generating import cmd_generate
from neuralband.commands.listening import cmd_audition, cmd_evaluate, cmd_score
from neuralband.commands.playing import cmd_demo, cmd_play, cmd_ports, cmd_takes, cmd_tune

# The commands, by name: each takes the parsed options (`neuralband.options`).
COMMANDS = {
    "demo": cmd_demo,
    "roundtrip": cmd_roundtrip,
    "tokens": cmd_tokens,
    "encode": cmd_encode,
    "train": cmd_train,
    "generate": cmd_generate,
    "ports": cmd_ports,
    "play": cmd_play,
    "takes": cmd_takes,
    "tune": cmd_tune,
    "audition": cmd_audition,
    "score": cmd_score,
    "evaluate": cmd_evaluate,
}


def main(argv: list[str] | None = None) -> int:
    if (sys.argv[1:] if argv is None else argv)[:1] in (["play"], ["score"], ["tune"]):
        # One BLAS thread for the live instrument: a mat-vec this small only loses time waking
        # a second one (p99 step 3.4 -> 0.8 ms measured), and the other core belongs to the
        # MIDI driver. It must be set before numpy loads, which building the parser does.
        # `score` steps the same small matrices (a POP909 song: 87 s with two threads on a
        # busy machine, 1.2 s with one); `tune` scores its held-out takes so (its torch
        # training takes every core all the same: `training.tune`).
        for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ.setdefault(var, "1")
    from neuralband.options import build_parser, parse

    parser = build_parser()
    args = parse(parser, sys.argv[1:] if argv is None else list(argv))
    command = COMMANDS.get(getattr(args, "command", None) or "")
    if command is None:
        parser.print_help()
        return 0
    from neuralband.encoders.errors import MidiError

    try:
        return command(args)
    except MidiError as err:
        print(f"neuralband: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


# Commands that hold JACK or ALSA clients and native threads (rtmidi, numba) while they run.
LIVE_COMMANDS = ("play", "demo")


def run() -> None:
    """The `neuralband` command: `main`, then exit. A live command ends with ``os._exit`` once
    its output is flushed: every note is off, every port closed and every file written by
    then, and what is left, the interpreter's teardown of native libraries, once crashed a
    stopped `play` (SIGSEGV in CI, after its last line) where it could only lose the exit code."""
    code = main()
    if sys.argv[1:2] and sys.argv[1] in LIVE_COMMANDS:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    run()
