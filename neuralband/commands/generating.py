"""The `generate` command: a model's music, continued or accompanied, or its text, as
files; and the sampling options it shares with `play`."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path


def rules_and_controls(args: argparse.Namespace, model):
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


def cmd_generate(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from neuralband.audition import mark_primer_end
    from neuralband.encoders.schemes import duration_s
    from neuralband.generate import TAIL_S, accompany, generate
    from neuralband.loaded import LoadedModel
    from neuralband.modelfile import ModelFileError

    try:
        model = LoadedModel.open(args.model)  # read once, handed on
        info = model.info
        rules, choice = rules_and_controls(args, model)
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
            lead = _melody(args.lead, scheme, args.lead_track, args.seconds)
            seconds = duration_s(lead, scheme.settings)  # the bar counts the melody's length
        else:
            primer = scheme.read_primer(args.primer) if args.primer else None
            seconds = (30.0 if args.length is None else math.inf) if args.seconds is None \
                else args.seconds
        # Whole seconds of music; accompanying, of every variation (played one by one) and
        # the tail after the melody.
        total = args.n * int(seconds + TAIL_S) if args.lead else round(seconds) \
            if math.isfinite(seconds) else round(args.length / 10)
        with tqdm(total=total,
                  unit="s" if math.isfinite(seconds) else "x10 events",
                  disable=args.quiet or (seconds < 20 if math.isfinite(seconds) else
                                         args.length < 200),
                  dynamic_ncols=True) as bar:
            beats = _offline_beats(args, model, seconds, primer if not args.lead else None)
            if args.lead:
                pieces = accompany(model, lead, args.n, rules, args.seed,
                                   progress=bar, controls=choice,
                                   beats=beats)
            else:
                pieces = generate(model, primer, seconds, args.n, rules, args.seed,
                                  progress=bar, controls=choice,
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
    from neuralband.encoders.errors import MidiError
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


def _melody(path: str, scheme, track: str | None, seconds: float | None):
    """generate --lead's melody as tokens: its first ``seconds`` (notes begun by then, ended
    there), or all of it."""
    import numpy as np

    from neuralband.encoders.performance import encode_notes

    part = scheme.lead_notes(path, track)
    if seconds is not None:
        part = part.select(part.start_s < seconds)
        part = part.with_end(np.minimum(part.end_s, seconds))
        if not len(part):
            raise ValueError(f"{path}: the melody has no note in its first {seconds:g} s")
    return encode_notes(part, scheme.settings)


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
