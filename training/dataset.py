"""MIDI, ABC or text folders -> a training dataset: token shards, a manifest, and what failed.

A dataset folder holds::

    settings.json      the token scheme (`encoders.schemes`: events, voices, grid or text, with
                       its settings) as one entry; training refuses a dataset of another scheme
    manifest.jsonl     one line per encoded piece: source, sha256, split, shard, offset, length,
                       the scheme's summary (duration_s and notes for music), tune (an ABC
                       tune's X: reference, a text piece's first line) for a piece of a file,
                       and beats (times, downbeats, source: `encoders.beats`) where found
    errors.jsonl       one line per piece that could not be used: source (tune), reason
    shards/NNNNN.npy   uint16 token arrays; a file's tokens are shard[offset:offset + length]
                       (uint32 for a scheme of more classes: a grid beyond 4 voices)

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
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from neuralband.atomic import write_atomic
from neuralband.encoders.errors import MidiError
from neuralband.encoders.schemes import (  # noqa: F401 - Limits and duration_s are this module's words too
    EventScheme,
    Limits,
    TokenScheme,
    duration_s,
    scheme_from_dict,
    scheme_from_parts,
)

FORMAT = "neuralband-dataset"
VERSION = 2  # 1: encoder settings beside an optional voices or grid entry (still read)
SPLITS = ("train", "valid", "test")
DEFAULT_FRACTIONS = (0.90, 0.05, 0.05)
SHARD_TOKENS = 1 << 24  # 16 M tokens, 32 MB per shard


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


def find_files(sources: Iterable[str | os.PathLike],
               suffixes: tuple[str, ...] = EventScheme.suffixes) -> list[Path]:
    """Every file under the sources (files or folders) whose name ends in one of ``suffixes``
    (a scheme's: .mid/.midi/.kar/.abc for music, .txt for text), sorted, deduplicated.

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
            if p.suffix.lower() in suffixes and p.is_file():
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
    scheme: TokenScheme
    limits: Limits


@dataclass(frozen=True)
class _Result:
    path: str
    tune: str | None  # the piece's name in its file (an ABC tune's X: line), None for a whole file
    sha256: str | None
    tokens: np.ndarray | None
    error: str | None
    beats: dict | None = None  # `encoders.beats.Beats.to_dict`, where the scheme finds them


def _encode_one(job: _Job) -> list[_Result]:
    """Worker: read, hash, check size, encode each piece of the file. Never raises."""
    try:
        data = Path(job.path).read_bytes()
    except OSError as err:
        return [_Result(job.path, None, None, None, f"unreadable: {err.strerror or err}")]
    if len(data) > job.limits.max_bytes:
        return [_Result(job.path, None, hashlib.sha256(data).hexdigest(), None,
                        f"oversized: {len(data)} bytes > {job.limits.max_bytes}")]
    try:
        pieces = job.scheme.pieces(job.path, data)
    except ValueError as err:
        return [_Result(job.path, None, None, None, str(err))]
    results = []
    for piece in pieces:
        sha = hashlib.sha256(piece.content).hexdigest()
        name = f"{job.path}#{piece.ref}" if piece.ref else job.path
        try:
            tokens = job.scheme.encode(piece, name)
        except MidiError as err:
            results.append(_Result(job.path, piece.ref, sha, None, err.reason))
            continue
        except Exception as err:  # noqa: BLE001 - one bad file must not stop the batch
            results.append(_Result(job.path, piece.ref, sha, None,
                                   f"{type(err).__name__}: {err}"))
            continue
        error = job.scheme.refusal(tokens, job.limits)
        results.append(_Result(job.path, piece.ref, sha,
                               None if error else tokens.astype(job.scheme.dtype), error,
                               None if error else _beats(job.scheme, piece, name)))
    return results


def _beats(scheme: TokenScheme, piece, name: str) -> dict | None:
    """The piece's beats as the manifest keeps them; None where the scheme has none or they
    cannot be found (training then tracks them from the tokens)."""
    try:
        beats = scheme.beats(piece, name.split("#", 1)[0])
    except Exception:  # noqa: BLE001 - the tokens are good; the beats are found again later
        return None
    return None if beats is None else beats.to_dict()


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


def stored_scheme(info: dict) -> TokenScheme:
    """The token scheme a dataset's settings.json names: its "scheme" entry, or (version 1)
    the encoder settings beside an optional voices or grid entry."""
    if info.get("version") == 1:
        return scheme_from_parts(info["encoder"], info.get("voices"), info.get("grid"))
    return scheme_from_dict(info["scheme"])


def settings_difference(stored: dict, asked: dict, prefix: str = "") -> str:
    """Which settings of two schemes' dicts differ, in words: ``sustain: True there, False
    asked``, each nested key by its path."""
    parts = []
    for key in sorted(set(stored) | set(asked), key=str):
        a, b = stored.get(key), asked.get(key)
        if a == b:
            continue
        if isinstance(a, dict) and isinstance(b, dict):
            parts.append(settings_difference(a, b, f"{prefix}{key}."))
        else:
            parts.append(f"{prefix}{key}: {a!r} there, {b!r} asked")
    return "; ".join(parts)


def read_existing(out_dir: Path, scheme: TokenScheme) -> list[dict]:
    """The manifest of a dataset already at out_dir (empty if none); refuses another scheme."""
    settings_path = out_dir / "settings.json"
    if not settings_path.exists():
        return []
    stored = json.loads(settings_path.read_text())
    if stored.get("format") != FORMAT:
        raise ValueError(f"{out_dir} is not a neuralband dataset (settings.json format)")
    if stored_scheme(stored) != scheme:
        differ = settings_difference(stored_scheme(stored).to_dict(), scheme.to_dict())
        raise ValueError(f"{out_dir} was encoded with other settings ({differ}): encode into "
                         "a new folder, or with the same options")
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


class EncodeBar:
    """``neuralband encode``'s progress bar: a file a tick, with the pace in the scheme's unit
    (notes, tunes, characters) and the errors so far."""

    def __init__(self, scheme: TokenScheme, total: int, quiet: bool = False):
        from tqdm import tqdm

        self.bar = tqdm(total=total, unit="file", dynamic_ncols=True, disable=quiet)
        self.scheme, self.unit = scheme, scheme.source_unit
        self.units = self.errors = 0
        self.start = time.perf_counter()

    def update(self, results: list[_Result]) -> None:
        """One MIDI file done, or every tune of an ABC file."""
        for result in results:
            if result.error is not None:
                self.errors += 1
            else:
                self.units += int(self.scheme.summary(result.tokens).get(self.unit, 0))
        rate = self.units / max(time.perf_counter() - self.start, 1e-9)
        self.bar.set_postfix_str(f"{rate:,.0f} {self.unit}/s, {self.errors} errors",
                                 refresh=False)
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()


def build_dataset(sources: Iterable[str | os.PathLike], out_dir: str | os.PathLike,
                  scheme: TokenScheme | None = None, workers: int | None = None,
                  fractions: tuple[float, float, float] = DEFAULT_FRACTIONS,
                  limits: Limits | None = None, shard_tokens: int = SHARD_TOKENS,
                  progress: EncodeBar | None = None) -> Summary:
    """Encode every file of ``scheme`` (default: Performance events) under ``sources`` into the
    dataset at ``out_dir`` (made or grown); ``progress`` hears of each file as it is done."""
    scheme = EventScheme() if scheme is None else scheme
    limits = Limits() if limits is None else limits
    if abs(sum(fractions) - 1.0) > 1e-9 or min(fractions) < 0:
        raise ValueError(f"split fractions must be >= 0 and sum to 1, got {fractions}")
    files = find_files(sources, scheme.suffixes)
    out = Path(out_dir)
    check_out_dir(out)
    old = read_existing(out, scheme)
    (out / "shards").mkdir(parents=True, exist_ok=True)
    if not (out / "settings.json").exists():
        meta = {"format": FORMAT, "version": VERSION, "scheme": scheme.to_dict(),
                "splits": dict(zip(SPLITS, fractions, strict=True))}
        _write_atomic(out / "settings.json", json.dumps(meta, indent=2) + "\n")

    summary = Summary(found=len(files))
    known_sources = {row["source"] for row in old}
    known_hashes = {row["sha256"] for row in old}
    todo = [str(p) for p in files if str(p) not in known_sources]
    summary.already = len(files) - len(todo)
    jobs = [_Job(p, scheme, limits) for p in todo]

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
            progress.update(results)
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
            about = scheme.summary(tokens)
            pending_rows.append(where | {
                "sha256": result.sha256, "split": split, "shard": None, "offset": pending_len,
                "length": len(tokens), **about,
            } | ({"beats": result.beats} if result.beats else {}))
            pending.append(tokens)
            pending_len += len(tokens)
            summary.encoded += 1
            summary.add(split, len(tokens), float(about.get("duration_s", 0.0)))
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
