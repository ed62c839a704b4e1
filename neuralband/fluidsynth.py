"""Finding FluidSynth and a General MIDI soundfont: what `audition` renders WAVs with and what
`play --synth` sounds the band through, found the same way for both (the argument, the
environment, Debian's places) and named with its Debian package when missing."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

DEBIAN_PACKAGES = "apt-get install fluidsynth fluid-soundfont-gm"
# Where Debian's fluid-soundfont-gm (and the soundfont alternatives) put a General MIDI bank.
SOUNDFONT_PATHS = (
    Path("/usr/share/sounds/sf2/FluidR3_GM.sf2"),
    Path("/usr/share/soundfonts/default.sf2"),
    Path("/usr/share/sounds/sf2/default-GM.sf2"),
)


class AuditionError(Exception):
    """A tool or file that audition (or play --synth) needs is missing or failed; one line."""


def find_soundfont(soundfont: str | os.PathLike | None = None) -> Path:
    """The soundfont to render with: the argument, else $NEURALBAND_SOUNDFONT, else Debian's.

    Raises `AuditionError` naming the Debian package when none is found.
    """
    for given, what in ((soundfont, "--soundfont"),
                        (os.environ.get("NEURALBAND_SOUNDFONT") or None, "NEURALBAND_SOUNDFONT")):
        if given is not None:
            path = Path(given)
            if not path.is_file():
                raise AuditionError(f"soundfont {path} (from {what}) does not exist")
            return path
    for path in SOUNDFONT_PATHS:
        if path.is_file():
            return path
    raise AuditionError(f"no soundfont found (looked for {SOUNDFONT_PATHS[0]}); "
                        f"Debian: {DEBIAN_PACKAGES}, or give --soundfont FILE.sf2")


def find_fluidsynth() -> str:
    """The fluidsynth program on $PATH, or `AuditionError` naming the Debian package."""
    program = shutil.which("fluidsynth")
    if program is None:
        raise AuditionError(f"fluidsynth is not installed (Debian: {DEBIAN_PACKAGES})")
    return program
