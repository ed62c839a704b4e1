"""The step runtime: one event in, the next event's distribution out, in numpy, without torch.

The instrument feeds one token at a time thousands of times a minute, so the weights are laid out
once for that: the first layer's input projection is a (vocab, 4H) table (the input is one token,
so embedding @ W_ih + biases is a row lookup), the upper layers' input and recurrent weights are
fused into one (4H, 2H) matrix per layer, and every buffer is allocated up front; a step does a
handful of BLAS calls and in-place ufuncs, nothing else. It computes what `EventLSTM` computes
(PyTorch's gate order i, f, g, o), tested to 1e-4 over 1,000 steps.

`Stepper` holds a batch of B independent states (B=1 live; B=K for K variations in one pass).
With ``precision="int8"`` the matrices a step reads are int8 with per-row scales
(`neuralband.int8`): a quarter of the bytes, which is what a step's time is made of.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np

from neuralband.modelconfig import ModelConfig
from neuralband.modelfile import ModelFileError, ModelInfo, model_paths, read_info

PRECISIONS = ("fp32", "int8")


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


class Dense:
    """``x @ w.T`` for x (B, K), with w (N, K) (PyTorch's layout) held transposed for BLAS."""

    def __init__(self, w: np.ndarray):
        self.w = np.ascontiguousarray(np.asarray(w, dtype=np.float32).T)  # (K, N)

    @property
    def nbytes(self) -> int:
        return self.w.nbytes

    def __call__(self, x: np.ndarray, out: np.ndarray) -> None:
        np.dot(x, self.w, out=out)


def dense_maker(precision: str):
    """The class that holds and multiplies a step's matrices in ``precision``."""
    if precision == "fp32":
        return Dense
    if precision == "int8":
        try:
            from neuralband.int8 import Int8Dense
        except ImportError as err:  # numba missing: one line for the command line
            raise ValueError(str(err)) from err
        return Int8Dense
    raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")


class Stepper:
    """Recurrent state plus `feed`, `logits`, `snapshot`/`restore`, `reset`, for B streams."""

    def __init__(self, weights: dict[str, np.ndarray], config: ModelConfig, batch: int = 1,
                 info: ModelInfo | None = None, precision: str = "fp32"):
        self.config = config
        self.info = info  # the model file's description, when loaded from one
        self.batch = batch
        self.precision = precision
        dense = dense_maker(precision)
        H, L = config.hidden, config.layers
        # Gate rows from PyTorch's order i, f, g, o to i, f, o, g: the three sigmoids are then one
        # contiguous slice, and a cell update is 10 ufunc calls instead of 16.
        order = np.r_[0:2 * H, 3 * H:4 * H, 2 * H:3 * H]
        weights = {k: (v[order] if k.startswith("lstm.") else v) for k, v in weights.items()}
        try:
            w_in = weights["lstm.weight_ih_l0"].T  # (E + controls, 4H)
            E = config.embed_dim
            w_ih0 = w_in[:E]
            # The control inputs' columns: a (controls, 4H) matrix applied once per change of
            # the controls (`set_controls`), then one row added per step.
            self.control_w = np.ascontiguousarray(w_in[E:], dtype=np.float32)
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
            self.hh0 = dense(weights["lstm.weight_hh_l0"])  # h (H) -> gates (4H)
            # Layers 1..L-1: [input | recurrent] fused, so one matmul per layer.
            self.fused = [dense(np.concatenate(
                [weights[f"lstm.weight_ih_l{k}"], weights[f"lstm.weight_hh_l{k}"]], axis=1))
                for k in range(1, L)]  # each [h_below | h] (2H) -> gates (4H)
            self.b_fused = [weights[f"lstm.bias_ih_l{k}"] + weights[f"lstm.bias_hh_l{k}"]
                            for k in range(1, L)]
            head = weights["head.weight"]  # (classes, H)
            self.head = dense(head)
            self.b_head = weights["head.bias"].astype(np.float32)
        except KeyError as err:
            raise ModelFileError(f"model weights lack {err.args[0]!r}") from err
        rows = ([t.shape for t in self.tables] if config.fields
                else [self.table.shape])
        wanted = ([(r, 4 * H) for r in config.fields] if config.fields
                  else [(config.vocab_size, 4 * H)])
        if (rows != wanted or head.shape != (config.classes, H)
                or self.control_w.shape != (config.controls, 4 * H)):
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
        self.controls = np.zeros((batch, config.controls), np.float32)  # zeros: no control
        self._control_rows = np.zeros((batch, 4 * H), np.float32)  # controls @ control_w

    @classmethod
    def load(cls, path: str | os.PathLike, batch: int = 1, precision: str = "fp32") -> Stepper:
        """A stepper for a model file (NAME, NAME.json or NAME.safetensors)."""
        weights, info = load_weights(path)
        return cls(weights, info.config, batch, info, precision)

    @property
    def weight_bytes(self) -> int:
        """The bytes of weights one step reads (with one row of the input table per field)."""
        rows = self.tables if self.tables else [self.table]
        return (self.hh0.nbytes + sum(d.nbytes for d in self.fused) + self.head.nbytes
                + sum(t[0].nbytes for t in rows))

    def set_controls(self, controls: np.ndarray) -> None:
        """The control vector read beside every following token (`encoders.controls`): one
        vector for every stream, or one row per stream; zeros are "no control"."""
        if not self.config.controls:
            raise ValueError("this model reads no controls (it was trained without them)")
        v = np.asarray(controls, np.float32)
        if v.shape[-1] != self.config.controls or v.ndim > 2:
            raise ValueError(f"controls must have {self.config.controls} values per stream, "
                             f"got shape {v.shape}")
        self.controls[:] = v
        np.dot(self.controls, self.control_w, out=self._control_rows)

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
        self.hh0(self.h[0], gates)
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
        if self.config.controls:
            gates += self._control_rows
        self._cell(0, gates, tmp)
        for k in range(1, self.config.layers):
            self._xh[:, :H] = self.h[k - 1]
            self._xh[:, H:] = self.h[k]
            self.fused[k - 1](self._xh, gates)
            gates += self.b_fused[k - 1]
            self._cell(k, gates, tmp)
        self._fresh = False

    def _cell(self, k: int, gates: np.ndarray, tmp: np.ndarray) -> None:
        """LSTM cell update in place: gates (B, 4H) in the order i, f, o, g (see __init__)."""
        H = self.config.hidden
        sig, g = gates[:, :3 * H], gates[:, 3 * H:]
        sig *= 0.5  # sigmoid(x) = 0.5 * tanh(x / 2) + 0.5, without temporaries
        np.tanh(sig, out=sig)
        sig *= 0.5
        sig += 0.5
        i, f, o = gates[:, :H], gates[:, H:2 * H], gates[:, 2 * H:3 * H]
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
            self.head(self.h[-1], self._logits)
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
