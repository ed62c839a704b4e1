"""`neuralband tune`: a model learns one player from their takes, and keeps what it knew.

The base model (bundled, a file or a run folder) is fine-tuned on the player's part of each take
(the ``player`` track that `play` writes; a duet model also hears the take's ``band`` track as
its band) or on any MIDI file, with the controls it was trained with, computed from the takes as
in training. Left alone, a fine-tune forgets: 120 steps on 10 minutes of chorales took the
bundled `pop` model's NLL on held-out POP909 songs from 2.35 to 3.13 nats/event. So every batch
also holds windows of music the model already plays: its training data where you have it
(``--mix DATASET``), else music the base model plays on its own before it learns (generative
replay), so nothing of the original data is needed (+4.2% then). Figures: docs/tuning.md.

The tune folder holds ``takes-dataset/`` (the takes encoded; some held out, to choose the best
step), ``replay/`` (the base's own music, as MIDI) and its dataset, the run (``args.json``,
``metrics.csv``, the checkpoint) and ``model.json`` + ``model.safetensors``: a normal model file
that names its base (and its hash), its takes (and theirs) and the command that made it;
``--model FOLDER`` plays it. A folder that holds a tune is never replaced without ``--force``.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shlex
import shutil
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

from neuralband.atomic import write_atomic
from neuralband.encoders.schemes import EventScheme, Piece, VoicedScheme
from neuralband.live.takes import PLAYER
from neuralband.loaded import LoadedModel
from neuralband.training.config import TrainConfig, TuneSettings
from neuralband.training.dataset import build_dataset, find_files
from neuralband.training.runs import RunExists, announce, holds_run
from neuralband.training.windows import read_manifest

HELD_OUT = 0.15  # the share of the takes held out to choose the best step (one at least)
TAKES_DATASET, REPLAY, REPLAY_DATASET = "takes-dataset", "replay", "replay-dataset"


def is_take(midi: bytes) -> bool:
    """Whether MIDI bytes are a take as `play` keeps it: a track named for the player."""
    import mido

    try:
        tracks = mido.MidiFile(file=io.BytesIO(midi)).tracks
    except Exception:  # noqa: BLE001 - an unreadable file is no take; encoding names why
        return False
    return any(track.name == PLAYER for track in tracks)


def player_part(midi: bytes) -> bytes:
    """A take's player part (its ``player`` track, with the tempo map): what a solo model
    learns to play; any other MIDI file unchanged."""
    import mido

    if not is_take(midi):
        return midi
    mid = mido.MidiFile(file=io.BytesIO(midi))
    kept = [t for t in mid.tracks
            if t.name == PLAYER or not any(m.type == "note_on" for m in t)]
    out = mido.MidiFile(type=mid.type, ticks_per_beat=mid.ticks_per_beat, tracks=kept)
    buffer = io.BytesIO()
    out.save(file=buffer)
    return buffer.getvalue()


class TakeEvents(EventScheme):
    """The event scheme, reading a take's player part (a whole file where it is no take)."""

    def pieces(self, path: str, data: bytes) -> list[Piece]:
        return [Piece(None, data, player_part(data))]


class TakeVoices(VoicedScheme):
    """A voice-packed scheme reading a take's player as the lead and the band as heard as the
    band (any other file by the model's own lead rule). Its tokens mean what the base's do."""

    def encode_midi(self, midi: bytes) -> np.ndarray:
        if is_take(midi):
            as_played = replace(self.voice_settings, lead=f"track:{PLAYER}")
            return VoicedScheme(as_played).encode_midi(midi)
        return super().encode_midi(midi)


def take_reader(scheme) -> EventScheme:
    """The base model's scheme, reading takes as `tune` learns from them."""
    if scheme.plays == "events":  # the same settings, read as a take reader
        return (TakeVoices if scheme.voiced else TakeEvents).from_dict(scheme.to_dict())
    raise ValueError(f"tune learns event models (pop, pop-duet, default, duet, ...); this one "
                     f"reads {scheme.name} tokens")


def hold_out(dataset: Path, share: float = HELD_OUT) -> int:
    """Mark a share of the encoded takes (by content hash: the same takes, the same choice) as
    the valid split; with fewer than 3, none can be spared and the takes themselves are the
    valid split. Returns how many are held out."""
    rows = read_manifest(dataset)
    if not rows:
        raise ValueError("none of the takes could be read (see above)")
    ordered = sorted(range(len(rows)), key=lambda i: rows[i]["sha256"])
    held = max(1, round(share * len(rows))) if len(rows) >= 3 else 0
    for i in ordered[:held]:
        rows[i]["split"] = "valid"
    if not held:
        rows += [dict(row, split="valid") for row in rows]
    write_atomic(dataset / "manifest.jsonl", "".join(json.dumps(r) + "\n" for r in rows).encode())
    return held


def write_replay(base: LoadedModel, folder: Path, minutes: float, seed: int) -> list[Path]:
    """``minutes`` of the base model's own music, from silence, in 40-second pieces written as
    MIDI files into ``folder``: what it knew, to mix into the tune."""
    from neuralband.generate import generate

    pieces = max(1, round(minutes * 60 / 40))
    folder.mkdir(parents=True, exist_ok=True)
    made = generate(base, None, 40.0, variations=pieces, seed=seed)
    paths = []
    for number, piece in enumerate(made):
        path = folder / f"replay-{number:03d}.mid"
        base.scheme.decode_midi(piece.tokens).write(str(path))
        paths.append(path)
    return paths


def replay_dataset(base: LoadedModel, folder: Path, minutes: float, seed: int) -> str:
    """The base model's own music (`write_replay`) encoded as a dataset in ``folder``: what
    a tune mixes in where the model's training data is not at hand."""
    paths = write_replay(base, folder / REPLAY, minutes, seed)
    build_dataset(paths, folder / REPLAY_DATASET, base.scheme, workers=1,
                  fractions=(1.0, 0.0, 0.0))
    return str(folder / REPLAY_DATASET)


def file_hash(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def tune(model: str, sources: list[str], out: str, settings: TuneSettings | None = None,
         argv: list[str] | None = None, compare: bool = True) -> dict:
    """Tune ``model`` on the takes (files or folders) into the folder ``out``; returns what the
    run returns plus (``compare``) the held-out NLLs of the base and the tuned model."""
    settings = settings or TuneSettings()
    from neuralband.score import mean_nll, score_files

    folder = Path(out)
    if holds_run(folder) and not settings.force:
        raise RunExists(f"{folder} holds a tune or a run already: tune into a new folder, or "
                        "give --force to start it over")
    base = LoadedModel.open(model)
    reader = take_reader(base.scheme)
    files = find_files(sources, (".mid", ".midi"))
    if not files:
        raise ValueError(f"no MIDI file in {', '.join(sources)}: give takes (`neuralband "
                         "takes` lists them) or MIDI files")
    say = announce_line(settings.progress)
    for name in (TAKES_DATASET, REPLAY_DATASET):
        shutil.rmtree(folder / name, ignore_errors=True)  # encoded afresh: the takes may differ
    summary = build_dataset(files, folder / TAKES_DATASET, reader, workers=1,
                            fractions=(1.0, 0.0, 0.0))
    for error in summary.errors:  # said even with -q: a take left out is news
        print(f"neuralband: skipped {error['source']}: {error['reason']}", file=sys.stderr)
    held = hold_out(folder / TAKES_DATASET)
    rows = read_manifest(folder / TAKES_DATASET)
    minutes = sum(r.get("duration_s", 0.0) for r in rows if r["split"] == "train") / 60
    say(f"tuning {base.name} on {summary.encoded} takes ({minutes:.1f} minutes to learn from, "
        f"{held} held out to choose the best step)")

    mix = settings.mix
    if mix is None and settings.replay_minutes > 0:
        say(f"  the base plays {settings.replay_minutes:g} minutes of its own music to keep "
            "what it knew ...")
        mix = replay_dataset(base, folder, settings.replay_minutes, settings.seed)

    longest = max(int(r["length"]) for r in rows)
    info = base.info
    cfg = TrainConfig(
        dataset=str(folder / TAKES_DATASET), out=str(folder),
        preset=info.summary.get("preset", "medium"), hidden=info.config.hidden,
        cell=info.config.cell, dropout=info.config.dropout,
        steps=settings.steps, batch=settings.batch, window=min(settings.window, longest - 1),
        lr=settings.lr, min_lr=settings.lr / 10, warmup=min(10, settings.steps // 4),
        eval_every=max(1, settings.steps // 6), eval_windows=32, seed=settings.seed,
        # torch on every core: OMP_NUM_THREADS=1 (which `neuralband tune` sets for numpy's
        # scoring) would hold it to one
        threads=settings.threads or os.cpu_count(), force=True, progress=settings.progress,
        controls=info.controls is not None, beat=bool(info.controls and info.controls.beat),
        init=str(base.path), mix=mix, mix_share=settings.mix_share)  # mix None: plain
    takes = [{"source": r["source"], "sha256": file_hash(r["source"])}
             for r in rows[:len(rows) if held else len(rows) // 2]]
    about = {"tuned": {"base": base.name, "base_sha256": info.sha256, "takes": takes,
                       "held_out": held, "mixed": settings.mix or ("replay" if mix else None),
                       "command": shlex.join(argv or sys.argv)}}
    from neuralband.training.train import train

    result = train(cfg, announce(cfg, False), base_model=info, about=about)
    result.pop("module", None)
    result["held_out"] = held
    if not compare:
        return result
    valid = [r["source"] for r in rows if r["split"] == "valid"][:held or None]
    before = mean_nll(score_files(base, valid)[0])
    after = mean_nll(score_files(str(folder), valid)[0])
    result.update({"held_out_nll_base": before, "held_out_nll_tuned": after})
    return result


def announce_line(enabled: bool):
    """``say(line)``: a line on stderr, or nothing with -q."""
    def say(line: str) -> None:
        if enabled:
            print(line, file=sys.stderr, flush=True)
    return say
