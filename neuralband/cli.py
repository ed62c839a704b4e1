"""The `neuralband` command: argument parsing and printing only."""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections import Counter
from pathlib import Path


def _cmd_demo(args: argparse.Namespace) -> int:
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


def _cmd_roundtrip(args: argparse.Namespace) -> int:
    from encoders.performance import describe
    from neuralband.roundtrip import bundled_example, round_trip

    source = Path(args.midi) if args.midi else bundled_example()
    out = Path(args.out) / f"{source.stem}.roundtrip.mid"
    rt = round_trip(source, out)
    print(f"read     {rt.source}")
    print(f"         {rt.notes_in} notes, {rt.seconds:.1f} s (sustain pedal folded into lengths)")
    print(f"encoded  {len(rt.tokens)} Performance-RNN events (vocabulary of 388)")
    first = ", ".join(describe(t) for t in rt.tokens[:8])
    print(f"         first events: {first}, ...")
    print(f"decoded  {rt.notes_out} notes back; largest onset error {rt.max_onset_error_ms:.1f} ms,"
          f" offset error {rt.max_offset_error_ms:.1f} ms (10 ms steps)")
    print(f"wrote    {rt.output}")
    return 0 if rt.notes_in == rt.notes_out else 1


def _cmd_tokens(args: argparse.Namespace) -> int:
    from encoders.performance import EncoderSettings, describe, encode
    from encoders.voices import VoiceScheme, encode_voices

    settings = EncoderSettings(sustain=not args.no_sustain, include_drums=args.drums)
    if args.voices:
        try:
            scheme = VoiceScheme(args.voices, args.lead, settings)
        except ValueError as err:
            print(f"neuralband: {err}", file=sys.stderr)
            return 2
        tokens = encode_voices(args.midi, scheme)
        voice, base = scheme.unpack(tokens)
        per_voice = Counter(int(v) for v in voice[voice >= 0])
        print(f"{args.midi}: {len(tokens)} events, vocabulary of {scheme.vocab_size}; "
              + ", ".join(f"{name} {per_voice[v]}" for v, name in enumerate(scheme.names)))
        for i, tok in enumerate(tokens[: args.limit]):
            print(f"{i:6d}  {int(tok):4d}  {scheme.describe(tok)}")
        if len(tokens) > args.limit:
            print(f"   ... {len(tokens) - args.limit} more (--limit)")
        return 0
    tokens = encode(args.midi, settings)
    kinds = Counter(describe(t).split()[0] for t in tokens)
    names = ("NOTE_ON", "NOTE_OFF", "TIME_SHIFT", "VELOCITY")
    summary = ", ".join(f"{kinds[k]} {k}" for k in names)
    print(f"{args.midi}: {len(tokens)} events ({summary})")
    for i, tok in enumerate(tokens[: args.limit]):
        print(f"{i:6d}  {int(tok):3d}  {describe(tok)}")
    if len(tokens) > args.limit:
        print(f"   ... {len(tokens) - args.limit} more (--limit)")
    return 0


def _encode_scheme(args: argparse.Namespace) -> TokenScheme:  # noqa: F821
    """The token scheme ``encode``'s options name: --scheme NAME, else grid with --grid, voices
    with --voices, events without; the scheme reads its own options."""
    from encoders.schemes import scheme_from_options

    name = args.scheme or ("grid" if args.grid else "voices" if args.voices else "events")
    return scheme_from_options(name, vars(args))


def _cmd_encode(args: argparse.Namespace) -> int:
    import time

    from tqdm import tqdm

    from training.dataset import Limits, build_dataset, check_out_dir, find_files

    try:
        scheme = _encode_scheme(args)
    except ValueError as err:
        print(f"neuralband: {err}", file=sys.stderr)
        return 2
    try:
        fractions = tuple(float(x) / 100 for x in args.split.split("/"))
        if len(fractions) != 3:
            raise ValueError
    except ValueError:
        print(f"neuralband: --split wants TRAIN/VALID/TEST percentages, got {args.split!r}",
              file=sys.stderr)
        return 2
    try:
        check_out_dir(args.out)
        total = len(find_files(args.sources, scheme.suffixes))
    except (FileNotFoundError, ValueError) as err:
        print(f"neuralband: {err}", file=sys.stderr)
        return 2
    bar = tqdm(total=total, unit="file", dynamic_ncols=True, disable=args.quiet)
    counts = {"notes": 0, "errors": 0}
    unit = scheme.source_unit
    start = time.perf_counter()

    def progress(results) -> None:
        for result in results:  # one MIDI file, or every tune of an ABC file
            if result.error is not None:
                counts["errors"] += 1
            else:
                counts["notes"] += int(scheme.summary(result.tokens).get(unit, 0))
        rate = counts["notes"] / max(time.perf_counter() - start, 1e-9)
        bar.set_postfix_str(f"{rate:,.0f} {unit}/s, {counts['errors']} errors", refresh=False)
        bar.update(1)

    limits = Limits(max_notes=args.max_notes, max_seconds=args.max_seconds)
    try:
        summary = build_dataset(args.sources, args.out, scheme, workers=args.workers,
                                fractions=fractions, limits=limits, progress=progress)
    except ValueError as err:
        bar.close()
        print(f"neuralband: {err}", file=sys.stderr)
        return 2
    bar.close()
    # A piece is a MIDI file, one tune of an ABC file, or a run of lines of a text.
    print(f"{summary.found} files found: {summary.encoded} pieces encoded, {summary.failed} failed,"
          f" {summary.duplicates} duplicate; {summary.already} files already in {args.out}")
    for split, row in sorted(summary.per_split.items()):
        hours = "" if scheme.plays is None else f"  {row['hours']:8.2f} hours"
        print(f"  {split:5s}  {row['files']:6d} pieces  {row['events']:10,d} "
              f"{scheme.unit:6s}{hours}")
    if summary.failed:
        print(f"warning: {summary.failed} pieces could not be used; see {args.out}/errors.jsonl",
              file=sys.stderr)
        return 1 if args.strict else 0
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from neuralband.modelfile import ModelFileError
    from training.config import config_from_args
    from training.runs import announce, check_run_folder, end_line, stop_message
    from training.windows import DatasetMismatch

    cfg = None
    try:
        cfg = config_from_args(args)
        check_run_folder(cfg)
        progress = announce(cfg, cfg.progress)  # at once: torch takes a while to load
        with progress.phase("loading torch"):
            from training.train import train

        result = train(cfg, progress)
    except (ModelFileError, DatasetMismatch, FileNotFoundError, ValueError) as err:
        print(f"neuralband: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"neuralband: {stop_message(cfg) if cfg else 'stopped'}", file=sys.stderr)
        return 130
    if "model" in result:
        print(end_line(result["best_valid_nll"], result["baselines"]))
        print(f"model: {result['model']}.safetensors + .json")
    return 0


def _rules_and_controls(args: argparse.Namespace, model):
    """generate's and play's sampling options -> (Rules, ControlChoice or None): the model's own
    longest note unless --max-note says otherwise; --key/--density for a conditioned model only
    (ValueError in one line for another)."""
    from neuralband.sampling import DUET_CLASH, PLAIN_DUET_UNDER_MELODY
    from neuralband.steering import ControlChoice

    info = model.info
    given = {"max_note_s": args.max_note, "under_melody": args.under_melody,
             "clash": args.clash, "tight": args.tight}
    limit = {name: value for name, value in given.items() if value is not None}
    if getattr(args, "mode", None) == "duet" and not info.scheme.accompanies:
        # any model's duet band keeps under your tune (a voice-packed one: `model_rules`)
        limit.setdefault("under_melody", PLAIN_DUET_UNDER_MELODY)
        limit.setdefault("clash", DUET_CLASH)
    rules = model.rules(None, temperature=args.temperature, top_p=args.top_p,
                        max_polyphony=args.max_polyphony, **limit)
    if info.controls is None:
        if args.key or args.density:
            raise ValueError(f"{model.name} reads no key or density controls (trained without "
                             "--controls): leave out --key and --density")
        return rules, None
    return rules, ControlChoice.parse(args.key, args.density)


def _cmd_generate(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from neuralband.audition import mark_primer_end
    from neuralband.generate import accompany, generate
    from neuralband.loaded import LoadedModel
    from neuralband.modelfile import ModelFileError

    try:
        model = LoadedModel.open(args.model)  # read once, handed on
        info = model.info
        rules, choice = _rules_and_controls(args, model)
        scheme = info.scheme
        if scheme.plays == "clock":
            return _generate_grid(args, model, rules)
        if scheme.plays is None:  # a scheme of no notes (text, tunes): tokens in, tokens out
            return _generate_tokens(args, model, rules)
        if args.lead and not scheme.accompanies:
            raise ValueError(f"{model.name} is not a voice-packed model: --lead needs one, "
                             "e.g. --model duet")
        if args.lead and args.primer:
            raise ValueError("--lead is accompanied from silence: leave out --primer")
        if args.lead and args.seconds is not None and not args.seconds > 0:
            raise ValueError(f"--seconds must be > 0, got {args.seconds:g}")
        if args.lead:
            lead = _melody(args.lead, scheme.voices, args.lead_track, args.seconds)
            seconds = scheme.seconds(lead)  # the progress bar counts the melody's length
        else:
            primer = scheme.read_primer(args.primer) if args.primer else None
            seconds = (30.0 if args.length is None else math.inf) if args.seconds is None \
                else args.seconds
        with tqdm(total=round(seconds) if math.isfinite(seconds) else round(args.length / 10),
                  unit="s" if math.isfinite(seconds) else "x10 events",
                  disable=args.quiet or (seconds < 20 if math.isfinite(seconds) else
                                         args.length < 200),
                  dynamic_ncols=True) as bar:
            beats = _offline_beats(args, model, seconds, primer if not args.lead else None)
            if args.lead:
                pieces = accompany(model, lead, args.n, rules, args.seed,
                                   progress=lambda dt: bar.update(round(dt)), controls=choice,
                                   beats=beats)
            else:
                pieces = generate(model, primer, seconds, args.n, rules, args.seed,
                                  progress=lambda dt: bar.update(round(dt)), controls=choice,
                                  length=args.length, beats=beats)
    except (ModelFileError, ValueError) as err:
        print(f"neuralband: {err}", file=sys.stderr)
        return 2
    for name, piece in zip(_output_names(args), pieces, strict=True):
        name.parent.mkdir(parents=True, exist_ok=True)
        pm = scheme.decode_midi(piece.tokens)
        if args.primer and piece.primer_length:
            mark_primer_end(pm, piece.tokens[:piece.primer_length], scheme)
        pm.write(str(name))
        notes = sum(len(i.notes) for i in pm.instruments)
        parts = (" (" + ", ".join(f"{i.name} {len(i.notes)}" for i in pm.instruments) + ")"
                 if scheme.accompanies else "")
        print(f"wrote {name}: {notes} notes{parts}, {pm.get_end_time():.1f} s "
              f"({len(piece.tokens) - piece.primer_length} events generated)")
    return 0


def _offline_beats(args: argparse.Namespace, model, seconds: float, primer) -> object:
    """generate's beat (`neuralband.groove`): --bpm, else the primer's or melody's beats, else
    none; refused in one line for a model that reads no beat."""
    from neuralband.groove import FROM_SILENCE_S, BeatChoice, offline_beats

    info = model.info
    choice = BeatChoice.parse(args.bpm, args.meter, args.beat)
    reads = info.controls is not None and info.controls.beat
    if not reads:
        if choice.bpm is not None or choice.meter is not None:
            raise ValueError(f"{model.name} reads no beat (trained without --beat): leave out "
                             "--bpm and --meter")
        return None
    source = args.lead or args.primer
    before = 0.0 if primer is None else info.scheme.seconds(primer)
    until = before + (seconds if math.isfinite(seconds) else 600.0) + 5.0
    return offline_beats(choice, source, FROM_SILENCE_S, until)


def _generate_tokens(args: argparse.Namespace, model, rules) -> int:
    """generate with a model of a scheme without notes (text): --length tokens after the
    --primer text, each variation decoded by the scheme and written as a file."""
    from encoders.errors import MidiError
    from neuralband.generate import sample_tokens

    scheme = model.scheme
    if args.lead or args.seconds is not None:
        raise ValueError(f"{model.name} is a {scheme.name} model: give --length N (tokens) "
                         "and --primer TEXT, not --lead or --seconds")
    primer = scheme.read_primer(args.primer) if args.primer else None
    pieces = sample_tokens(model, primer, args.length or 400, args.n, rules, args.seed)
    for name, piece in zip(_output_names(args, scheme.output_suffix), pieces, strict=True):
        name.parent.mkdir(parents=True, exist_ok=True)
        text = scheme.decode(piece.tokens if args.primer else piece.tokens[piece.primer_length:])
        name.write_text(text)
        also = ""
        if scheme.writes_midi:  # a tune: its MIDI too, for audition
            try:
                name.with_suffix(".mid").write_bytes(scheme.to_midi(text, str(name)))
                also = f" and {name.with_suffix('.mid')}"
            except MidiError as err:
                also = f" (no MIDI: {err.reason})"
        print(f"wrote {name}{also}: {len(piece.tokens) - piece.primer_length} {scheme.unit} "
              f"generated")
    return 0


def _melody(path: str, voices, track: str | None, seconds: float | None):
    """generate --lead's melody as tokens: its first ``seconds`` (notes begun by then, ended
    there), or all of it."""
    import numpy as np

    from encoders.performance import encode_notes
    from encoders.voices import melody_part

    part = melody_part(path, voices, track)
    if seconds is not None:
        part = part.select(part.start_s < seconds)
        part = part.with_end(np.minimum(part.end_s, seconds))
        if not len(part):
            raise ValueError(f"{path}: the melody has no note in its first {seconds:g} s")
    return encode_notes(part, voices.settings)


def _generate_grid(args: argparse.Namespace, model, rules) -> int:
    """generate --lead with a grid model: the melody's steps in, the band's states out."""
    from neuralband.grid_band import accompany_file

    if not args.lead or args.seconds is not None or args.primer:
        raise ValueError(f"{model.name} is a grid model: it accompanies a melody (--lead "
                         "MELODY.mid), for the melody's length (no --seconds or --primer)")
    pieces = accompany_file(model, args.lead, args.n, rules, args.seed, args.lead_track)
    for name, pm in zip(_output_names(args), pieces, strict=True):
        name.parent.mkdir(parents=True, exist_ok=True)
        pm.write(str(name))
        parts = ", ".join(f"{i.name} {len(i.notes)}" for i in pm.instruments)
        print(f"wrote {name}: {sum(len(i.notes) for i in pm.instruments)} notes ({parts}), "
              f"{pm.get_end_time():.1f} s")
    return 0


OUTPUT_SUFFIXES = (".mid", ".midi", ".abc", ".txt")  # -o names a file, whatever the scheme


def _output_names(args: argparse.Namespace, suffix: str = ".mid") -> list[Path]:
    """-o as n file names, one rule for every scheme: a name with a file suffix (.mid, .midi,
    .abc, .txt) is the file, numbered NAME-K when n > 1, written with the scheme's own
    ``suffix`` (.mid for music, .abc for a tune, .txt for text; a tune's MIDI goes beside it);
    any other name is a folder of generated-K files."""
    out = Path(args.out)
    if out.suffix.lower() in OUTPUT_SUFFIXES:
        keep = out.suffix if out.suffix.lower() in (".mid", ".midi") and suffix == ".mid" \
            else suffix
        if args.n == 1:
            return [out.with_suffix(keep)]
        return [out.with_name(f"{out.stem}-{i + 1}{keep}") for i in range(args.n)]
    return [out / f"generated-{i + 1}{suffix}" for i in range(args.n)]


def _cmd_ports(args: argparse.Namespace) -> int:
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


def _cmd_takes(args: argparse.Namespace) -> int:
    from neuralband.live.takes import format_takes, list_takes, takes_folder

    folder = takes_folder(args.takes)
    print(format_takes(list_takes(folder), folder))
    return 0


def _cmd_tune(args: argparse.Namespace) -> int:
    from neuralband.live.takes import takes_folder
    from neuralband.modelfile import ModelFileError
    from training.tune import TuneSettings, tune
    from training.windows import DatasetMismatch

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
    return lambda model, engine, say, precision: Learner(
        model, engine, say, keep, precision=precision, learn_from=args.learn_from,
        steps=args.learn_steps, every_notes=args.learn_every, seed=args.seed or 0)


def _cmd_play(args: argparse.Namespace) -> int:
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
        rules, controls = _rules_and_controls(args, model)
        from encoders.beats import parse_meter

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


def _roll_beats(which: str | None, files: list[Path]) -> list | None:
    """audition --beats: each file's own beats ("own"), or one reference's for every file."""
    from encoders.beats import beats_of_file

    if which is None:
        return None
    if which == "own":
        return [beats_of_file(f) for f in files]
    return [_reference_beats(which)] * len(files)


def _cmd_audition(args: argparse.Namespace) -> int:
    from neuralband.audition import (
        AuditionError,
        draw_pianoroll,
        html_report,
        render_wav,
        wav_info,
    )

    files = [Path(f) for f in args.midi]
    if args.html and (files or args.out or args.pianoroll):
        print("neuralband: --html DIR reports every MIDI file in DIR; give it alone",
              file=sys.stderr)
        return 2
    if not args.html and not files:
        print("neuralband: audition wants MIDI files, or --html DIR", file=sys.stderr)
        return 2
    if args.out and len(files) != 1:
        print("neuralband: -o names one WAV; give one MIDI file with it", file=sys.stderr)
        return 2
    if args.activations:
        return _activations(files, args.activations, args.model)
    if args.play is not None:
        from neuralband.live.file_player import play_file
        from neuralband.live.ports import PortError

        try:
            for midi in files:
                print(f"playing {midi} to {args.play or 'the first output'} (Ctrl-C stops)",
                      flush=True)
                sent, seconds = play_file(midi, args.play or None, args.api)
                print(f"played {sent} messages in {seconds:.1f} s; every note ended")
        except PortError as err:
            print(f"neuralband: {err}", file=sys.stderr)
            return 2
        return 0
    try:
        if args.html:
            report = html_report(args.html, soundfont=args.soundfont)
            skipped = f", {len(report.failed)} unreadable skipped" if report.failed else ""
            print(f"wrote {report.html}: {len(report.pieces)} pieces{skipped}")
            return 0
        default = not args.out and not args.pianoroll
        wavs = [Path(args.out)] if args.out else [f.with_suffix(".wav") for f in files]
        if args.out or default:
            for midi, wav in zip(files, wavs, strict=True):
                render_wav(midi, wav, args.soundfont)
                seconds, rate = wav_info(wav)
                print(f"wrote {wav}: {seconds:.1f} s at {rate} Hz")
        beats = _roll_beats(args.beats, files)
        part = {"start_s": args.start, "end_s": args.end}
        if args.pianoroll:
            draw_pianoroll(files, args.pianoroll, beats=beats, **part)
            print(f"wrote {args.pianoroll}: piano roll of {len(files)} file(s)")
        elif default:
            for k, midi in enumerate(files):
                png = draw_pianoroll([midi], midi.with_suffix(".png"),
                                     beats=None if beats is None else beats[k:k + 1], **part)
                print(f"wrote {png}")
    except AuditionError as err:
        print(f"neuralband: {err}", file=sys.stderr)
        return 2
    return 0


def _activations(files: list[Path], png: str, model: str | None) -> int:
    """audition FILE --activations OUT.png: the model's cells under the roll, and OUT.json."""
    from encoders.errors import MidiError
    from neuralband.activations import draw, record, write_json
    from neuralband.loaded import LoadedModel
    from neuralband.modelfile import ModelFileError

    if len(files) != 1:
        print("neuralband: --activations reads one MIDI file", file=sys.stderr)
        return 2
    try:
        acts = record(LoadedModel.open(model), files[0])
        found = acts.findings()
        out = draw(acts, found, png)
        js = write_json(acts, found, Path(png).with_suffix(".json"))
    except (MidiError, ModelFileError, ValueError) as err:
        print(f"neuralband: {err}", file=sys.stderr)
        return 2
    print(f"wrote {out} and {js}: {acts.layers} layers x {acts.hidden} cells of {acts.model} "
          f"over {files[0].name}")
    for f in found[:6]:
        print(f"  cell {f.layer}:{f.cell} follows {f.feature} (r = {f.r:+.2f})")
    return 0


def _cmd_score(args: argparse.Namespace) -> int:
    import json

    from neuralband.loaded import LoadedModel
    from neuralband.modelfile import ModelFileError
    from neuralband.score import mean_nll, score_files
    from training.dataset import find_files

    try:
        model = LoadedModel.open(args.model)  # a bad model is the one line, before any file
        paths = find_files(args.midi, model.scheme.suffixes)
        scores, failed = score_files(model, paths, batch=args.batch,
                                     controls=args.controls)
    except (ModelFileError, ValueError, FileNotFoundError) as err:
        print(f"neuralband: {err}", file=sys.stderr)
        return 2
    for reason in failed:
        print(f"neuralband: skipped {reason}", file=sys.stderr)
    mean = mean_nll(scores)
    if args.json:
        print(json.dumps({"model": str(args.model), "mean_nll": _json_number(mean),
                          "events": sum(s.predicted for s in scores),
                          "files": [{"file": s.path, "events": s.predicted,
                                     "nll": _json_number(s.nll)} for s in scores],
                          "skipped": failed}))
    else:
        print(f"{'events':>9}  {'NLL':>7}  file (nats per predicted event)")
        for s in scores:
            print(f"{s.predicted:9d}  {s.nll:7.4f}  {s.path}")
        print(f"{sum(s.predicted for s in scores):9d}  {mean:7.4f}  mean over {len(scores)} "
              f"file(s), weighted by events" + (f"; {len(failed)} skipped" if failed else ""))
    return 0 if scores else 1


def _json_number(x: float) -> float | None:
    """A metric for JSON: NaN (nothing to measure) is null."""
    return None if x != x else round(x, 6)


def _reference_beats(path: str):
    """evaluate --beats: a beat file (POP909's beat_midi.txt) or a MIDI file's beats."""
    from encoders.beats import beats_of_file, read_annotations

    if path.lower().endswith(".txt"):
        return read_annotations(path)
    beats = beats_of_file(path)
    if beats is None:
        raise ValueError(f"{path}: no beat found (too few notes to track one)")
    return beats


def _cmd_evaluate(args: argparse.Namespace) -> int:
    import json
    from functools import partial

    from encoders.keys import key_name, parse_key
    from neuralband import evaluate as ev

    try:
        key = parse_key(args.key) if args.key else None
        lo, hi = ev.measured_range(args.primer_s, args.seconds)
        sets = {"generated": ev.find_midi(args.generated)}
        if args.against:
            sets["real"] = ev.find_midi(args.against)
    except (ValueError, FileNotFoundError) as err:
        print(f"neuralband: {err}", file=sys.stderr)
        return 2
    loader = partial(ev.load_parts if args.accompaniment else ev.load_notes,
                     sustain=not args.no_sustain)
    loaded = {}
    for name, paths in sets.items():
        loaded[name], failed = ev.read_all(paths, loader)
        for reason in failed:
            print(f"neuralband: skipped {reason}", file=sys.stderr)
        if not loaded[name]:
            print(f"neuralband: no readable MIDI files among the {name} "
                  f"({len(paths)} found)", file=sys.stderr)
            return 2
    if args.accompaniment:
        names = ev.ACCOMPANIMENT_METRICS
        rows = {k: ev.accompaniment_rows(v, args.primer_s, args.seconds, key)
                for k, v in loaded.items()}
    else:
        names = ev.SOLO_METRICS
        rows = {k: ev.solo_rows(v, args.primer_s, args.seconds, args.cap, key,
                                reference=loaded.get("real") if k == "generated" else None)
                for k, v in loaded.items()}
    if args.beats or args.primer_beats:
        try:
            beats = _reference_beats(args.beats) if args.beats else None
        except (ValueError, OSError) as err:
            print(f"neuralband: {err}", file=sys.stderr)
            return 2
        if beats is None and args.primer_s <= 0:
            print("neuralband: --primer-beats needs --primer-s (the primer to find them in)",
                  file=sys.stderr)
            return 2
        names = (*names, *ev.GROOVE_METRICS)
        for k, v in loaded.items():  # the band's onsets, in an accompaniment
            played = [band for _, band in v] if args.accompaniment else v
            for row, groove in zip(rows[k], ev.groove_rows(played, args.primer_s, args.seconds,
                                                           beats), strict=True):
                row.update(groove)
    means = {k: ev.mean_metrics(r, names) for k, r in rows.items()}
    print(f"{'metric':22s}" + "".join(f"{k:>12s}" for k in means))
    for metric in names:
        print(f"{metric:22s}" + "".join(
            f"{m[metric]:12.3f}" if m[metric] == m[metric] else f"{'-':>12s}"
            for m in means.values()))
    print(f"{'files':22s}" + "".join(f"{len(r):12d}" for r in rows.values()))
    result = {k: {"files": len(rows[k]), **{n: _json_number(v) for n, v in m.items()}}
              for k, m in means.items()}
    result["range_s"] = [lo, hi]
    result["key"] = key_name(*key) if key else None
    line = json.dumps(result)
    print(line)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(line + "\n")
    return 0


# The commands, by name: each takes the parsed options (`neuralband.options`).
COMMANDS = {
    "demo": _cmd_demo,
    "roundtrip": _cmd_roundtrip,
    "tokens": _cmd_tokens,
    "encode": _cmd_encode,
    "train": _cmd_train,
    "generate": _cmd_generate,
    "ports": _cmd_ports,
    "play": _cmd_play,
    "takes": _cmd_takes,
    "tune": _cmd_tune,
    "audition": _cmd_audition,
    "score": _cmd_score,
    "evaluate": _cmd_evaluate,
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
    from encoders.errors import MidiError

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
