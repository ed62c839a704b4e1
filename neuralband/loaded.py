"""A model file loaded once: what every command asks of a model, from one read of its files.

`play`, `generate`, `score`, `evaluate` and `audition --activations` each used to take a path
and read the model's description (and hash its weights) two or three times on the way, each
place deciding again what kind of model it was. A `LoadedModel` is made once, where the user
names the model, and handed on: its description (`ModelInfo`: the scheme, the controls), its
weights as numpy arrays (never unpickled, never torch), steppers made from those arrays, who
plays each token (`Voicing`) and its default sampling rules.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from neuralband.modelfile import DEFAULT, ModelInfo, bundled_model, model_paths
from neuralband.runtime import Stepper, load_weights
from neuralband.sampling import Rules, model_rules


@dataclass(eq=False)
class LoadedModel:
    """A model file's description and weights, read and checked once (`open`)."""

    name: str  # as the user named it (the default's name where none was): for messages
    path: Path  # its weights file
    info: ModelInfo
    weights: dict[str, np.ndarray] = field(repr=False)

    @classmethod
    def open(cls, model: str | os.PathLike | None = None) -> LoadedModel:
        """NAME, NAME.json, a run folder or a bundled name (None: the default model); a
        missing or damaged file is a `ModelFileError` naming it."""
        path = bundled_model() if model is None else model
        weights, info = load_weights(path)
        return cls(str(model) if model is not None else DEFAULT, model_paths(path)[0], info,
                   weights)

    @property
    def scheme(self):
        return self.info.scheme

    def stepper(self, batch: int = 1, precision: str = "fp32") -> Stepper:
        """A fresh step runtime over these weights (``batch`` streams; fp32 or int8)."""
        return Stepper(self.weights, self.info.config, batch, self.info, precision)

    @cached_property
    def voicing(self):
        """Who plays each token, and what event it is (`parts.Voicing`); a ValueError that
        says what the model does instead where it plays no events."""
        from neuralband.voicing import from_info

        return from_info(self.info)

    def rules(self, rules: Rules | None = None, **changes) -> Rules:
        """The sampling rules for this model: ``rules`` (the user's) over its defaults."""
        return model_rules(self.info, rules, **changes)


def loaded(model: LoadedModel | str | os.PathLike | None) -> LoadedModel:
    """A model as the library's functions take it: already loaded, or a name to load."""
    return model if isinstance(model, LoadedModel) else LoadedModel.open(model)
