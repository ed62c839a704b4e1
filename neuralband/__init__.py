"""neuralband: a real-time neural MIDI instrument."""

__version__ = "0.1.0"
