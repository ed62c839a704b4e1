"""Small model files made for a test: random weights of the shape a feature needs."""

from __future__ import annotations

from pathlib import Path


def beat_model(path: Path, beat_gain: float = 20.0):
    """A small random LSTM that reads key, density and the beat, saved at ``path``; returns
    (path, the torch model in eval mode, its control settings). The beat's input weights are
    scaled by ``beat_gain`` so that a wrong phase shows in the logits."""
    import torch

    from neuralband.encoders.controls import ControlSettings
    from neuralband.encoders.schemes import EventScheme
    from neuralband.model import EventLSTM, save_model
    from neuralband.modelconfig import ModelConfig

    cs = ControlSettings(beat=True)
    torch.manual_seed(0)
    model = EventLSTM(ModelConfig(embed_dim=16, hidden=32, layers=2, controls=cs.size))
    with torch.no_grad():
        model.lstm.weight_ih_l0[:, 16 + cs.beat_start:] *= beat_gain
    save_model(path, model, EventScheme(), dtype="float32", controls=cs)
    return path, model.eval(), cs
