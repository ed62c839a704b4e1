"""The parts' colours, the same in the piano rolls (`neuralband.audition`) and the live view:
the first part (the player, the lead, a melody track) blue, the band orange, then the other
voices (matplotlib's tab10)."""

from __future__ import annotations

PART_COLOURS = ((0.12, 0.47, 0.71), (1.0, 0.5, 0.05), (0.17, 0.63, 0.17),
                (0.84, 0.15, 0.16), (0.58, 0.4, 0.74), (0.55, 0.34, 0.29),
                (0.89, 0.47, 0.76), (0.5, 0.5, 0.5), (0.74, 0.74, 0.13),
                (0.09, 0.75, 0.81))


def hex_colours() -> list[str]:
    """The palette as CSS colours, for the live view's page."""
    return ["#" + "".join(f"{round(255 * c):02x}" for c in rgb) for rgb in PART_COLOURS]
