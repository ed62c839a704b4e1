"""The commands that hear, see and measure what a model plays: `audition`, `score` and
`evaluate`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _roll_beats(which: str | None, files: list[Path]) -> list | None:
    """audition --beats: each file's own beats ("own"), or one reference's for every file."""
    from neuralband.encoders.beats import beats_of_file

    if which is None:
        return None
    if which == "own":
        return [beats_of_file(f) for f in files]
    return [_reference_beats(which)] * len(files)


def cmd_audition(args: argparse.Namespace) -> int:
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
    from neuralband.activations import draw, record, write_json
    from neuralband.encoders.errors import MidiError
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


def cmd_score(args: argparse.Namespace) -> int:
    import json

    from neuralband.loaded import LoadedModel
    from neuralband.modelfile import ModelFileError
    from neuralband.score import mean_nll, score_files
    from neuralband.training.dataset import find_files

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
    from neuralband.encoders.beats import beats_of_file, read_annotations

    if path.lower().endswith(".txt"):
        return read_annotations(path)
    beats = beats_of_file(path)
    if beats is None:
        raise ValueError(f"{path}: no beat found (too few notes to track one)")
    return beats


def cmd_evaluate(args: argparse.Namespace) -> int:
    import json
    from functools import partial

    from neuralband import evaluate as ev
    from neuralband.encoders.keys import key_name, parse_key

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
