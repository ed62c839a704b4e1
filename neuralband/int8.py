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

import os
import sys

import numpy as np


def _prefer_512_bit_vectors() -> None:
    """Let the kernel use 512-bit vectors where the CPU has them. LLVM tunes code for Intel's
    AVX-512 cores to 256 bits (``prefer-256-bit``: wide vectors can lower the clock in long
    loops); at 256 bits this kernel is bound by its instructions, not its bytes, and at 512 it
    widens and multiplies twice the weights per instruction (a 3 x 512 step 0.40 -> 0.35 ms on
    an Intel Xeon). numba reads its target features from NUMBA_CPU_FEATURES at import: the
    host's own, less that tuning. Left alone where the user set them or numba already runs."""
    if "NUMBA_CPU_FEATURES" in os.environ or "numba" in sys.modules:
        return
    try:
        import llvmlite.binding as llvm

        features = llvm.get_host_cpu_features().flatten()
    except (ImportError, RuntimeError):  # no llvmlite (then no numba either) or no host info
        return
    if "+avx512f" in features.split(","):
        os.environ["NUMBA_CPU_FEATURES"] = features + ",-prefer-256-bit"


_prefer_512_bit_vectors()

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


ROWS = 4  # rows of the matrix one pass multiplies: each load of x serves four rows


@numba.njit(cache=True, fastmath=True, boundscheck=False, nogil=True)
def _matmul(x, q, scale, out):  # pragma: no cover (compiled; tested through Int8Dense)
    """out[b, j] = scale[j] * sum_k q[j, k] * x[b, k], ROWS rows at a time: the rows (4 x K
    bytes) stay in L1 for every b, each x[b, i] read serves four sums that run side by side
    (where one sum at a time spends an eighth of its work folding its vector at the end), and
    the sum over k is contiguous in every operand, so it vectorises (widen, convert, FMA)."""
    batch, n, k = x.shape[0], q.shape[0], q.shape[1]
    j = 0
    while j + ROWS <= n:
        r0, r1, r2, r3 = q[j], q[j + 1], q[j + 2], q[j + 3]
        for b in range(batch):
            xb = x[b]
            a0 = a1 = a2 = a3 = np.float32(0.0)
            for i in range(k):
                xi = xb[i]
                a0 += r0[i] * xi
                a1 += r1[i] * xi
                a2 += r2[i] * xi
                a3 += r3[i] * xi
            out[b, j] = a0 * scale[j]
            out[b, j + 1] = a1 * scale[j + 1]
            out[b, j + 2] = a2 * scale[j + 2]
            out[b, j + 3] = a3 * scale[j + 3]
        j += ROWS
    for last in range(j, n):  # the last n % ROWS rows
        row = q[last]
        for b in range(batch):
            xb = x[b]
            acc = np.float32(0.0)
            for i in range(k):
                acc += row[i] * xb[i]
            out[b, last] = acc * scale[last]


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
