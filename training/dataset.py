"""MIDI and ABC folders -> a training dataset: token shards, a manifest, and what failed.

A dataset folder holds::

    settings.json      encoder settings (training refuses a dataset made with other ones), and
                       for a voice-packed dataset (`encoders.voices`) its voices and lead rule,
                       for an ensemble-grid dataset (`encoders.grid`) its grid
    manifest.jsonl     one line per encoded piece: source, sha256, split, shard, offset, length,
                       duration_s, notes (and tune, the X: reference, for a tune of an ABC file)
    errors.jsonl       one line per piece that could not be used: source (tune), reason
    shards/NNNNN.npy   uint16 token arrays; a file's tokens are shard[offset:offset + length]
                       (a grid dataset: its input classes, uint32 beyond 4 voices)

Files are split train/valid/test by their content hash, so adding files never moves old ones, and
exact duplicates are kept once. Running again adds only new files. The manifest is the commit
point: shards are written first and the manifest replaced atomically last, so an interrupted run
leaves the old dataset (plus unreferenced shard files that the next run overwrites).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from encoders.abc import split_tunes, tune_to_midi
from encoders.errors import MidiError
from encoders.grid import NEW, GridSettings, codes_states, codes_summary, encode_grid
from encoders.performance import DEFAULT_SETTINGS, EncoderSettings, Event, encode
from encoders.voices import VoiceScheme, encode_voices
from neuralband.atomic import write_atomic

FORMAT = "neuralband-dataset"
VERSION = 1
MIDI_SUFFIXES = (".mid", ".midi", ".kar")
ABC_SUFFIX = ".abc"
SPLITS = ("train", "valid", "test")
DEFAULT_FRACTIONS = (0.90, 0.05, 0.05)
SHARD_TOKENS = 1 << 24  # 16 M tokens, 32 MB per shard


@dataclass(frozen=True)
class Limits:
    """Files beyond these are refused as oversized (listed in errors.jsonl), not encoded."""

    max_notes: int = 500_000
    max_seconds: float = 4 * 3600.0
    max_bytes: int = 64 * 1024 * 1024


@dataclass
class Summary:
    """What one run did."""

    found: int = 0
    encoded: int = 0
    failed: int = 0
    duplicates: int = 0
    already: int = 0
    per_split: dict[str, dict[str, float]] = field(default_factory=dict)
    errors: list[dict] = field(default_factory=list)

    def add(self, split: str, events: int, seconds: float) -> None:
        row = self.per_split.setdefault(split, {"files": 0, "events": 0, "hours": 0.0})
        row["files"] += 1
        row["events"] += events
        row["hours"] += seconds / 3600.0


def find_midi_files(sources: Iterable[str | os.PathLike]) -> list[Path]:
    """Every .mid/.midi/.kar/.abc file under the sources (files or folders), sorted, deduplicated.

    Raises FileNotFoundError naming the first source that does not exist.
    """
    found: set[Path] = set()
    for source in sources:
        path = Path(source)
        if not path.exists():
            raise FileNotFoundError(f"no such file or folder: {path}")
        if path.is_file():
            found.add(path)
            continue
        for p in path.rglob("*"):
            if p.suffix.lower() in (*MIDI_SUFFIXES, ABC_SUFFIX) and p.is_file():
                found.add(p)
    return sorted(found)


def split_of(sha256: str, fractions: tuple[float, float, float] = DEFAULT_FRACTIONS) -> str:
    """train/valid/test from the content hash alone, so a file's split never changes."""
    u = int(sha256[:15], 16) / float(1 << 60)
    edge = 0.0
    for name, frac in zip(SPLITS, fractions, strict=True):
        edge += frac
        if u < edge:
            return name
    return SPLITS[-1]


@dataclass(frozen=True)
class _Job:
    path: str
    settings: EncoderSettings
    limits: Limits
    voices: VoiceScheme | None = None
    grid: GridSettings | None = None


@dataclass(frozen=True)
class _Result:
    path: str
    tune: str | None  # the X: reference of an ABC tune, None for a MIDI file
    sha256: str | None
    tokens: np.ndarray | None
    error: str | None


def _encode_one(job: _Job) -> list[_Result]:
    """Worker: read, hash, check size, encode (every tune of an ABC file). Never raises."""
    try:
        data = Path(job.path).read_bytes()
    except OSError as err:
        return [_Result(job.path, None, None, None, f"unreadable: {err.strerror or err}")]
    if len(data) > job.limits.max_bytes:
        return [_Result(job.path, None, hashlib.sha256(data).hexdigest(), None,
                        f"oversized: {len(data)} bytes > {job.limits.max_bytes}")]
    if job.path.lower().endswith(ABC_SUFFIX):
        tunes = split_tunes(data.decode("utf-8", errors="replace"))
        if not tunes:
            return [_Result(job.path, None, None, None, "no ABC tune (no X: line)")]
        pieces = [(t.ref, t.text.encode(), t) for t in tunes]
    else:
        pieces = [(None, data, None)]
    results = []
    for ref, content, tune in pieces:
        sha = hashlib.sha256(content).hexdigest()
        name = f"{job.path}#{ref}" if ref else job.path
        try:
            midi = tune_to_midi(tune, name) if tune is not None else content
            if job.grid is not None:
                tokens = encode_grid(midi, job.grid, job.settings)
            elif job.voices is not None:
                tokens = encode_voices(midi, job.voices)
            else:
                tokens = encode(midi, job.settings)
        except MidiError as err:
            results.append(_Result(job.path, ref, sha, None, err.reason))
            continue
        except Exception as err:  # noqa: BLE001 - one bad file must not stop the batch
            results.append(_Result(job.path, ref, sha, None, f"{type(err).__name__}: {err}"))
            continue
        if job.grid is not None:
            error = _grid_refusal(tokens, job.grid, job.limits)
        else:
            error = _refusal(tokens, job.settings, job.limits, job.voices)
        results.append(_Result(job.path, ref, sha, None if error else tokens.astype(
            token_dtype(job.grid.input_classes if job.grid else 1 << 16)), error))
    return results


def _refusal(tokens: np.ndarray, settings: EncoderSettings, limits: Limits,
             voices: VoiceScheme | None = None) -> str | None:
    """Why a piece is not used (empty, no band to learn from, or oversized), or None."""
    if voices is not None:
        voice, tokens = voices.unpack(tokens)
        if not np.any((voice > 0) & (settings.kinds[tokens] == Event.NOTE_ON)):
            return "no band: every note is in the lead part"
    notes = int((settings.kinds[tokens] == Event.NOTE_ON).sum())
    if notes == 0:
        return "empty: no notes"
    if notes > limits.max_notes:
        return f"oversized: {notes} notes > {limits.max_notes} (--max-notes)"
    seconds = duration_s(tokens, settings)
    if seconds > limits.max_seconds:
        return f"oversized: {seconds:.0f} s > {limits.max_seconds:.0f} s (--max-seconds)"
    return None


def _grid_refusal(codes: np.ndarray, grid: GridSettings, limits: Limits) -> str | None:
    """Why a grid piece is not used (no band notes, or oversized), or None."""
    states = codes_states(codes, grid.voices)
    if not np.any(states[:, 1:] >= NEW):
        return "no band: every note is in the lead part" if np.any(states >= NEW) else \
            "empty: no notes"
    seconds, notes = codes_summary(codes, grid)
    if notes > limits.max_notes:
        return f"oversized: {notes} notes > {limits.max_notes} (--max-notes)"
    if seconds > limits.max_seconds:
        return f"oversized: {seconds:.0f} s > {limits.max_seconds:.0f} s (--max-seconds)"
    return None


def token_dtype(classes: int) -> type:
    """The smallest unsigned type the shards can hold ``classes`` classes in."""
    return np.uint16 if classes <= 1 << 16 else np.uint32


def duration_s(tokens: np.ndarray, settings: EncoderSettings = DEFAULT_SETTINGS) -> float:
    """Length of a token sequence in seconds: the sum of its TIME_SHIFTs."""
    steps = int(settings.values[tokens][settings.kinds[tokens] == Event.TIME_SHIFT].sum())
    return steps / settings.steps_per_second


def _results(jobs: list[_Job], workers: int) -> Iterator[list[_Result]]:
    if workers <= 1 or len(jobs) <= 1:
        yield from map(_encode_one, jobs)
        return
    with ProcessPoolExecutor(max_workers=workers) as pool:
        chunk = max(1, min(32, len(jobs) // (8 * workers)))
        yield from pool.map(_encode_one, jobs, chunksize=chunk)


def check_out_dir(out_dir: str | Path) -> None:
    """ValueError in one line where a dataset cannot go: a file is in the way."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out} is a file, not a dataset folder: give -o a new or dataset folder")


def read_existing(out_dir: Path, settings: EncoderSettings,
                  voices: VoiceScheme | None = None,
                  grid: GridSettings | None = None) -> list[dict]:
    """The manifest of a dataset already at out_dir (empty if none); refuses other settings."""
    settings_path = out_dir / "settings.json"
    if not settings_path.exists():
        return []
    stored = json.loads(settings_path.read_text())
    if stored.get("format") != FORMAT:
        raise ValueError(f"{out_dir} is not a neuralband dataset (settings.json format)")
    if EncoderSettings.from_dict(stored["encoder"]) != settings:
        raise ValueError(f"{out_dir} was encoded with other settings: {stored['encoder']}; "
                         f"asked for {settings.to_dict()}")
    if stored.get("voices") != (voices.to_dict() if voices else None):
        raise ValueError(f"{out_dir} was encoded with voices {stored.get('voices')}; "
                         f"asked for {voices.to_dict() if voices else None}")
    if stored.get("grid") != (grid.to_dict() if grid else None):
        raise ValueError(f"{out_dir} was encoded with grid {stored.get('grid')}; "
                         f"asked for {grid.to_dict() if grid else None}")
    manifest = out_dir / "manifest.jsonl"
    if not manifest.exists():
        return []
    return [json.loads(line) for line in manifest.read_text().splitlines() if line.strip()]


def _write_atomic(path: Path, text: str) -> None:
    write_atomic(path, text.encode())


def _save_shard(path: Path, tokens: np.ndarray) -> None:
    buf = io.BytesIO()
    np.save(buf, tokens)
    write_atomic(path, buf.getvalue())


def build_dataset(sources: Iterable[str | os.PathLike], out_dir: str | os.PathLike,
                  settings: EncoderSettings = DEFAULT_SETTINGS, workers: int | None = None,
                  fractions: tuple[float, float, float] = DEFAULT_FRACTIONS,
                  limits: Limits = Limits(), shard_tokens: int = SHARD_TOKENS,
                  progress: Callable[[list[_Result]], None] | None = None,
                  voices: VoiceScheme | None = None,
                  grid: GridSettings | None = None) -> Summary:
    """Encode every MIDI file under ``sources`` into the dataset at ``out_dir`` (made or grown);
    with ``voices``, as voice-packed tokens (its settings must be ``settings``); with ``grid``,
    as the input classes of an ensemble-grid model (`encoders.grid.encode_grid`)."""
    if voices is not None and voices.settings != settings:
        raise ValueError("the voice scheme was made for other encoder settings")
    if voices is not None and grid is not None:
        raise ValueError("a dataset is voice-packed or a grid, not both")
    if abs(sum(fractions) - 1.0) > 1e-9 or min(fractions) < 0:
        raise ValueError(f"split fractions must be >= 0 and sum to 1, got {fractions}")
    files = find_midi_files(sources)
    out = Path(out_dir)
    check_out_dir(out)
    old = read_existing(out, settings, voices, grid)
    (out / "shards").mkdir(parents=True, exist_ok=True)
    if not (out / "settings.json").exists():
        meta = {"format": FORMAT, "version": VERSION, "encoder": settings.to_dict(),
                **({"voices": voices.to_dict()} if voices else {}),
                **({"grid": grid.to_dict()} if grid else {}),
                "splits": dict(zip(SPLITS, fractions, strict=True))}
        _write_atomic(out / "settings.json", json.dumps(meta, indent=2) + "\n")

    summary = Summary(found=len(files))
    known_sources = {row["source"] for row in old}
    known_hashes = {row["sha256"] for row in old}
    todo = [str(p) for p in files if str(p) not in known_sources]
    summary.already = len(files) - len(todo)
    jobs = [_Job(p, settings, limits, voices, grid) for p in todo]

    next_shard = 1 + max((int(p.stem) for p in (out / "shards").glob("[0-9]*.npy")), default=-1)
    pending: list[np.ndarray] = []
    pending_rows: list[dict] = []
    pending_len = 0
    new_rows: list[dict] = []

    def flush() -> None:
        nonlocal next_shard, pending, pending_rows, pending_len
        if not pending:
            return
        name = f"{next_shard:05d}.npy"
        _save_shard(out / "shards" / name, np.concatenate(pending))
        for row in pending_rows:
            row["shard"] = name
        new_rows.extend(pending_rows)
        next_shard += 1
        pending, pending_rows, pending_len = [], [], 0

    for results in _results(jobs, workers or os.cpu_count() or 1):
        if progress is not None:
            progress(results)
        for result in results:
            where = {"source": result.path} | ({"tune": result.tune} if result.tune else {})
            if result.error is not None:
                summary.failed += 1
                summary.errors.append(where | {"reason": result.error})
                continue
            if result.sha256 in known_hashes:
                summary.duplicates += 1
                continue
            known_hashes.add(result.sha256)
            tokens = result.tokens
            if pending_len and pending_len + len(tokens) > shard_tokens:
                flush()
            split = split_of(result.sha256, fractions)
            if grid is not None:
                seconds, notes = codes_summary(tokens, grid)
            else:
                base = voices.unpack(tokens)[1] if voices else tokens
                seconds = duration_s(base, settings)
                notes = int((settings.kinds[base] == Event.NOTE_ON).sum())
            pending_rows.append(where | {
                "sha256": result.sha256, "split": split, "shard": None, "offset": pending_len,
                "length": len(tokens), "duration_s": round(seconds, 3), "notes": notes,
            })
            pending.append(tokens)
            pending_len += len(tokens)
            summary.encoded += 1
            summary.add(split, len(tokens), seconds)
    flush()

    # Commit: errors first (harmless if the run dies before the manifest), the manifest last.
    errors_path = out / "errors.jsonl"
    old_errors = errors_path.read_text() if errors_path.exists() else ""
    retried = set(todo)
    kept = [line for line in old_errors.splitlines()
            if line.strip() and json.loads(line)["source"] not in retried]
    lines = kept + [json.dumps(e) for e in summary.errors]
    _write_atomic(errors_path, "".join(line + "\n" for line in lines))
    rows = old + new_rows
    _write_atomic(out / "manifest.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    return summary
