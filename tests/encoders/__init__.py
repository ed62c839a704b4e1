"""Tests of `encoders/`: MIDI, ABC and text to tokens and back."""
