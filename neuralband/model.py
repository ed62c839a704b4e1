"""The event LSTM: embedding, stacked LSTM (or GRU), linear to the vocabulary (char-RNN style).

The model computes; it keeps no performance state (the engine remembers what is sounding).
"""

from __future__ import annotations

import hashlib
import math
import os

import torch
from torch import nn

from neuralband.atomic import write_atomic
from neuralband.encoders.controls import ControlSettings
from neuralband.encoders.performance import EncoderSettings
from neuralband.encoders.schemes import TokenScheme
from neuralband.modelconfig import PRESETS, ModelConfig
from neuralband.modelfile import FORMAT, ModelFileError, ModelInfo, model_paths, read_info

__all__ = ["PRESETS", "EventLSTM", "ModelConfig", "load_model", "save_model"]


# (h, c), each (layers, batch, hidden); a GRU's state is h alone.
State = tuple[torch.Tensor, torch.Tensor] | torch.Tensor


class EventLSTM(nn.Module):
    """Next-event language model over Performance tokens (or, with ``config.fields``, next band
state over ensemble-grid classes)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        if config.fields:  # a grid model: one embedding per field of the packed input class
            self.embed_fields = nn.ModuleList(nn.Embedding(r, config.embed_dim)
                                              for r in config.fields)
            strides = [math.prod(config.fields[k + 1:]) for k in range(len(config.fields))]
            self.register_buffer("strides", torch.tensor(strides), persistent=False)
            self.register_buffer("radix", torch.tensor(config.fields), persistent=False)
        else:
            self.embed = nn.Embedding(config.vocab_size, config.embed_dim)
        # Named for the cell, as its weights are in the model file ("lstm.weight_ih_l0", ...).
        rnn = nn.LSTM if config.cell == "lstm" else nn.GRU
        setattr(self, config.cell, rnn(config.embed_dim + config.controls, config.hidden,
                                       num_layers=config.layers, batch_first=True,
                                       dropout=config.dropout if config.layers > 1 else 0.0))
        self.drop = nn.Dropout(config.dropout)
        self.head = nn.Linear(config.hidden, config.classes)

    def forward(self, tokens: torch.Tensor, state: State | None = None,
                controls: torch.Tensor | None = None) -> tuple[torch.Tensor, State]:
        """tokens (batch, time) int64 -> logits (batch, time, classes) and the final state.

        A model with controls reads ``controls`` (batch, time, config.controls) beside the
        tokens, concatenated to their embedding; None is "no control" (zeros)."""
        if self.config.fields:
            digits = tokens.unsqueeze(-1) // self.strides % self.radix  # (B, T, fields)
            x = sum(e(digits[..., k]) for k, e in enumerate(self.embed_fields))
        else:
            x = self.embed(tokens)  # (B, T, E)
        if self.config.controls:
            if controls is None:
                controls = x.new_zeros(*x.shape[:2], self.config.controls)
            x = torch.cat([x, controls.to(x.dtype)], dim=-1)
        out, state = getattr(self, self.config.cell)(x, state)  # (B, T, H)
        return self.head(self.drop(out)), state

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


# --- the model file, from and to torch (training's side; playing reads it with numpy) -----------

def save_model(path: str | os.PathLike, model, scheme: TokenScheme,
               summary: dict | None = None, dtype: str = "float32",
               controls: ControlSettings | None = None) -> ModelInfo:
    """Write a torch `EventLSTM` as NAME.safetensors + NAME.json (fp32 or fp16 weights), with
    the token ``scheme`` it reads and, for a conditioned model, its ``controls``."""
    from safetensors.torch import save

    if dtype not in ("float32", "float16"):
        raise ValueError(f"dtype must be float32 or float16, not {dtype!r}")
    weights, sidecar = model_paths(path)
    weights.parent.mkdir(parents=True, exist_ok=True)
    to = torch.float16 if dtype == "float16" else torch.float32
    tensors = {k: v.detach().to("cpu", to).contiguous() for k, v in model.state_dict().items()}
    data = save(tensors, metadata={"format": FORMAT})
    info = ModelInfo(model.config, scheme, dtype, hashlib.sha256(data).hexdigest(),
                     summary or {}, controls)
    info.check()
    write_atomic(weights, data)
    write_atomic(sidecar, info.to_json().encode())
    return info


def load_model(path: str | os.PathLike, encoder: EncoderSettings | None = None):
    """Rebuild the torch `EventLSTM` from a model file; returns (model in eval mode, info).

    With ``encoder`` given, refuses a model trained on tokens made with other settings.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load

    info = read_info(path)
    weights, _ = model_paths(path)
    if encoder is not None and encoder != info.encoder:
        raise ModelFileError(f"{weights}: trained with encoder settings {info.encoder.to_dict()},"
                             f" not {encoder.to_dict()}")
    try:
        tensors = load(weights.read_bytes())
    except SafetensorError as err:
        raise ModelFileError(f"{weights}: not a readable safetensors file ({err})") from err
    model = EventLSTM(info.config)
    try:
        model.load_state_dict({k: v.to(torch.float32) for k, v in tensors.items()}, strict=True)
    except RuntimeError as err:
        first = str(err).strip().splitlines()[0]
        raise ModelFileError(f"{weights}: weights do not fit the model ({first})") from err
    return model.eval(), info
