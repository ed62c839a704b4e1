"""The step runtime: one event in, the next event's distribution out, in numpy, without torch.

The instrument feeds one token at a time thousands of times a minute, so the weights are laid out
once for that: the first layer's input projection is a (vocab, 4H) table (the input is one token,
so embedding @ W_ih + biases is a row lookup), each layer's recurrent product is one matrix
apart from its input's (see `prepare`), and every buffer is allocated up front; a step does a
handful of BLAS calls and in-place ufuncs, nothing else. It computes what `EventLSTM` computes
(PyTorch's gate order i, f, g, o; a GRU's r, z, n), tested to 1e-4 over 1,000 steps.

`Stepper` holds a batch of B independent states (B=1 live; B=K for K variations in one pass).
With ``precision="int8"`` the matrices a step reads are int8 with per-row scales
(`neuralband.int8`): a quarter of the bytes, which is what a step's time is made of.

For the live loop, a step can be split around the moment its token is known: `prepare` computes
the recurrent products of the current state (every layer's W_hh @ h: most of a step's bytes)
while nothing is waiting, so the `feed` that follows reads only the input weights; and
`speculate` computes, off the critical path, the whole state after a token that is likely next
(the player's time shift), so that feeding that token from that state is a copy.

A model that reads the beat (`encoders.beats`) gets its beat control from the Stepper's beat
clock: `place_beat` says where in the beat and bar the stream is and how long a beat lasts, and
every fed token moves the clock on by the time it stands for, so the phase changes with each
TIME_SHIFT without the caller writing a control vector (a few microseconds, nothing allocated).
"""

from __future__ import annotations

import itertools
import math
import os
from dataclasses import dataclass

import numpy as np

from neuralband.encoders.beats import DENSE, REFERENCE_PERIOD_S, Beats, positions, write_beat
from neuralband.encoders.performance import Event
from neuralband.modelconfig import ModelConfig
from neuralband.modelfile import ModelFileError, ModelInfo, model_paths, read_info

PRECISIONS = ("fp32", "int8")


PREPARED_GUESSES = 4  # states computed ahead by `Stepper.speculate`, the oldest replaced first
_versions = itertools.count()  # every state a Stepper passes through gets its own number


@dataclass
class Snapshot:
    """A copy of the recurrent state (and the last logits, and the recurrent products if
    prepared), to take back a proposed event."""

    h: np.ndarray
    c: np.ndarray
    logits: np.ndarray
    rec: np.ndarray
    prepared: bool = False
    version: int = -1
    beat: np.ndarray | None = None  # the beat clock's position (beats into the bar), per stream


@dataclass
class _Guess:
    """A state computed ahead: ``state`` is where feeding ``token`` from state ``base`` leads."""

    base: int | None  # None: stale
    token: int
    state: Snapshot


def load_weights(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], ModelInfo]:
    """The model file's arrays as float32 numpy (safetensors' numpy API, never torch)."""
    from safetensors import SafetensorError
    from safetensors.numpy import load

    weights_path, _ = model_paths(path)
    try:
        data = weights_path.read_bytes()
    except OSError:
        data = None  # read_info says what is wrong with it
    info = read_info(path, data)
    try:
        arrays = load(data)
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
        H, L, G, cell = config.hidden, config.layers, config.gates, config.cell
        if cell == "lstm":
            # Gate rows from PyTorch's order i, f, g, o to i, f, o, g: the three sigmoids are
            # then one contiguous slice, and a cell update is 10 ufunc calls instead of 16.
            order = np.r_[0:2 * H, 3 * H:4 * H, 2 * H:3 * H]
            weights = {k: (v[order] if k.startswith("lstm.") else v) for k, v in weights.items()}
        try:
            w_in = weights[f"{cell}.weight_ih_l0"].T  # (E + controls, G*H)
            E = config.embed_dim
            w_ih0 = w_in[:E]
            # The control inputs' columns: a (controls, G*H) matrix applied once per change of
            # the controls (`set_controls`), then one row added per step.
            self.control_w = np.ascontiguousarray(w_in[E:], dtype=np.float32)
            bias0 = self._input_bias(weights, 0)
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
            self.hh0 = dense(weights[f"{cell}.weight_hh_l0"])  # h (H) -> gates (G*H)
            # Layers 1..L-1: the input product (from the layer below) and the recurrent one
            # apart, so that the recurrent one can be computed before the token is known
            # (`prepare`). A GRU needs them apart anyway: its candidate reads r * (W_hn h + b_hn).
            self.upper = [(dense(weights[f"{cell}.weight_ih_l{k}"]),
                           dense(weights[f"{cell}.weight_hh_l{k}"]),
                           self._input_bias(weights, k)) for k in range(1, L)]
            if cell == "gru":
                self.b_hn = [weights[f"gru.bias_hh_l{k}"][2 * H:] for k in range(L)]
            head = weights["head.weight"]  # (classes, H)
            self.head = dense(head)
            self.b_head = weights["head.bias"].astype(np.float32)
        except KeyError as err:
            raise ModelFileError(f"model weights lack {err.args[0]!r}") from err
        rows = ([t.shape for t in self.tables] if config.fields
                else [self.table.shape])
        wanted = ([(r, G * H) for r in config.fields] if config.fields
                  else [(config.vocab_size, G * H)])
        if (rows != wanted or head.shape != (config.classes, H)
                or self.control_w.shape != (config.controls, G * H)):
            raise ModelFileError(f"model weights do not fit {config}")
        # State and scratch, allocated once (a GRU keeps no cell state: c stays empty).
        self.h = np.zeros((L, batch, H), np.float32)
        self.c = np.zeros((L, batch, H if cell == "lstm" else 0), np.float32)
        self._gates = np.zeros((batch, G * H), np.float32)  # the input products, layer by layer
        self._rec = np.zeros((L, batch, G * H), np.float32)  # the recurrent products, prepared
        self._prepared = False  # whether _rec matches the state
        self._version = next(_versions)
        self._guesses: list[_Guess] = []  # `speculate`'s states, made on first use
        self._scratch: tuple[np.ndarray, ...] | None = None  # where `speculate` computes
        self.guessed = 0  # feeds that were a guess's copy
        self._rows = np.zeros((batch, G * H), np.float32)
        self._tmp = np.zeros((batch, H), np.float32)
        self._logits = np.zeros((batch, config.classes), np.float32)
        self._fresh = False  # whether _logits matches the state
        self.controls = np.zeros((batch, config.controls), np.float32)  # zeros: no control
        self._control_rows = np.zeros((batch, G * H), np.float32)  # controls @ control_w
        self._init_beat(info, G * H)

    def _init_beat(self, info: ModelInfo | None, width: int) -> None:
        """The beat clock of a model that reads the beat control: its weight rows apart from
        the key's and density's, the seconds each input token stands for, and the clock (off:
        "no beat" until `place_beat`)."""
        controls = info.controls if info is not None else None
        self.reads_beat = bool(controls is not None and controls.beat)
        B = self.batch
        self.beat_pos = np.zeros(B, np.float64)  # beats since the bar's downbeat
        self.beat_period_s = np.full(B, REFERENCE_PERIOD_S)
        self.bar_beats = np.full(B, 4.0)
        self.beat_streams = np.zeros(B, bool)  # which streams have a beat (the rest: none)
        if not self.reads_beat:
            self.control_w_beat = np.zeros((0, width), np.float32)
            return
        start = controls.beat_start
        self.control_w_beat = np.ascontiguousarray(self.control_w[start:])  # (BEAT_SIZE, G*H)
        self.control_w = np.ascontiguousarray(self.control_w[:start])
        self._beat_dense = self.control_w_beat[:DENSE]  # the phases' rows, a matrix product
        self._beat_vec = np.zeros((B, DENSE), np.float32)
        self._beat_rows = np.zeros((B, width), np.float32)
        scheme = info.scheme
        base = scheme.base(np.arange(scheme.input_classes))
        enc = scheme.settings
        self.token_seconds = np.where(enc.kinds[base] == Event.TIME_SHIFT,
                                      enc.values[base] / enc.steps_per_second, 0.0)

    def place_beat(self, beat_in_bar: float | None, period_s: float = REFERENCE_PERIOD_S,
                   bar_beats: float = 4.0, stream: int | None = None) -> None:
        """Where the stream(s) stand now: ``beat_in_bar`` beats after a downbeat (0 on it;
        the fraction is the phase in the beat), a beat of ``period_s``, bars of ``bar_beats``;
        None: no beat (the model runs free). Each token fed then moves the clock on."""
        if not self.reads_beat:
            return
        rows = slice(None) if stream is None else slice(stream, stream + 1)
        if beat_in_bar is None:
            self.beat_streams[rows] = False
        else:
            if not period_s > 0 or not bar_beats >= 1:
                raise ValueError(f"a beat lasts > 0 s and a bar >= 1 beat, got {period_s}, "
                                 f"{bar_beats}")
            self.beat_pos[rows] = beat_in_bar % bar_beats
            self.beat_period_s[rows] = period_s
            self.bar_beats[rows] = bar_beats
            self.beat_streams[rows] = True
        for guess in self._guesses:  # computed on the old clock
            guess.base = None

    @property
    def beat_on(self) -> bool:
        """Whether any stream has a beat."""
        return bool(self.beat_streams.any())

    def place_on(self, beats: Beats | None, time_s: float, stream: int | None = None) -> None:
        """`place_beat` at ``time_s`` on a piece's beats (None, or beyond them: no beat)."""
        if beats is None:
            self.place_beat(None, stream=stream)
            return
        pos = positions(np.array([time_s]), beats)
        if not pos.inside[0]:
            self.place_beat(None, stream=stream)
            return
        bar = float(pos.bar_beats[0])
        self.place_beat(float(pos.bar_phase[0]) * bar, float(pos.period_s[0]), bar, stream)

    def _beat_input(self, tokens: int | np.ndarray, gates: np.ndarray) -> None:
        """Move each beat stream's clock on by its fed token's time and add the beat control's
        rows: the phases' as one product, the two one-hot times' as two row adds (a stream with
        no beat reads zeros: nothing is added). Scalars per stream: nothing is allocated."""
        streams = self.beat_streams
        if not streams.any():
            return
        pos, vec, rows = self.beat_pos, self._beat_vec, self.control_w_beat
        single = isinstance(tokens, (int, np.integer))
        for b in range(self.batch):
            if not streams[b]:
                vec[b] = 0.0
                continue
            token = tokens if single else tokens[b]
            bar, period = float(self.bar_beats[b]), float(self.beat_period_s[b])
            p = (float(pos[b]) + float(self.token_seconds[token]) / period) % bar
            pos[b] = p
            eighth, beat = write_beat(vec[b], p, p / bar, period)
            gates[b] += rows[eighth]  # the one-hot times to the next lines: their rows
            gates[b] += rows[beat]
        np.dot(vec, self._beat_dense, out=self._beat_rows)
        gates += self._beat_rows

    def _input_bias(self, weights: dict[str, np.ndarray], k: int) -> np.ndarray:
        """The biases added to layer k's input product: an LSTM's two; for a GRU, b_ih and
        the r and z parts of b_hh (b_hn sits inside r * (...), kept apart)."""
        cell, H = self.config.cell, self.config.hidden
        b_ih, b_hh = weights[f"{cell}.bias_ih_l{k}"], weights[f"{cell}.bias_hh_l{k}"]
        if cell == "lstm":
            return b_ih + b_hh
        return b_ih + np.concatenate([b_hh[:2 * H], np.zeros(H, b_hh.dtype)])

    @classmethod
    def load(cls, path: str | os.PathLike, batch: int = 1, precision: str = "fp32") -> Stepper:
        """A stepper for a model file (NAME, NAME.json or NAME.safetensors)."""
        weights, info = load_weights(path)
        return cls(weights, info.config, batch, info, precision)

    @property
    def weight_bytes(self) -> int:
        """The bytes of weights one step reads (with one row of the input table per field)."""
        rows = self.tables if self.tables else [self.table]
        return (self.hh0.nbytes + self.head.nbytes
                + sum(ih.nbytes + hh.nbytes for ih, hh, _ in self.upper)
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
        # (a beat-reading model's beat part comes from its clock: `place_beat`)
        np.dot(self.controls[:, :len(self.control_w)], self.control_w, out=self._control_rows)
        for guess in self._guesses:  # computed with the old controls: no state leads there
            guess.base = None

    # What `adopt` takes over: every array a step reads of the weights.
    WEIGHTS = ("control_w", "table", "tables", "strides", "hh0", "upper", "b_hn", "head",
               "b_head", "control_w_beat", "_beat_dense", "info")

    def adopt(self, other: Stepper) -> None:
        """Take ``other``'s weights and recurrent state (a retrained version of this model,
        brought to the same stream: `play --learn-me`): the weights are rebound, not copied, and
        the state copied into this stepper's own buffers; the controls and the beat clock stay
        this stepper's. Streams, sizes, cell and precision must be the same."""
        if (other.config.to_dict() != self.config.to_dict() or other.batch != self.batch
                or other.precision != self.precision):
            raise ValueError(f"a stepper of {other.config}, batch {other.batch}, "
                             f"{other.precision}, cannot take this one's place")
        for name in self.WEIGHTS:
            if hasattr(other, name):
                setattr(self, name, getattr(other, name))
        np.copyto(self.h, other.h)
        np.copyto(self.c, other.c)
        np.dot(self.controls[:, :len(self.control_w)], self.control_w, out=self._control_rows)
        self._guesses.clear()  # computed with the old weights
        self._fresh = False
        self._prepared = False
        self._version = next(_versions)

    def reset(self) -> None:
        """Back to the state before any event."""
        self.h.fill(0.0)
        self.c.fill(0.0)
        self._fresh = False
        self._prepared = False
        self._version = next(_versions)

    def prepare(self) -> None:
        """Compute the current state's recurrent products (W_hh @ h, every layer) ahead of the
        next `feed`, which then reads only the input weights; called while waiting for a token,
        it takes most of a step off the moment the token arrives. Results are unchanged."""
        if self._prepared:
            return
        rec = self._rec
        self.hh0(self.h[0], rec[0])
        for k, (_, hh, _) in enumerate(self.upper, start=1):
            hh(self.h[k], rec[k])
        self._prepared = True

    def feed(self, tokens: int | np.ndarray) -> None:
        """Advance every stream by one event (an int for B=1, or B ints)."""
        if isinstance(tokens, (int, np.integer)) and self._take_guess(int(tokens)):
            return
        self.prepare()
        gates, rec = self._gates, self._rec
        gates.fill(0.0)
        self._add_input(tokens, gates)  # layer 0's input: table rows, biases in them
        self._update(0, gates, rec[0])
        for k, (ih, _, bias) in enumerate(self.upper, start=1):
            ih(self.h[k - 1], gates)
            gates += bias
            self._update(k, gates, rec[k])
        self._fresh = False
        self._prepared = False
        self._version = next(_versions)

    def speculate(self, token: int, base: Snapshot | None = None) -> Snapshot:
        """Compute ahead the state that feeding ``token`` from ``base`` (a snapshot; default
        the current state) leads to, prepared for the feed after it; the current state does not
        move. A later `feed(token)` from that state restores it instead of computing: exact,
        and a copy. Returns that state, a base for guessing the token after it (valid until
        `PREPARED_GUESSES` newer guesses have been made; read it, never ``snapshot(into=)``
        it); new controls drop the guesses."""
        start = self._version if base is None else base.version
        for guess in self._guesses:
            if guess.base == start and guess.token == token:
                return guess.state
        if len(self._guesses) < PREPARED_GUESSES:
            guess = _Guess(start, token, self.snapshot())
        else:
            guess = self._guesses.pop(0)
            guess.base, guess.token = start, token
        # Computed in scratch arrays: the live state's arrays are never written, so a reader in
        # another thread (the live view's cells) sees only states that happened.
        live = (self.h, self.c, self._logits, self._rec, self.beat_pos)
        flags = (self._fresh, self._prepared, self._version)
        if self._scratch is None:
            self._scratch = tuple(np.empty_like(a) for a in live)
        self.h, self.c, self._logits, self._rec, self.beat_pos = self._scratch
        try:
            if base is None:
                for into, now in zip(self._scratch, live, strict=True):
                    np.copyto(into, now)
            else:
                self.restore(base)
            self.feed(token)
            self.prepare()
            self.snapshot(into=guess.state)
        finally:
            self.h, self.c, self._logits, self._rec, self.beat_pos = live
            self._fresh, self._prepared, self._version = flags
        self._guesses.append(guess)
        return guess.state

    def _take_guess(self, token: int) -> bool:
        for guess in self._guesses:
            if guess.base == self._version and guess.token == token:
                self.restore(guess.state)
                self.guessed += 1
                return True
        return False

    def _update(self, k: int, gi: np.ndarray, gh: np.ndarray) -> None:
        """Layer k's new state from its input product ``gi`` and recurrent product ``gh``
        (both overwritten)."""
        if self.config.cell == "gru":
            self._gru(k, gi, gh)
        else:
            gi += gh
            self._cell(k, gi, self._tmp)

    def _add_input(self, tokens: int | np.ndarray, gates: np.ndarray) -> None:
        """Layer 0's input product (table rows, biases in them) and the controls' rows."""
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
            if self.reads_beat:
                self._beat_input(tokens, gates)

    def _gru(self, k: int, gi: np.ndarray, gh: np.ndarray) -> None:
        """GRU update in place (PyTorch's): r, z = sigmoid(gi + gh) on the first 2H; the
        candidate n = tanh(gi_n + r * (gh_n + b_hn)); h = n + z * (h - n)."""
        H = self.config.hidden
        rz = gi[:, :2 * H]
        rz += gh[:, :2 * H]
        rz *= 0.5  # sigmoid(x) = 0.5 * tanh(x / 2) + 0.5, without temporaries
        np.tanh(rz, out=rz)
        rz *= 0.5
        rz += 0.5
        r, z, n, hn = gi[:, :H], gi[:, H:2 * H], gi[:, 2 * H:], gh[:, 2 * H:]
        hn += self.b_hn[k]
        hn *= r
        n += hn
        np.tanh(n, out=n)
        h = self.h[k]
        h -= n
        h *= z
        h += n

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
            return Snapshot(self.h.copy(), self.c.copy(), self.logits().copy(), self._rec.copy(),
                            self._prepared, self._version, self.beat_pos.copy())
        np.copyto(into.h, self.h)
        np.copyto(into.c, self.c)
        np.copyto(into.logits, self.logits())
        if self._prepared:
            np.copyto(into.rec, self._rec)
        into.prepared, into.version = self._prepared, self._version
        if into.beat is None:
            into.beat = self.beat_pos.copy()
        else:
            np.copyto(into.beat, self.beat_pos)
        return into

    def restore(self, snap: Snapshot) -> None:
        """Return to a snapshot (copies into the existing buffers)."""
        np.copyto(self.h, snap.h)
        np.copyto(self.c, snap.c)
        np.copyto(self._logits, snap.logits)
        if snap.beat is not None:
            np.copyto(self.beat_pos, snap.beat)
        if snap.prepared:
            np.copyto(self._rec, snap.rec)
        self._fresh = True
        self._prepared, self._version = snap.prepared, snap.version
