"""The step runtime: one event in, the next event's distribution out, in numpy, without torch.

The instrument feeds one token at a time thousands of times a minute, so the weights are laid out
once for that: the first layer's input projection is a (vocab, 4H) table (the input is one token,
so embedding @ W_ih + biases is a row lookup), the upper layers' input and recurrent weights are
fused into one (4H, 2H) matrix per layer, and every buffer is allocated up front; a step does a
handful of BLAS calls and in-place ufuncs, nothing else. It computes what `EventLSTM` computes
(PyTorch's gate order i, f, g, o), tested to 1e-4 over 1,000 steps.

`Stepper` holds a batch of B independent states (B=1 live; B=K for K variations in one pass).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np

from neuralband.modelconfig import ModelConfig
from neuralband.modelfile import ModelFileError, ModelInfo, model_paths, read_info


@dataclass
class Snapshot:
    """A copy of the recurrent state (and the last logits), to take back a proposed event."""

    h: np.ndarray
    c: np.ndarray
    logits: np.ndarray


def load_weights(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], ModelInfo]:
    """The model file's arrays as float32 numpy (safetensors' numpy API, never torch)."""
    from safetensors import SafetensorError
    from safetensors.numpy import load

    info = read_info(path)
    weights_path, _ = model_paths(path)
    try:
        arrays = load(weights_path.read_bytes())
    except SafetensorError as err:
        raise ModelFileError(f"{weights_path}: not a readable safetensors file ({err})") from err
    return {k: np.asarray(v, dtype=np.float32) for k, v in arrays.items()}, info


class Stepper:
    """Recurrent state plus `feed`, `logits`, `snapshot`/`restore`, `reset`, for B streams."""

    def __init__(self, weights: dict[str, np.ndarray], config: ModelConfig, batch: int = 1,
                 info: ModelInfo | None = None):
        self.config = config
        self.info = info  # the model file's description, when loaded from one
        self.batch = batch
        H, L = config.hidden, config.layers
        try:
            w_ih0 = weights["lstm.weight_ih_l0"].T  # (E, 4H)
            bias0 = weights["lstm.bias_ih_l0"] + weights["lstm.bias_hh_l0"]
            # Layer 0: the whole input projection for every token, biases folded in. A grid
            # model (config.fields) sums one embedding per field of its input class: one such
            # table per field (the biases in the first), and a step adds one row of each.
            if config.fields:
                self.tables = [np.ascontiguousarray(
                    weights[f"embed_fields.{k}.weight"] @ w_ih0 + (bias0 if k == 0 else 0.0),
                    dtype=np.float32) for k in range(len(config.fields))]
                self.strides = [math.prod(config.fields[k + 1:])
                                for k in range(len(config.fields))]
                self.table = None
            else:
                self.tables = []
                self.table = np.ascontiguousarray(weights["embed.weight"] @ w_ih0 + bias0,
                                                  dtype=np.float32)
            self.w_hh0 = np.ascontiguousarray(weights["lstm.weight_hh_l0"].T)  # (H, 4H)
            # Layers 1..L-1: [input | recurrent] fused, so one matmul per layer.
            self.w_fused = [np.ascontiguousarray(np.concatenate(
                [weights[f"lstm.weight_ih_l{k}"], weights[f"lstm.weight_hh_l{k}"]], axis=1).T)
                for k in range(1, L)]  # each (2H, 4H)
            self.b_fused = [weights[f"lstm.bias_ih_l{k}"] + weights[f"lstm.bias_hh_l{k}"]
                            for k in range(1, L)]
            self.w_head = np.ascontiguousarray(weights["head.weight"].T)  # (H, V)
            self.b_head = weights["head.bias"].astype(np.float32)
        except KeyError as err:
            raise ModelFileError(f"model weights lack {err.args[0]!r}") from err
        rows = ([t.shape for t in self.tables] if config.fields
                else [self.table.shape])
        wanted = ([(r, 4 * H) for r in config.fields] if config.fields
                  else [(config.vocab_size, 4 * H)])
        if rows != wanted or self.w_head.shape != (H, config.classes):
            raise ModelFileError(f"model weights do not fit {config}")
        # State and scratch, allocated once.
        self.h = np.zeros((L, batch, H), np.float32)
        self.c = np.zeros((L, batch, H), np.float32)
        self._xh = np.zeros((batch, 2 * H), np.float32)  # [h_below | h_self] for layers >= 1
        self._gates = np.zeros((batch, 4 * H), np.float32)
        self._rows = np.zeros((batch, 4 * H), np.float32)
        self._tmp = np.zeros((batch, H), np.float32)
        self._logits = np.zeros((batch, config.classes), np.float32)
        self._fresh = False  # whether _logits matches the state

    @classmethod
    def load(cls, path: str | os.PathLike, batch: int = 1) -> Stepper:
        """A stepper for a model file (NAME, NAME.json or NAME.safetensors)."""
        weights, info = load_weights(path)
        return cls(weights, info.config, batch, info)

    def reset(self) -> None:
        """Back to the state before any event."""
        self.h.fill(0.0)
        self.c.fill(0.0)
        self._fresh = False

    def feed(self, tokens: int | np.ndarray) -> None:
        """Advance every stream by one event (an int for B=1, or B ints)."""
        H = self.config.hidden
        gates, tmp = self._gates, self._tmp
        # Layer 0: table row + recurrent matmul.
        np.dot(self.h[0], self.w_hh0, out=gates)
        if self.tables:  # a grid model: one row per field of the input class
            for table, stride in zip(self.tables, self.strides, strict=True):
                if isinstance(tokens, (int, np.integer)):
                    gates += table[tokens // stride % len(table)]
                else:
                    np.take(table, np.asarray(tokens) // stride % len(table), axis=0,
                            out=self._rows)
                    gates += self._rows
        elif isinstance(tokens, (int, np.integer)):
            gates += self.table[tokens]  # a row view: no copy
        else:
            np.take(self.table, tokens, axis=0, out=self._rows)
            gates += self._rows
        self._cell(0, gates, tmp)
        for k in range(1, self.config.layers):
            self._xh[:, :H] = self.h[k - 1]
            self._xh[:, H:] = self.h[k]
            np.dot(self._xh, self.w_fused[k - 1], out=gates)
            gates += self.b_fused[k - 1]
            self._cell(k, gates, tmp)
        self._fresh = False

    def _cell(self, k: int, gates: np.ndarray, tmp: np.ndarray) -> None:
        """LSTM cell update in place: gates (B, 4H) in PyTorch's order i, f, g, o."""
        H = self.config.hidden
        i, f, g, o = gates[:, :H], gates[:, H:2 * H], gates[:, 2 * H:3 * H], gates[:, 3 * H:]
        for s in (i, f, o):  # sigmoid(x) = 0.5 * tanh(x / 2) + 0.5, without temporaries
            s *= 0.5
            np.tanh(s, out=s)
            s *= 0.5
            s += 0.5
        np.tanh(g, out=g)
        c = self.c[k]
        c *= f
        np.multiply(i, g, out=tmp)
        c += tmp
        np.tanh(c, out=tmp)
        np.multiply(o, tmp, out=self.h[k])

    def logits(self) -> np.ndarray:
        """(B, classes) scores for the next event; a view, valid until the next feed."""
        if not self._fresh:
            np.dot(self.h[-1], self.w_head, out=self._logits)
            self._logits += self.b_head
            self._fresh = True
        return self._logits

    def snapshot(self, into: Snapshot | None = None) -> Snapshot:
        """A copy of the state, to restore if a proposed event is taken back; pass ``into`` to
        reuse an earlier snapshot's buffers (no allocation)."""
        if into is None:
            return Snapshot(self.h.copy(), self.c.copy(), self.logits().copy())
        np.copyto(into.h, self.h)
        np.copyto(into.c, self.c)
        np.copyto(into.logits, self.logits())
        return into

    def restore(self, snap: Snapshot) -> None:
        """Return to a snapshot (copies into the existing buffers)."""
        np.copyto(self.h, snap.h)
        np.copyto(self.c, snap.c)
        np.copyto(self._logits, snap.logits)
        self._fresh = True
