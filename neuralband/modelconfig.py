"""Model sizes, without torch: `ModelConfig` is stored beside every set of weights, so a model
file rebuilds its model alone (and the numpy runtime reads it without importing torch)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

from neuralband.encoders.performance import VOCAB_SIZE

CELLS = ("lstm", "gru")


@dataclass(frozen=True)
class ModelConfig:
    """Sizes of an `EventLSTM` (or its GRU twin: ``cell="gru"``)."""

    vocab_size: int = VOCAB_SIZE
    embed_dim: int = 256
    hidden: int = 512
    layers: int = 3
    dropout: float = 0.0
    # An ensemble-grid model (`encoders.grid`) reads one class and predicts another: out_size is
    # the number of output classes (None: vocab_size, as for event tokens), and fields the
    # mixed radix of the input class (most significant first). Each field (a voice's state) has
    # its own embedding and they are summed, so an input combination never seen in training still
    # means something; () is one embedding row per class.
    out_size: int | None = None
    fields: tuple[int, ...] = ()
    # The length of the control vector read beside each token (`encoders.controls`: key and
    # density); 0 for a model without controls.
    controls: int = 0
    # The recurrent cell: "lstm" (PyTorch's nn.LSTM) or "gru" (nn.GRU: three gates where the
    # LSTM has four, so a step reads 3/4 of the bytes; no cell state beside h).
    cell: str = "lstm"

    def __post_init__(self) -> None:
        if self.cell not in CELLS:
            raise ValueError(f"cell must be one of {', '.join(CELLS)}, got {self.cell!r}")
        for name in ("vocab_size", "embed_dim", "hidden", "layers"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.out_size is not None and (not isinstance(self.out_size, int)
                                          or isinstance(self.out_size, bool)
                                          or self.out_size < 1):
            raise ValueError(f"out_size must be a positive int or None, got {self.out_size!r}")
        if not isinstance(self.controls, int) or isinstance(self.controls, bool) \
                or self.controls < 0:
            raise ValueError(f"controls must be an int >= 0, got {self.controls!r}")
        object.__setattr__(self, "fields", tuple(self.fields))
        if self.fields:
            if not all(isinstance(r, int) and not isinstance(r, bool) and r >= 1
                       for r in self.fields):
                raise ValueError(f"fields must be positive ints, got {self.fields!r}")
            if math.prod(self.fields) != self.vocab_size:
                raise ValueError(f"fields {self.fields} make {math.prod(self.fields)} classes, "
                                 f"not vocab_size {self.vocab_size}")

    @property
    def gates(self) -> int:
        """Gate rows per hidden unit: 4 for an LSTM (i, f, g, o), 3 for a GRU (r, z, n)."""
        return 4 if self.cell == "lstm" else 3

    @property
    def classes(self) -> int:
        """How many classes the head scores: out_size, or vocab_size for an event model."""
        return self.vocab_size if self.out_size is None else self.out_size

    def to_dict(self) -> dict:
        d = asdict(self)
        d["fields"] = list(self.fields)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> ModelConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown model settings: {sorted(unknown)}")
        return cls(**d)


# Magenta's Performance RNN is 3 x 512 with no dropout; the smaller ones are for CPUs.
PRESETS: dict[str, ModelConfig] = {
    "performance": ModelConfig(embed_dim=256, hidden=512, layers=3),
    "medium": ModelConfig(embed_dim=256, hidden=512, layers=2, dropout=0.1),
    "small": ModelConfig(embed_dim=128, hidden=256, layers=2, dropout=0.1),
    "tiny": ModelConfig(embed_dim=32, hidden=64, layers=1),
}
