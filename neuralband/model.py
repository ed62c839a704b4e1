"""The event LSTM: embedding, stacked LSTM (or GRU), linear to the vocabulary (char-RNN style).

The model computes; it keeps no performance state (the engine remembers what is sounding).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from neuralband.modelconfig import PRESETS, ModelConfig

__all__ = ["PRESETS", "EventLSTM", "ModelConfig"]


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
