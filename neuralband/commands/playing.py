"""The live instrument's commands: `demo`, `ports` and `play` (with `--learn-me`); and the takes
`play` keeps: `takes` lists them, `tune` tunes a model on them."""

from __future__ import annotations

import argparse
import sys
from functools import partial
from pathlib import Path

from neuralband.commands.generating import rules_and_controls


def cmd_demo(args: argparse.Namespace) -> int:
    from neuralband.demo import ANSWER_S, melody_label, run_demo

    route = "JACK" if args.jack else "in-process" if args.no_jack else "JACK if it runs"
    print(f"neuralband demo: a built-in player plays {args.phrases} phrase(s) of "
          f"{melody_label(args.melody)} ({route}); the bundled model answers each for up to "
          f"{ANSWER_S:g} s ...", flush=True)
    from neuralband.live.synth import SynthError

    try:
        res = run_demo(args.out, args.melody, jack=True if args.jack else False if args.no_jack
                       else None, seed=args.seed, count=args.phrases, synth=args.synth,
                       soundfont=args.soundfont, say=lambda line: print(line, flush=True))
    except SynthError as err:
        print(f"neuralband: {err}", file=sys.stderr)
        return 2
    print(f"played   via {res.route}: the player {res.player_notes} notes, "
          f"the band {res.band_notes} notes")
    print(f"         {res.status}")
    print(f"wrote    {res.midi} (track 1 the player, track 2 the band)")
    print(f"wrote    {res.pianoroll}")
    if res.wav:
        print(f"wrote    {res.wav}")
    else:
        print(f"no WAV:  {res.wav_missing}")
    return 0 if res.band_notes else 1


def cmd_ports(args: argparse.Namespace) -> int:
    from neuralband.live.ports import PortError, format_ports, list_ports

    try:
        print(format_ports(list_ports(args.api)))
    except PortError as err:
        print(f"neuralband: {err}", file=sys.stderr)
        return 2
    return 0


def _offer_inputs(api: str | None) -> str | None:
    """play without --in on a terminal: where several MIDI inputs are here, the player picks
    one (None: one or none, which play takes or names)."""
    from neuralband.live.ports import default_api, list_ports, pick_port

    names = [p.name for p in list_ports(api or default_api()) if p.direction == "in"]
    if len(names) < 2:
        return None
    def ask(prompt: str) -> str:  # on stderr, with the list and the status line
        print(prompt, end="", file=sys.stderr, flush=True)
        line = sys.stdin.readline()
        if not line:
            raise EOFError
        return line

    return pick_port(names, ask, lambda line: print(line, file=sys.stderr))


def cmd_takes(args: argparse.Namespace) -> int:
    from neuralband.live.takes import format_takes, list_takes, takes_folder

    folder = takes_folder(args.takes)
    print(format_takes(list_takes(folder), folder))
    return 0


def cmd_tune(args: argparse.Namespace) -> int:
    from neuralband.live.takes import takes_folder
    from neuralband.modelfile import ModelFileError
    from neuralband.training.tune import TuneSettings, tune
    from neuralband.training.windows import DatasetMismatch

    sources = args.takes or [str(takes_folder(args.takes_dir))]
    if not args.takes and not Path(sources[0]).is_dir():
        print(f"neuralband: no takes yet in {sources[0]}: `neuralband play` keeps each session "
              "you play in there (or give take files or folders)", file=sys.stderr)
        return 2
    settings = TuneSettings(steps=args.steps, lr=args.lr, batch=args.batch, window=args.window,
                            mix=args.mix, mix_share=args.mix_share,
                            replay_minutes=args.replay_minutes, seed=args.seed,
                            threads=args.threads, force=args.force, progress=not args.quiet)
    try:
        result = tune(args.model, sources, args.out, settings)
    except (ModelFileError, DatasetMismatch, FileNotFoundError, ValueError) as err:
        print(f"neuralband: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"neuralband: stopped; {args.out} keeps the best step so far, if one was saved",
              file=sys.stderr)
        return 130
    before, after = result["held_out_nll_base"], result["held_out_nll_tuned"]
    which = ("your held-out takes" if result["held_out"]
             else "your takes (too few to hold one out)")
    print(f"NLL on {which}: {before:.3f} -> {after:.3f} nats/event "
          f"({100 * (after - before) / before:+.0f}%)")
    print(f"model: {args.out} (play it: neuralband play --model {args.out})")
    return 0


def _learner(args: argparse.Namespace, model):
    """play --learn-me: what makes the session's `Learner` (None without the flag)."""
    if not args.learn_me:
        if args.learn_from:
            raise ValueError("--learn-from names what --learn-me learns from: give --learn-me "
                             "too")
        return None
    if args.learn_every < 1 or args.learn_steps < 1:
        raise ValueError("--learn-every and --learn-steps must be whole numbers >= 1")
    missing = [p for p in args.learn_from or [] if not Path(p).exists()]
    if missing:
        raise ValueError(f"--learn-from: no such file or folder: {', '.join(missing)}")
    from neuralband.live.learner import Learner, check_learnable, learnt_folder
    from neuralband.live.takes import takes_folder

    check_learnable(model)  # before any port opens
    keep = learnt_folder(takes_folder(args.takes))
    return partial(Learner, keep=keep, learn_from=args.learn_from, steps=args.learn_steps,
                   every_notes=args.learn_every, seed=args.seed or 0)


def cmd_play(args: argparse.Namespace) -> int:
    import faulthandler

    faulthandler.enable()  # a crash in a native library says where, thread by thread
    from neuralband.live.midimap import load_map, parse_map
    from neuralband.live.osc import parse_address, parse_allow
    from neuralband.live.ports import PortError
    from neuralband.live.session import PortChoice, learn_controls, play
    from neuralband.live.takes import takes_folder
    from neuralband.live.turns import PlaySettings
    from neuralband.loaded import LoadedModel
    from neuralband.modelfile import ModelFileError

    try:
        from neuralband.live import setup

        if args.settings:  # a saved setup, the command line's own options over it
            setup.apply(args, args.parser, args.settings)
        if args.inp is None and not args.virtual and sys.stdin.isatty() and sys.stderr.isatty():
            args.inp = _offer_inputs(args.api)  # several keyboards: the player picks one
        if args.save_settings:
            print(f"neuralband: saved this setup in "
                  f"{setup.save(args, args.parser, args.save_settings)} (play --settings "
                  f"{args.save_settings} starts it again)", file=sys.stderr)
        choice = PortChoice(inp=args.inp, out=args.out, virtual=args.virtual, api=args.api,
                            on_loss=args.on_loss)
        if args.learn:
            learn_controls(choice, args.learn)
            return 0
        if args.link and args.clock != "internal":
            raise ValueError("--link and --clock midi both set the tempo: choose one")
        if args.in_channel is not None and not 1 <= args.in_channel <= 16:
            raise ValueError(f"--in-channel is 1..16, got {args.in_channel}")
        settings = PlaySettings(mode=args.mode, wait_s=args.wait, answer_s=args.answer,
                                channel=args.channel - 1, thru=args.thru,
                                feedback_guard_s=0.03 if args.feedback_guard else 0.0,
                                in_channel=None if args.in_channel is None
                                else args.in_channel - 1)
        midi_map = load_map(args.map_file) if args.map_file else {}
        midi_map.update(parse_map(args.map or []))
        model = LoadedModel.open(args.model)  # read once, handed on
        info = model.info
        if info.encoder is None:
            raise ValueError(f"{model.name} is a {info.scheme.name} model: it writes "
                             f"{info.scheme.unit} (neuralband generate), it does not play")
        rules, controls = rules_and_controls(args, model)
        from neuralband.encoders.beats import parse_meter

        return play(choice, model, settings, rules, args.seed, args.record, args.seconds,
                    bpm=args.bpm, click=args.click,
                    meter=None if args.meter is None else parse_meter(args.meter),
                    follow_beat=args.beat != "free",
                    grace_s=None if args.grace_ms is None else args.grace_ms / 1000.0,
                    precision=args.precision, controls=controls, midi_map=midi_map,
                    osc=None if args.osc is None else parse_address(args.osc),
                    osc_allow=parse_allow(args.osc_allow), synth=args.synth,
                    soundfont=args.soundfont,
                    sync="link" if args.link else args.clock, clock_out=args.clock_out,
                    view=None if args.view is None else (args.view_host, args.view),
                    view_cells=args.view_cells, realtime=args.realtime,
                    takes=None if args.no_takes else takes_folder(args.takes),
                    make_learner=_learner(args, model))
    except KeyboardInterrupt:
        print("neuralband: stopped", file=sys.stderr)
        return 130
    except (PortError, ModelFileError, ValueError) as err:
        print(f"neuralband: {err}", file=sys.stderr)
        return 2
