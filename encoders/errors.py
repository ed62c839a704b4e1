"""The one exception that encoders raise for input they cannot read."""

from __future__ import annotations


class MidiError(Exception):
    """A MIDI source could not be read: names the source and says why.

    Raised instead of whatever the parser underneath threw, so that batch tools can report
    ``name: reason`` in one line and go on with the next file.
    """

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(f"{source}: {reason}")
        self.source = source
        self.reason = reason
