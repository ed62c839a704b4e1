"""Batch work: MIDI folders -> token shards -> trained checkpoints (torch lives here)."""
