"""The take library: every `play` session where you played is kept, both parts as `--record`
writes them, beside a note of the model and the settings it played with, so the band can later
learn from how you play (`neuralband takes` lists them).

A take is two files in the takes folder: ``YYYY-MM-DD_HHMMSS.mid`` (track 1 you, track 2 the
band) and the same name ``.json``. The folder is ``--takes DIR``, else ``$NEURALBAND_TAKES``,
else ``$XDG_DATA_HOME/neuralband/takes`` (``~/.local/share/neuralband/takes``); ``--no-takes``
keeps nothing. A session where you played no note leaves no take; a take never replaces a file.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

TICKS_PER_BEAT = 480
TEMPO = 500_000  # 120 bpm: 960 ticks per second
PLAYER, BAND = "player", "band"  # a take's tracks, named for who played them


def write_recording(engine, path: str | os.PathLike) -> Path:
    """Both parts as a two-track MIDI file: track 1 the player, track 2 the band."""
    import mido

    mid = mido.MidiFile(type=1, ticks_per_beat=TICKS_PER_BEAT)
    ended = max([t for t, _, _ in engine.recording or []] + [engine.closed_at or engine.t0])
    for part in (PLAYER, BAND):
        track = mido.MidiTrack()
        track.append(mido.MetaMessage("track_name", name=part, time=0))
        if part == PLAYER:
            track.insert(0, mido.MetaMessage("set_tempo", tempo=TEMPO, time=0))
        last = 0
        held: dict[tuple[int, int], int] = {}  # (channel, pitch) -> notes open
        for t, who, data in engine.recording or []:
            if who != part:
                continue
            tick = max(0, round((t - engine.t0) * TICKS_PER_BEAT * 1e6 / TEMPO))
            track.append(mido.Message.from_bytes(data, time=tick - last))
            last = tick
            kind, key = data[0] & 0xF0, (data[0] & 0x0F, data[1] if len(data) > 1 else -1)
            if kind == 0x90 and data[2] > 0:
                held[key] = held.get(key, 0) + 1
            elif kind in (0x80, 0x90) and held.get(key):
                held[key] -= 1
        # Keys still held when the take ended (Ctrl-C with a chord down) end with it.
        end = max(0, round((ended - engine.t0) * TICKS_PER_BEAT * 1e6 / TEMPO))
        for (channel, pitch), n in held.items():
            for _ in range(n):
                track.append(mido.Message("note_off", channel=channel, note=pitch,
                                          time=max(0, end - last)))
                last = max(last, end)
        track.append(mido.MetaMessage("end_of_track", time=0))
        mid.tracks.append(track)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    mid.save(str(path))
    return path


def takes_folder(given: str | os.PathLike | None = None) -> Path:
    """Where takes are kept: ``given``, else $NEURALBAND_TAKES, else the XDG data folder."""
    if given is not None:
        return Path(given).expanduser()
    if os.environ.get("NEURALBAND_TAKES"):
        return Path(os.environ["NEURALBAND_TAKES"]).expanduser()
    data = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(data) / "neuralband" / "takes"


def notes_of(recording, part: str) -> int:
    """A part's ("player" or "band") NOTE_ONs in an engine's recording ((time, who, bytes))."""
    return sum(1 for _, who, data in recording or []
               if who == part and len(data) > 2 and data[0] & 0xF0 == 0x90 and data[2] > 0)


def keep_take(engine, folder: str | os.PathLike, about: dict) -> Path | None:
    """Write the session's take into ``folder`` (made if missing): the MIDI file and its note
    (``about``: the model and the settings, plus what the take holds). None where the player
    played no note. Never replaces a file: a second take in the same second is ``..._2``."""
    played = notes_of(engine.recording, "player")
    if not played:
        return None
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y-%m-%d_%H%M%S")
    path, k = folder / f"{stamp}.mid", 1
    while path.exists() or path.with_suffix(".json").exists():
        k += 1
        path = folder / f"{stamp}_{k}.mid"
    band = notes_of(engine.recording, "band")
    seconds = max((t for t, _, _ in engine.recording), default=engine.t0) - engine.t0
    write_recording(engine, path)
    note = {"take": path.name, "started": stamp, "seconds": round(seconds, 2),
            "player_notes": played, "band_notes": band, **about}
    path.with_suffix(".json").write_text(json.dumps(note, indent=1) + "\n")
    return path


@dataclass(frozen=True)
class Take:
    """One kept take, as its note says."""

    path: Path
    started: str
    seconds: float
    player_notes: int
    band_notes: int
    model: str
    mode: str


def list_takes(folder: str | os.PathLike) -> list[Take]:
    """The takes in ``folder``, oldest first; a note that cannot be read is left out."""
    takes = []
    for note in sorted(Path(folder).glob("*.json")):
        try:
            about = json.loads(note.read_text())
            takes.append(Take(note.with_suffix(".mid"), str(about["started"]),
                              float(about["seconds"]), int(about["player_notes"]),
                              int(about["band_notes"]), str(about["model"]),
                              str(about.get("mode", "?"))))
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return [t for t in takes if t.path.exists()]


def format_takes(takes: list[Take], folder: Path) -> str:
    """A table of takes, or one line saying there are none and where they would be."""
    if not takes:
        return f"no takes in {folder} (play keeps one each time you play; --no-takes: none)"
    rows = [("TAKE", "SECONDS", "YOU", "BAND", "MODEL", "MODE")]
    rows += [(t.path.name, f"{t.seconds:.0f}", str(t.player_notes), str(t.band_notes), t.model,
              t.mode) for t in takes]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(f"{c:<{w}}" for c, w in zip(r, widths, strict=True)).rstrip()
             for r in rows]
    return "\n".join(lines) + f"\n{len(takes)} take(s) in {folder}"
