"""Model sizes, without torch: `ModelConfig` is stored beside every set of weights, so a model
file rebuilds its model alone (and the numpy runtime reads it without importing torch)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from encoders.performance import VOCAB_SIZE


@dataclass(frozen=True)
class ModelConfig:
    """Sizes of an `EventLSTM`."""

    vocab_size: int = VOCAB_SIZE
    embed_dim: int = 256
    hidden: int = 512
    layers: int = 3
    dropout: float = 0.0

    def __post_init__(self) -> None:
        for name in ("vocab_size", "embed_dim", "hidden", "layers"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")

    def to_dict(self) -> dict:
        return asdict(self)

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
