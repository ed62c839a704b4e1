"""Hear and see MIDI: render it to WAV with FluidSynth, draw piano rolls, build an HTML page.

Generated pieces are judged by ear and eye, not by loss figures, so `neuralband audition` turns
MIDI files into things any machine can play and show: a WAV (Debian's ``fluidsynth`` with a
General MIDI soundfont), a piano-roll PNG (matplotlib, Agg backend, no screen needed) and an
``index.html`` with relative links that opens in any browser.
"""

from __future__ import annotations

import html
import os
import subprocess
import sys
import wave
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import numpy as np

from neuralband import palette
from neuralband.encoders.beats import Beats
from neuralband.encoders.errors import MidiError
from neuralband.encoders.midi_io import NoteTable, read_notes
from neuralband.fluidsynth import (  # noqa: F401 (audition's own names, as before)
    DEBIAN_PACKAGES,
    SOUNDFONT_PATHS,
    AuditionError,
    find_fluidsynth,
    find_soundfont,
)

# Kept after the last note ends: the piano's release. FluidSynth itself renders until every
# voice and the reverb have died away (~2-3 s of near-silence), which we cut to this, faded.
RELEASE_S = 0.25
# FluidSynth's default master gain (0.2) leaves a piano piece peaking near -23 dBFS; 0.5 is
# louder yet leaves headroom for a dense pop arrangement (peak about -6 dBFS measured). The same
# gain for every file keeps variations comparable (no per-file normalising).
GAIN = 0.5
FADE_S = 0.05
PEAK = 0.89  # a rendered WAV's loudest sample: -1 dBFS (FluidSynth's gain alone left 0.23)
MIDI_SUFFIXES = (".mid", ".midi")
PITCH_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")


# --- audio ---------------------------------------------------------------------------------------

def render_wav(midi_path: str | os.PathLike, wav_path: str | os.PathLike,
               soundfont: str | os.PathLike | None = None, sample_rate: int = 44100,
               gain: float = GAIN) -> Path:
    """Render a MIDI file to a 16-bit stereo WAV with FluidSynth; returns the WAV's path.

    The WAV ends `RELEASE_S` after the last note (FluidSynth's longer silent tail is cut), so
    its length is the MIDI's. A file that is not MIDI raises `MidiError` before anything runs.
    """
    midi_path, wav_path = Path(midi_path), Path(wav_path)
    notes = read_notes(midi_path)  # MidiError for bad input: fluidsynth would just play silence
    program = find_fluidsynth()
    sf2 = find_soundfont(soundfont)
    wav_path.parent.mkdir(parents=True, exist_ok=True)
    raw = wav_path.with_name(f".{wav_path.name}.render-{os.getpid()}.wav")
    cmd = [program, "-ni", "-q", "-F", str(raw), "-T", "wav", "-O", "s16",
           "-r", str(int(sample_rate)), "-g", str(gain), str(sf2), str(midi_path)]
    try:
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
        except subprocess.TimeoutExpired as err:
            raise AuditionError(f"fluidsynth took over 30 minutes on {midi_path}") from err
        if done.returncode != 0 or not raw.is_file():
            lines = (done.stderr or done.stdout).strip().splitlines()
            why = lines[-1] if lines else f"exit status {done.returncode}"
            raise AuditionError(f"fluidsynth could not render {midi_path}: {why}")
        _trim_wav(raw, wav_path, midi_seconds(notes) + RELEASE_S)
    finally:
        raw.unlink(missing_ok=True)
    return wav_path


def _trim_wav(source: Path, target: Path, seconds: float) -> None:
    """Copy a 16-bit WAV, cut to ``seconds`` with a short fade-out so the cut does not click,
    its peak brought to `PEAK` of full scale."""
    with wave.open(str(source), "rb") as w:
        params = w.getparams()
        if params.sampwidth != 2:
            raise AuditionError(f"fluidsynth wrote {8 * params.sampwidth}-bit audio, not 16-bit")
        frames = min(params.nframes, round(seconds * params.framerate))
        audio = np.frombuffer(w.readframes(frames), dtype="<i2").reshape(-1, params.nchannels)
    audio = audio.astype(np.float64)
    fade = min(len(audio), round(FADE_S * params.framerate))
    if fade:
        audio[-fade:] *= np.linspace(1.0, 0.0, fade)[:, None]
    loudest = float(np.abs(audio).max(initial=0.0))
    if loudest > 0:  # normalised: every rendering as loud as the loudest moment allows
        audio *= PEAK * 32767.0 / loudest
    audio = np.round(audio)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    with wave.open(str(tmp), "wb") as w:
        w.setnchannels(params.nchannels)
        w.setsampwidth(2)
        w.setframerate(params.framerate)
        w.writeframes(audio.astype("<i2").tobytes())
    os.replace(tmp, target)


def wav_info(wav_path: str | os.PathLike) -> tuple[float, int]:
    """(duration in seconds, sample rate) of a WAV file."""
    with wave.open(str(wav_path), "rb") as w:
        return w.getnframes() / w.getframerate(), w.getframerate()


# --- piano roll ----------------------------------------------------------------------------------

def pitch_name(pitch: int) -> str:
    """Scientific pitch name of a MIDI note number: 60 -> C4, 66 -> F#4."""
    return f"{PITCH_NAMES[pitch % 12]}{pitch // 12 - 1}"


def _pitch_ticks(low: int, high: int) -> list[int]:
    """Tick pitches aligned on C, every 1, 2, 3, 4, 6 or 12 semitones: at most ~16 of them."""
    step = next(s for s in (1, 2, 3, 4, 6) if (high - low) / s <= 16) if high - low <= 96 else 12
    first = low + (-low) % step
    return list(range(first, high + 1, step))


PRIMER_MARK = "primer ends"  # a MIDI marker `generate --primer` writes where its music begins


def mark_primer_end(pm, primer_tokens, scheme) -> float:
    """Put a `PRIMER_MARK` marker into ``pm`` (a generated PrettyMIDI) where the primer's
    tokens (of an `encoders.schemes.EventScheme`) end; the time, in seconds."""
    import pretty_midi

    t = scheme.seconds(primer_tokens)
    pm.text_events.append(pretty_midi.Text(PRIMER_MARK, t))
    return t


def primer_end(path: str | os.PathLike) -> float | None:
    """Where a generated file's primer ends (its `PRIMER_MARK`), in seconds; None: nowhere."""
    import mido

    try:
        now = 0.0
        for msg in mido.MidiFile(str(path)):
            now += msg.time
            if msg.is_meta and msg.type in ("text", "marker") and msg.text == PRIMER_MARK:
                return now
    except Exception:  # read_notes has already said what is wrong with a bad file
        return None
    return None


def draw_pianoroll(midi_paths: Sequence[str | os.PathLike] | str | os.PathLike,
                   png_path: str | os.PathLike,
                   titles: Sequence[str] | None = None,
                   beats: Sequence[Beats | None] | None = None,
                   start_s: float = 0.0, end_s: float | None = None) -> Path:
    """Draw one sheet with a piano roll per MIDI file (shared axes, for comparing variations).
    With ``beats`` (one per file, or None), each roll shows its beat lines behind the notes,
    bars darker, so that a reader sees whether the notes land on the beat. ``start_s`` and
    ``end_s`` show a part of a long file (the notes sounding then).

    Time in seconds across, pitch names up. A file of one part shows velocity as colour on one
    fixed 1-127 scale, so that colours mean the same in every subplot; a file of several parts
    (player and band, lead and band voices) gives each part its own colour, named in a legend,
    with velocity as brightness. A generated file's primer (`PRIMER_MARK`) ends at a dashed
    line. Raises `MidiError` for a file that is not MIDI.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.collections import PolyCollection
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch
    from matplotlib.ticker import FixedLocator, FuncFormatter

    if isinstance(midi_paths, (str, os.PathLike)):
        midi_paths = [midi_paths]
    paths = [Path(p) for p in midi_paths]
    if not paths:
        raise ValueError("draw_pianoroll needs at least one MIDI file")
    if titles is not None and len(titles) != len(paths):
        raise ValueError(f"{len(titles)} titles for {len(paths)} files")
    if beats is not None and len(beats) != len(paths):
        raise ValueError(f"{len(beats)} beat grids for {len(paths)} files")
    if end_s is not None and not end_s > start_s:
        raise ValueError(f"the part shown must end after it starts, got {start_s:g}..{end_s:g}")
    tables = [read_notes(p) for p in paths]
    if start_s > 0 or end_s is not None:  # the notes sounding in the part shown
        stop = np.inf if end_s is None else end_s
        tables = [t.select((t.end_s > start_s) & (t.start_s < stop)) for t in tables]
    names = [_part_names(p, t) for p, t in zip(paths, tables, strict=True)]
    png_path = Path(png_path)

    fig = Figure(figsize=(12, 1.0 + 2.4 * len(paths)), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(paths), 1, sharex=True, sharey=True, squeeze=False)[:, 0]
    norm = Normalize(1, 127)
    pitches = np.concatenate([t.pitch for t in tables])
    low, high = (int(pitches.min()), int(pitches.max())) if len(pitches) else (60, 72)
    end = max((float(t.end_s.max()) for t in tables if len(t)), default=1.0)
    if end_s is not None:
        end = end_s
    mappable = None
    for i, (ax, table, path) in enumerate(zip(axes, tables, paths, strict=True)):
        title = titles[i] if titles is not None else path.name
        ax.set_title(f"{title}: {len(table)} notes, {midi_seconds(table):.1f} s", loc="left",
                     fontsize=10)
        if len(table):
            # A gap of about a pixel after each note keeps repeated notes apart; an edge in
            # the note's own colour keeps the shortest notes at least a pixel wide.
            x0 = table.start_s
            x1 = np.maximum(table.end_s - end / 1500, table.start_s + 1e-3)
            y0, y1 = table.pitch - 0.45, table.pitch + 0.45
            verts = np.stack([np.stack([x0, y0], 1), np.stack([x1, y0], 1),
                              np.stack([x1, y1], 1), np.stack([x0, y1], 1)], 1)
            parts = names[i]
            if len(parts) > 1:  # each part its colour, velocity as brightness
                order = {g: k for k, g in enumerate(parts)}
                base = np.array([PART_COLOURS[order[g] % len(PART_COLOURS)]
                                 for g in table.group.tolist()])
                light = (0.65 * (1.0 - table.velocity / 127.0))[:, None]
                rects = PolyCollection(verts, facecolors=base + (1.0 - base) * light,
                                       edgecolors="face", linewidths=0.5)
                ax.add_collection(rects)
                ax.legend(handles=[Patch(color=PART_COLOURS[k % len(PART_COLOURS)], label=name)
                                   for k, name in enumerate(parts.values())],
                          loc="upper right", fontsize=8, ncols=min(len(parts), 4))
            else:
                rects = PolyCollection(verts, array=table.velocity.astype(float),
                                       cmap="viridis", norm=norm, edgecolors="face",
                                       linewidths=0.5)
                ax.add_collection(rects)
                mappable = rects
        else:
            ax.text(0.5, 0.5, "no notes", transform=ax.transAxes, ha="center", va="center")
        primed = primer_end(path)
        if primed is not None:
            ax.axvline(primed, color="0.25", linestyle="--", linewidth=1.2)
            label = ax.text(primed, 1.0, "primer | generated",
                            transform=ax.get_xaxis_transform(), ha="center", va="top",
                            fontsize=8, color="0.25", clip_on=True)
            label.set_in_layout(False)  # the layout stays that of the roll without it
        grid = beats[i] if beats is not None else None
        if grid is not None:  # beat lines behind the notes; bars darker, eighths faint
            shown = grid.times_s[grid.times_s <= end * 1.01]
            eighths = grid.lines(2)[1::2]
            ax.vlines(eighths[eighths <= end * 1.01], 0, 1, transform=ax.get_xaxis_transform(),
                      colors="0.93", linewidths=0.5, zorder=0)
            ax.vlines(shown, 0, 1, transform=ax.get_xaxis_transform(), colors="0.8",
                      linewidths=0.7, zorder=0)
            ax.vlines(shown[grid.downbeats[:len(shown)]], 0, 1,
                      transform=ax.get_xaxis_transform(), colors="0.55", linewidths=0.9,
                      zorder=0)
        ax.grid(axis="y", color="0.9", linewidth=0.6)
        ax.set_axisbelow(True)
        ax.set_ylabel("pitch")
    axes[0].set_xlim(start_s, end * 1.01 if end_s is None else end_s)
    axes[0].set_ylim(low - 1, high + 1)
    axes[0].yaxis.set_major_locator(FixedLocator(_pitch_ticks(low, high)))
    axes[0].yaxis.set_major_formatter(FuncFormatter(lambda p, _pos: pitch_name(round(p))))
    axes[-1].set_xlabel("time (s)")
    if mappable is None and all(len(n) < 2 for n in names):  # no notes: still show the scale
        from matplotlib.cm import ScalarMappable

        mappable = ScalarMappable(norm=norm, cmap="viridis")
    if mappable is not None:
        fig.colorbar(mappable, ax=list(axes), label="velocity", aspect=30 * len(paths),
                     pad=0.01)
    png_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png_path, format="png")
    return png_path


# Part colours (Tableau's ten): the first part (the player, the lead) blue, the band orange, ...
PART_COLOURS = np.array(palette.PART_COLOURS)  # one palette with the live view


def _part_names(path: Path, table: NoteTable) -> dict[int, str]:
    """The parts that play in a file: note group -> its track's name (or "part N"), in order."""
    groups = sorted(set(table.group.tolist()))
    if len(groups) < 2:
        return {g: "" for g in groups}
    from neuralband.encoders.midi_io import parse_pretty_midi

    instruments = parse_pretty_midi(path.read_bytes(), str(path)).instruments
    return {g: (instruments[g].name.strip() if g < len(instruments) else "") or f"part {g + 1}"
            for g in groups}


def midi_seconds(table: NoteTable) -> float:
    """How long a piece sounds: to its last note off or sustain-pedal change, whichever is later."""
    ends = [float(t.max()) for t in (table.end_s, table.pedal_time_s) if len(t)]
    return max(ends, default=0.0)


# --- HTML report ---------------------------------------------------------------------------------

@dataclass
class Piece:
    """One MIDI file of a report and what was made from it."""

    midi: Path
    notes: int
    seconds: float
    png: Path
    wav: Path


@dataclass
class Report:
    """What `html_report` wrote: the page, the pieces on it, and the files it had to skip."""

    html: Path
    pieces: list[Piece] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)


def midi_files(folder: str | os.PathLike) -> list[Path]:
    """The .mid/.midi files directly in a folder, sorted by name."""
    return sorted(p for p in Path(folder).iterdir()
                  if p.is_file() and p.suffix.lower() in MIDI_SUFFIXES)


def html_report(folder: str | os.PathLike, out_html: str | os.PathLike | None = None,
                soundfont: str | os.PathLike | None = None) -> Report:
    """Render every MIDI file in a folder to a PNG and a WAV beside it and list them on a page.

    The page (default ``folder/index.html``) links with relative paths, so the folder can be
    moved or opened anywhere. Unreadable MIDI files are named on the page and on stderr and
    skipped; a missing fluidsynth or soundfont raises `AuditionError` before any work.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise AuditionError(f"{folder} is not a folder")
    out = Path(out_html) if out_html is not None else folder / "index.html"
    find_fluidsynth()
    find_soundfont(soundfont)
    report = Report(out)
    used: set[str] = set()
    for midi in midi_files(folder):
        stem = midi.stem if midi.stem not in used else midi.name  # a.mid and a.midi both there
        used.add(stem)
        png, wav = midi.with_name(f"{stem}.png"), midi.with_name(f"{stem}.wav")
        try:
            table = read_notes(midi)
            draw_pianoroll([midi], png)
            render_wav(midi, wav, soundfont)
        except (MidiError, AuditionError) as err:
            reason = err.reason if isinstance(err, MidiError) else str(err)
            report.failed.append((midi, reason))
            print(f"neuralband: skipped {midi}: {reason}", file=sys.stderr)
            continue
        report.pieces.append(Piece(midi, len(table), midi_seconds(table), png, wav))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    tmp.write_text(_page(folder, report), encoding="utf-8")
    os.replace(tmp, out)
    return report


def _link(target: Path, page: Path) -> str:
    """A URL for ``target`` relative to the page's folder, safe in an attribute."""
    rel = os.path.relpath(target.resolve(), page.parent.resolve())
    return html.escape(quote(Path(rel).as_posix()), quote=True)


def _page(folder: Path, report: Report) -> str:
    e = html.escape
    rows = []
    for p in report.pieces:
        minutes, seconds = divmod(p.seconds, 60)
        rows.append(f"""<section class="piece">
  <h2>{e(p.midi.name)}</h2>
  <p>{int(minutes)}:{seconds:04.1f} &middot; {p.notes} notes &middot;
     <a href="{_link(p.midi, report.html)}">MIDI</a></p>
  <img src="{_link(p.png, report.html)}" alt="piano roll of {e(p.midi.name)}">
  <audio controls preload="metadata" src="{_link(p.wav, report.html)}"></audio>
</section>""")
    failed = ""
    if report.failed:
        items = "\n".join(f"  <li><b>{e(m.name)}</b>: {e(why)}</li>" for m, why in report.failed)
        failed = f'<section class="failed">\n<h2>Could not be read</h2>\n<ul>\n{items}\n</ul>\n'
        failed += "</section>"
    if not report.pieces and not report.failed:
        rows.append("<p>No .mid or .midi files in this folder.</p>")
    body = "\n".join(rows)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{e(folder.resolve().name)}: neuralband audition</title>
<style>
body {{ font-family: sans-serif; max-width: 1250px; margin: 1em auto; padding: 0 1em; }}
img {{ width: 100%; height: auto; display: block; }}
audio {{ width: 100%; margin-top: 0.3em; }}
.piece {{ margin-bottom: 2em; }}
.failed {{ color: #a00; }}
</style>
</head>
<body>
<h1>{e(folder.resolve().name)}</h1>
<p>{len(report.pieces)} pieces{f", {len(report.failed)} unreadable" if report.failed else ""}.</p>
{failed}
{body}
</body>
</html>
"""
