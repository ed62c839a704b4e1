"""The one exception that encoders raise for input they cannot read."""

from __future__ import annotations

import re


class MidiError(Exception):
    """A MIDI source could not be read: names the source and says why.

    Raised instead of whatever the parser underneath threw, so that batch tools can report
    ``name: reason`` in one line and go on with the next file.
    """

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(f"{source}: {reason}")
        self.source = source
        self.reason = reason


# What the MIDI parsers underneath say, and what it means for the file, in a user's words.
_FIELDS = {"control_value": "a control change value", "pitch": "a note pitch",
           "velocity": "a note velocity", "program": "a program number"}
_SAYINGS = [
    (re.compile(r"Get (\w+)=(\d+)"),
     lambda m: f"damaged: {_FIELDS.get(m[1], 'a ' + m[1].replace('_', ' '))} of {m[2]} "
               "(MIDI allows 0..127)"),
    (re.compile(r"data byte must be in range 0\.\.127"),
     lambda m: "damaged: an event holds a value above 127 (MIDI allows 0..127)"),
    (re.compile(r"Invalid chunk length (\d+) \(remaining bytes after header: (\d+)\)"),
     lambda m: f"cut short or damaged: a track says it holds {int(m[1]):,} bytes but only "
               f"{int(m[2]):,} follow"),
    (re.compile(r"Inva\w+ midi format \((\d+)\)", re.IGNORECASE),
     lambda m: f"damaged header: MIDI format {m[1]} (a MIDI file is format 0, 1 or 2)"),
    (re.compile(r"^EOFError$|unexpected end|end of (file|data)", re.IGNORECASE),
     lambda m: "cut short: the file ends in the middle of a track"),
]


def check_header(data: bytes, source: str) -> None:
    """MidiError unless ``data`` starts as a MIDI file does (its 14-byte MThd header)."""
    if not data:
        raise MidiError(source, "the file is empty (0 bytes)")
    if data[:4] != b"MThd":
        raise MidiError(source, "not a MIDI file (it does not begin with a MIDI header, 'MThd')")
    if len(data) < 14:
        raise MidiError(source, f"cut short: {len(data)} bytes, less than a MIDI header")


def plain_reason(err: BaseException) -> str:
    """A parser's exception -> what is wrong with the file, in words a user understands (the
    parser's own words in brackets where no better ones are known)."""
    text = (str(err).strip() or type(err).__name__).splitlines()[0]
    for pattern, say in _SAYINGS:
        found = pattern.search(text)
        if found:
            return say(found)
    return f"could not be read as MIDI ({text})"
