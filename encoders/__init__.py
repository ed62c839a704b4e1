"""MIDI <-> categorical sequences: Performance-RNN events and mixed-radix packing.

Pure functions and small value types; no threads, no torch, nothing printed.
"""

from neuralband.encoders.errors import MidiError
from neuralband.encoders.packing import Packer
from neuralband.encoders.performance import (
    VOCAB_SIZE,
    EncoderSettings,
    decode,
    describe,
    encode,
)

__all__ = [
    "VOCAB_SIZE",
    "EncoderSettings",
    "MidiError",
    "Packer",
    "decode",
    "describe",
    "encode",
]
