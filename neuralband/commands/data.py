"""The commands from MIDI files to a model: `roundtrip` and `tokens` show an encoding,
`encode` makes a dataset of a folder, `train` a model of it."""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path


def cmd_roundtrip(args: argparse.Namespace) -> int:
    from neuralband.encoders.performance import describe
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


def cmd_tokens(args: argparse.Namespace) -> int:
    from neuralband.encoders.performance import EncoderSettings, describe, encode
    from neuralband.encoders.voices import VoiceSettings, encode_voices

    settings = EncoderSettings(sustain=not args.no_sustain, include_drums=args.drums)
    if args.voices:
        try:
            scheme = VoiceSettings(args.voices, args.lead, settings)
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
    from neuralband.encoders.schemes import scheme_from_options

    name = args.scheme or ("grid" if args.grid else "voices" if args.voices else "events")
    return scheme_from_options(name, vars(args))


def cmd_encode(args: argparse.Namespace) -> int:
    from neuralband.training.dataset import (
        EncodeBar,
        Limits,
        build_dataset,
        check_out_dir,
        find_files,
    )

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
    bar = EncodeBar(scheme, total, quiet=args.quiet)
    limits = Limits(max_notes=args.max_notes, max_seconds=args.max_seconds)
    try:
        summary = build_dataset(args.sources, args.out, scheme, workers=args.workers,
                                fractions=fractions, limits=limits, progress=bar)
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


def cmd_train(args: argparse.Namespace) -> int:
    from neuralband.modelfile import ModelFileError
    from neuralband.training.config import config_from_args
    from neuralband.training.runs import announce, check_run_folder, end_line, stop_message
    from neuralband.training.windows import DatasetMismatch

    cfg = None
    try:
        cfg = config_from_args(args)
        check_run_folder(cfg)
        progress = announce(cfg, cfg.progress)  # at once: torch takes a while to load
        with progress.phase("loading torch"):
            from neuralband.training.train import train

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
