"""Audition: real FluidSynth renders, real matplotlib PNGs read back, a real headless Chromium.

Tests that need Debian's fluidsynth + fluid-soundfont-gm or chromium skip naming the package,
and fail instead under NEURALBAND_REQUIRE_AUDITION=1 (CI sets it).
"""

from __future__ import annotations

import contextlib
import html
import io
import json
import os
import re
import shutil
import subprocess
import sys
import wave
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pretty_midi
import pytest

from neuralband.audition import (
    DEBIAN_PACKAGES,
    AuditionError,
    draw_pianoroll,
    find_soundfont,
    html_report,
    midi_seconds,
    pitch_name,
    render_wav,
)
from neuralband.encoders.errors import MidiError
from neuralband.encoders.midi_io import read_notes
from tests.helpers.data import CHORALES

CHORALE = CHORALES[0]  # bwv10.7: 206 notes, 44.0 s
# The WAV keeps 0.25 s of release after the last note (RELEASE_S) and fluidsynth renders in
# blocks of 64 samples (1.5 ms), so a correct render is 0.25 s longer than the MIDI; 0.5 s of
# tolerance allows that while catching FluidSynth's untrimmed tail (2-3 s) or a cut-off piece.
DURATION_TOLERANCE_S = 0.5
# Measured RMS of a chorale at gain 0.5 is about 0.04 (-28 dBFS); dither and reverb residue in
# silence is about 3e-5. 0.005 (-46 dBFS) is far from both.
MIN_RMS = 0.005
GARBAGE = b"MThd" + bytes(range(256)) * 3  # a header tag, then nothing MIDI can parse


def audition_missing(reason: str) -> None:
    """Skip with the reason, or fail where audition tools are required (CI)."""
    if os.environ.get("NEURALBAND_REQUIRE_AUDITION") == "1":
        pytest.fail(f"{reason} (NEURALBAND_REQUIRE_AUDITION=1)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def fluidsynth() -> None:
    if shutil.which("fluidsynth") is None:
        audition_missing(f"fluidsynth is not installed (Debian: {DEBIAN_PACKAGES})")
    try:
        find_soundfont()
    except AuditionError as err:
        audition_missing(str(err))


@pytest.fixture(scope="module")
def chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        if path := shutil.which(name):
            return path
    audition_missing("chromium is not installed (Debian: apt-get install chromium)")


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    with wave.open(str(path), "rb") as w:
        assert w.getsampwidth() == 2 and w.getnchannels() == 2
        audio = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").reshape(-1, 2)
        return audio.astype(np.float64) / 32768, w.getframerate()


def rms(audio: np.ndarray) -> float:
    return float(np.sqrt(np.mean(audio**2))) if audio.size else 0.0


# --- audio ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("rate", [44100, 22050])
def test_wav_sounds_for_as_long_as_the_midi(fluidsynth, tmp_path, rate):
    wav = render_wav(CHORALE, tmp_path / "out.wav", sample_rate=rate)
    audio, got_rate = read_wav(wav)
    assert got_rate == rate
    seconds = len(audio) / rate
    midi = midi_seconds(read_notes(CHORALE))
    assert midi == pytest.approx(44.0)
    assert abs(seconds - midi) <= DURATION_TOLERANCE_S, (seconds, midi)
    assert rms(audio) > MIN_RMS
    # Sound throughout, not only somewhere: every 4 s window while notes play is audible.
    windows = [audio[int(t * rate):int((t + 4) * rate)] for t in range(0, int(midi) - 4, 4)]
    assert min(rms(w) for w in windows) > MIN_RMS / 2
    assert np.abs(audio).max() < 0.99  # no clipping at the default gain
    # normalised: the loudest moment at -1 dBFS (FluidSynth alone peaked at 0.23 of full scale)
    assert np.abs(audio).max() == pytest.approx(0.89, abs=0.01)


def test_not_midi_is_refused_before_rendering(tmp_path):
    bad = tmp_path / "bad.mid"
    bad.write_bytes(GARBAGE)
    with pytest.raises(MidiError, match="bad.mid"):
        render_wav(bad, tmp_path / "bad.wav")
    assert not (tmp_path / "bad.wav").exists()


def test_missing_soundfont_or_program_is_one_clear_line(tmp_path, monkeypatch):
    with pytest.raises(AuditionError, match="nope.sf2"):
        find_soundfont(tmp_path / "nope.sf2")
    monkeypatch.setenv("NEURALBAND_SOUNDFONT", str(tmp_path / "env.sf2"))
    with pytest.raises(AuditionError, match="NEURALBAND_SOUNDFONT"):
        find_soundfont()
    # No fluidsynth on $PATH: the command says which Debian packages to install.
    env = {**os.environ, "PATH": str(tmp_path)}
    out = subprocess.run([sys.executable, "-m", "neuralband", "audition", str(CHORALE),
                          "-o", str(tmp_path / "x.wav")],
                         capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr
    assert DEBIAN_PACKAGES in out.stderr


# --- piano roll ----------------------------------------------------------------------------------

def read_png(path: Path) -> np.ndarray:
    import matplotlib.image

    return matplotlib.image.imread(str(path))


def note_pixels(image: np.ndarray, velocity: int) -> int:
    """Pixels painted in the colour of ``velocity`` on the fixed 1-127 viridis scale."""
    from matplotlib import colormaps

    rgb = np.array(colormaps["viridis"]((velocity - 1) / 126)[:3])
    return int((np.abs(image[..., :3] - rgb).max(axis=-1) < 0.02).sum())


def part_pixels(image: np.ndarray, velocity: int, parts: int) -> int:
    """Pixels painted in any of the first ``parts`` part colours at ``velocity``."""
    from neuralband.audition import PART_COLOURS

    total = 0
    for colour in PART_COLOURS[:parts]:
        shade = colour + (1 - colour) * 0.65 * (1 - velocity / 127)
        total += int((np.abs(image[..., :3] - shade).max(axis=-1) < 0.02).sum())
    return total


def test_pitch_names():
    assert [pitch_name(p) for p in (21, 60, 66, 69, 108, 127)] == [
        "A0", "C4", "F#4", "A4", "C8", "G9"]


def test_pianoroll_is_drawn(tmp_path):
    png = draw_pianoroll([CHORALE], tmp_path / "roll.png")
    image = read_png(png)
    assert image.shape[:2] == (340, 1200)  # 12 x 3.4 inches at 100 dpi
    not_white = (image[..., :3] < 0.95).any(axis=-1).mean()
    assert 0.03 < not_white < 0.9, not_white
    # The chorale's notes all have velocity 90, in four parts (SATB), each its own colour.
    assert part_pixels(image, 90, 4) > 5000
    solo = tmp_path / "soprano.mid"
    pm = pretty_midi.PrettyMIDI(str(CHORALE))
    pm.instruments = pm.instruments[:1]
    pm.write(str(solo))
    # One part: velocity as colour on the fixed scale.
    assert note_pixels(read_png(draw_pianoroll([solo], tmp_path / "one.png")), 90) > 1000


def test_several_files_make_one_sheet(tmp_path):
    png = draw_pianoroll(CHORALES[:3], tmp_path / "three.png", titles=["a", "b", "c"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["three.png"]
    image = read_png(png)
    assert image.shape[:2] == (820, 1200)  # one subplot of 2.4 inches per file, plus 1 inch
    # Each third of the sheet (one subplot each) holds notes.
    for part in np.array_split(image, 3, axis=0):
        assert part_pixels(part, 90, 4) > 1000
    with pytest.raises(ValueError, match="2 titles for 3 files"):
        draw_pianoroll(CHORALES[:3], tmp_path / "x.png", titles=["a", "b"])
    bad = tmp_path / "bad.mid"
    bad.write_bytes(GARBAGE)
    with pytest.raises(MidiError):
        draw_pianoroll([CHORALE, bad], tmp_path / "x.png")


# --- HTML report ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def report_folder(fluidsynth, tmp_path_factory):
    """A folder with two chorales (one with a space in its name) and a corrupt file, reported."""
    folder = tmp_path_factory.mktemp("report")
    shutil.copy(CHORALES[1], folder / CHORALES[1].name)
    shutil.copy(CHORALES[2], folder / "chorale two.midi")
    (folder / "broken.mid").write_bytes(GARBAGE)
    (folder / "notes.txt").write_text("not a MIDI file name; ignored")
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        report = html_report(folder)
    return folder, report, stderr.getvalue()


def test_corrupt_file_is_reported_and_the_rest_done(report_folder):
    folder, report, stderr = report_folder
    assert report.html == folder / "index.html"
    assert [m.name for m, _ in report.failed] == ["broken.mid"]
    assert "broken.mid" in stderr and stderr.count("\n") == 1
    assert [p.midi.name for p in report.pieces] == [CHORALES[1].name, "chorale two.midi"]
    for piece in report.pieces:
        assert piece.png.is_file() and piece.wav.is_file()
        assert piece.png.parent == piece.wav.parent == folder
    assert not (folder / "broken.png").exists() and not (folder / "broken.wav").exists()
    page = report.html.read_text()
    reason = report.failed[0][1]
    assert reason and f"<b>broken.mid</b>: {html.escape(reason)}" in page
    assert page.count("<img ") == 2 and page.count("<audio controls") == 2
    assert "notes.txt" not in page
    links = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert links and all(not link.startswith(("/", "file:")) for link in links)
    assert 'src="chorale%20two.wav"' in page
    assert f"{report.pieces[0].notes} notes" in page


def check_in_chromium(chromium: str, page: Path, profile: Path) -> dict:
    """Open a copy of ``page`` with a script that records what the browser loaded."""
    script = """<script>
function state() {
  const imgs = Array.from(document.images).map(i => [i.getAttribute('src'), i.naturalWidth]);
  const auds = Array.from(document.querySelectorAll('audio')).map(
      a => [a.getAttribute('src'), a.readyState, a.duration, a.error ? a.error.code : 0]);
  return {imgs: imgs, auds: auds, done: auds.every(a => a[1] >= 1 || a[3])};
}
let tries = 0;
function poll() {
  const r = state();
  if (r.done || ++tries > 200) {
    const out = document.createElement('pre');
    out.id = 'audition-check';
    out.textContent = JSON.stringify(r);
    document.body.appendChild(out);
  } else {
    setTimeout(poll, 50);
  }
}
window.addEventListener('load', poll);
</script>
"""
    check = page.with_name("check.html")  # beside the page: the same relative links resolve
    check.write_text(page.read_text().replace("</body>", script + "</body>"))
    cmd = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
           "--no-first-run", "--disable-background-networking", "--disable-component-update",
           "--disable-sync", f"--user-data-dir={profile}", "--virtual-time-budget=15000",
           "--dump-dom", check.as_uri()]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=90)
    except subprocess.TimeoutExpired:
        pytest.fail("chromium --headless did not finish in 90 s")
    found = re.search(r'<pre id="audition-check">(.*?)</pre>', out.stdout, re.S)
    assert found, f"no result from chromium (exit {out.returncode}): {out.stderr[-2000:]}"
    return json.loads(html.unescape(found.group(1)))


def test_page_loads_in_a_real_browser_after_moving(report_folder, chromium, tmp_path):
    folder, report, _ = report_folder
    moved = tmp_path / "moved elsewhere"
    shutil.copytree(folder, moved)  # relative links: the copy must work on its own
    result = check_in_chromium(chromium, moved / "index.html", tmp_path / "profile")
    assert len(result["imgs"]) == len(result["auds"]) == len(report.pieces) == 2
    assert all(width == 1200 for _, width in result["imgs"]), result
    for (src, ready, duration, error), piece in zip(result["auds"], report.pieces, strict=True):
        assert unquote(src) == piece.wav.name
        assert error == 0 and (ready >= 1 or duration > 0), result
        assert abs(duration - piece.seconds) <= DURATION_TOLERANCE_S

    # The check sees a broken page: take one piece's PNG and WAV away.
    (moved / "chorale two.png").unlink()
    (moved / "chorale two.wav").unlink()
    result = check_in_chromium(chromium, moved / "index.html", tmp_path / "profile2")
    assert [width > 0 for _, width in result["imgs"]] == [True, False]
    assert [error == 0 and ready >= 1 for _, ready, _, error in result["auds"]] == [True, False]


# --- the command ---------------------------------------------------------------------------------

def run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "neuralband", "audition", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120)


def test_command_writes_wav_and_png_beside_the_input(fluidsynth, tmp_path):
    midi = tmp_path / "piece.mid"
    shutil.copy(CHORALE, midi)
    out = run("piece.mid", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "piece.wav" in out.stdout and "piece.png" in out.stdout
    audio, rate = read_wav(tmp_path / "piece.wav")
    assert rate == 44100 and rms(audio) > MIN_RMS
    assert read_png(tmp_path / "piece.png").shape[:2] == (340, 1200)

    out = run("piece.mid", str(CHORALES[1]), "--pianoroll", "both.png", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert read_png(tmp_path / "both.png").shape[:2] == (580, 1200)
    assert not (tmp_path / f"{CHORALES[1].stem}.wav").exists()  # --pianoroll alone: no audio


def test_command_usage_errors(tmp_path):
    for args in (["a.mid", "b.mid", "-o", "x.wav"], ["a.mid", "--html", "."], []):
        out = run(*args, cwd=tmp_path)
        assert out.returncode == 2, args
        assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr


def test_a_roll_of_several_parts_gives_each_its_colour(tmp_path):
    """Player and band (or lead and band voices) in their own colours, named in a legend,
    where one part's roll colours notes by velocity alone."""
    import matplotlib.image

    from neuralband.audition import PART_COLOURS, draw_pianoroll
    from tests.helpers import midi_bytes, off, on, track_name

    player = [(0, track_name("player"))] + [e for k in range(8)
                                            for e in ((k * 480, on(72 + k % 3, 100)),
                                                      (k * 480 + 400, off(72 + k % 3)))]
    band = [(0, track_name("band"))] + [e for k in range(4)
                                        for e in ((k * 960, on(48 + k, 100)),
                                                  (k * 960 + 900, off(48 + k)))]
    path = tmp_path / "take.mid"
    path.write_bytes(midi_bytes([player, band]))
    png = matplotlib.image.imread(draw_pianoroll(path, tmp_path / "take.png"))[..., :3]

    def share_near(colour, tolerance=0.12):
        return float((np.abs(png - colour).max(axis=-1) < tolerance).mean())

    # velocity 100: each part's colour lightened by 0.65 * (1 - 100/127)
    for k in (0, 1):
        shade = PART_COLOURS[k] + (1 - PART_COLOURS[k]) * 0.65 * (1 - 100 / 127)
        assert share_near(shade) > 0.001, k


def test_a_generated_file_s_primer_ends_at_a_line_on_its_roll(tmp_path, monkeypatch):
    from neuralband.audition import primer_end
    from neuralband.modelfile import bundled_model

    out = subprocess.run([sys.executable, "-m", "neuralband", "generate", "--primer",
                          str(CHORALE), "--seconds", "3", "-o", "gen.mid", "--model",
                          str(bundled_model("chorale-folk")), "--seed", "1"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    generated = tmp_path / "gen.mid"
    primed = primer_end(generated)
    # The primer's last note ends where the primer does (the encoding's 10 ms steps).
    assert primed == pytest.approx(float(read_notes(CHORALE).end_s.max()), abs=0.02)
    assert primer_end(CHORALE) is None  # a file no one generated has no primer
    with_line = draw_pianoroll([generated], tmp_path / "a.png")
    monkeypatch.setattr("neuralband.audition.primer_end", lambda path: None)
    without = draw_pianoroll([generated], tmp_path / "b.png")
    a = plt_image(with_line)
    b = plt_image(without)
    x = np.flatnonzero((a != b).any(axis=(0, 2)))  # where the two rolls differ
    assert len(x) and x.max() - x.min() < 0.2 * a.shape[1]  # one line (and its label)


def plt_image(path: Path) -> np.ndarray:
    from matplotlib.image import imread

    return imread(str(path))


def test_pianoroll_draws_the_beat_lines_behind_the_notes(tmp_path):
    """--beats: the roll shows its beat lines (the image differs from the roll without them
    only by grey columns), and a wrong number of grids is refused."""
    from matplotlib.image import imread

    from neuralband.audition import draw_pianoroll
    from neuralband.encoders.beats import steady_beats
    from tests.helpers import pretty

    midi = tmp_path / "a.mid"
    pretty([(60 + k % 5, 90, k * 0.5, k * 0.5 + 0.2) for k in range(16)]).write(str(midi))
    plain = imread(draw_pianoroll([midi], tmp_path / "plain.png"))
    lined = imread(draw_pianoroll([midi], tmp_path / "lined.png",
                                  beats=[steady_beats(120, 0.0, 8.0)]))
    changed = np.any(np.abs(plain - lined) > 0.02, axis=2)
    assert changed.any()
    grey = lined[changed][:, :3]
    assert np.mean(np.ptp(grey, axis=1) < 0.05) > 0.9  # what changed is grey lines
    with pytest.raises(ValueError, match="beat grids"):
        draw_pianoroll([midi], tmp_path / "x.png", beats=[None, None])


def test_pianoroll_shows_a_part_of_a_long_file(tmp_path):
    """--start/--end: the roll of those seconds only (the same notes drawn as a roll of a file
    cut there), and a part that ends before it starts is refused."""
    from matplotlib.image import imread

    from neuralband.audition import draw_pianoroll
    from tests.helpers import pretty

    notes = [(60 + k % 7, 90, k * 0.5, k * 0.5 + 0.3) for k in range(200)]
    pretty(notes).write(str(tmp_path / "long.mid"))
    part = imread(draw_pianoroll([tmp_path / "long.mid"], tmp_path / "part.png",
                                 start_s=20.0, end_s=30.0))
    whole = imread(draw_pianoroll([tmp_path / "long.mid"], tmp_path / "whole.png"))
    assert part.shape == whole.shape and not np.allclose(part, whole)
    with pytest.raises(ValueError, match="must end after it starts"):
        draw_pianoroll([tmp_path / "long.mid"], tmp_path / "x.png", start_s=5.0, end_s=2.0)
