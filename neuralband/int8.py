"""int8 weights for the step runtime: a quarter of fp32's bytes per step, the same results to ~1%.

A step is memory-bound: it reads every weight once to produce one output. Stored as int8 with one
fp32 scale per output row (symmetric: the row's largest magnitude maps to 127), the matrices a
step reads shrink 4x, and a compiled kernel widens each byte to fp32 as it is read and multiplies
in fp32 (the activations are not quantized). numpy has no int8 matrix-vector product that does
not first copy the weights to a wider type, so the kernel is compiled by numba: on first use, then
cached on disk. This module is imported only when ``precision="int8"`` is asked for, so the fp32
play path neither needs numba nor pays for its import.
"""

from __future__ import annotations

import numpy as np

try:
    import numba
except ImportError as err:  # numba is the optional extra neuralband[fast]
    raise ImportError("int8 weights need numba: pip install 'neuralband[fast]' "
                      "(or numba itself)") from err

ROW_MAX = 127  # symmetric int8: -127..127, so a row's scale is max|w| / 127


def quantize_rows(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, K) weights -> int8 (N, K) and fp32 scales (N,): ``w ~= q * scale[:, None]``.
    A row whose scale would be zero or subnormal (every |w| below 1.5e-36, hence nothing a step
    could hear) is stored as zeros with scale 1: dividing by a subnormal scale overflows or loses
    the bits that keep each weight within half a step."""
    w = np.asarray(w, dtype=np.float32)
    scale = np.abs(w).max(axis=1) / np.float32(ROW_MAX)
    scale = np.where(scale >= np.finfo(np.float32).tiny, scale, 1.0).astype(np.float32)
    q = np.clip(np.rint(w / scale[:, None]), -ROW_MAX, ROW_MAX).astype(np.int8)
    return np.ascontiguousarray(q), scale


@numba.njit(cache=True, fastmath=True, boundscheck=False, nogil=True)
def _matmul(x, q, scale, out):  # pragma: no cover (compiled; tested through Int8Dense)
    """out[b, j] = scale[j] * sum_k q[j, k] * x[b, k]: row j (K bytes) stays in L1 for every b,
    and the sum over k is contiguous in both operands, so it vectorises (widen, multiply, add)."""
    batch, n, k = x.shape[0], q.shape[0], q.shape[1]
    for j in range(n):
        row = q[j]
        for b in range(batch):
            xb = x[b]
            acc = np.float32(0.0)
            for i in range(k):
                acc += row[i] * xb[i]
            out[b, j] = acc * scale[j]


def _warm() -> None:
    """Compile the kernel (or load it from numba's cache) at import, for the argument types the
    Stepper passes: not lazily inside the first step, where it cost a live grid tick 0.2 s."""
    x = np.zeros((1, 1), np.float32)
    _matmul(x, np.zeros((1, 1), np.int8), np.ones(1, np.float32), np.zeros((1, 1), np.float32))


_warm()


class Int8Dense:
    """``x @ w.T`` for x (B, K) with w (N, K) held as int8 rows and per-row scales."""

    def __init__(self, w: np.ndarray):
        self.q, self.scale = quantize_rows(w)

    @property
    def nbytes(self) -> int:
        return self.q.nbytes + self.scale.nbytes

    def __call__(self, x: np.ndarray, out: np.ndarray) -> None:
        _matmul(x, self.q, self.scale, out)
