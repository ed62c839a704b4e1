"""Mixed-radix packing of several small categorical fields into one integer class code.

This is the "Neural iPad Band trick" (Martin, Ellefsen & Torresen, 2017): the 9-class
gestures of four players were packed into a single class ``x = g0 + 9*g1 + 81*g2 + 729*g3``
so that one softmax over 6561 classes predicts the whole ensemble at once. :class:`Packer`
generalises this to any list of radices (number of classes per field).

Significance order
------------------
The FIRST field is the MOST significant and the LAST field is the least significant::

    code = f[0] * strides[0] + f[1] * strides[1] + ... + f[n-1] * 1
    strides[i] = radices[i+1] * radices[i+2] * ... * radices[n-1]

so the numeric order of codes equals the lexicographic order of the field tuples:
``pack(a) < pack(b)`` iff ``tuple(a) < tuple(b)``.

To reproduce the paper's layout ``g0 + 9*g1 + 81*g2 + 729*g3`` (where g0 is the least
significant), pass the fields in the order g3, g2, g1, g0::

    >>> p = Packer([9, 9, 9, 9], names=["g3", "g2", "g1", "g0"])
    >>> g0, g1, g2, g3 = 1, 2, 3, 4
    >>> p.pack((g3, g2, g1, g0)) == g0 + 9 * g1 + 81 * g2 + 729 * g3
    True
    >>> p.size
    6561

Usage example (a voice x event vocabulary)::

    >>> p = Packer([2, 388], names=["voice", "event"])
    >>> p.pack((1, 5))
    393
    >>> p.unpack(393)
    (1, 5)
    >>> import numpy as np
    >>> p.pack((np.array([0, 1]), 7)).tolist()   # array fields broadcast together
    [7, 395]

All codes and field values are kept in int64, so the product of the radices must fit in
int64 (at most ``2**63 - 1``); larger layouts are refused at construction time.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["Packer", "INT64_MAX"]

INT64_MAX: int = 2**63 - 1
"""Largest allowed product of radices (codes are stored as int64)."""


def _is_int_scalar(x: Any) -> bool:
    """True for Python ints and numpy integer scalars (bools excluded)."""
    return (isinstance(x, int) and not isinstance(x, bool)) or isinstance(x, np.integer)


def _as_int_array(x: Any, what: str) -> np.ndarray:
    """Convert an array-like to an integer ndarray, raising TypeError for non-integer dtypes."""
    arr = np.asarray(x)
    if arr.size == 0 and not isinstance(x, np.ndarray):
        # np.asarray([]) is float64; an empty list carries no dtype information.
        return arr.astype(np.int64)
    if not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"{what} must have an integer dtype, got dtype {arr.dtype}")
    return arr


class Packer:
    """Mixed-radix packer: maps a tuple of fields ``(f0, ..., f{n-1})`` to one int code.

    Field ``i`` takes values in ``range(radices[i])``; codes take values in ``range(size)``.
    The first field is the most significant, so code order equals lexicographic tuple order.
    """

    __slots__ = ("_radices", "_names", "_size", "_strides")

    def __init__(self, radices: Sequence[int], names: Sequence[str] | None = None) -> None:
        """Validate the radices (ints >= 1, product <= 2**63 - 1) and optional field names."""
        if isinstance(radices, (str, bytes)) or not isinstance(radices, Sequence | np.ndarray):
            raise TypeError(f"radices must be a sequence of ints, got {type(radices).__name__}")
        radix_list: list[int] = []
        for i, r in enumerate(radices):
            if not _is_int_scalar(r):
                raise TypeError(f"radix {i} must be an int, got {r!r} ({type(r).__name__})")
            r = int(r)
            if r < 1:
                raise ValueError(f"radix {i} must be >= 1, got {r}")
            radix_list.append(r)
        if not radix_list:
            raise ValueError("radices must contain at least one radix, got an empty list")

        size = 1
        for r in radix_list:
            size *= r  # exact Python int arithmetic
        if size > INT64_MAX:
            raise ValueError(
                f"product of radices {size} overflows int64 (must be <= 2**63 - 1 = {INT64_MAX})"
            )

        n = len(radix_list)
        if names is None:
            name_list = [f"field{i}" for i in range(n)]
        else:
            if isinstance(names, (str, bytes)):
                raise TypeError("names must be a sequence of str, not a single string")
            name_list = list(names)
            for nm in name_list:
                if not isinstance(nm, str):
                    raise TypeError(f"field names must be str, got {nm!r}")
            if len(name_list) != n:
                raise ValueError(
                    f"got {len(name_list)} names for {n} radices; names must match radices"
                )
            if len(set(name_list)) != n:
                dups = sorted({nm for nm in name_list if name_list.count(nm) > 1})
                raise ValueError(f"field names must be unique, duplicated: {dups}")

        strides = [1] * n
        for i in range(n - 2, -1, -1):
            strides[i] = strides[i + 1] * radix_list[i + 1]

        self._radices: tuple[int, ...] = tuple(radix_list)
        self._names: tuple[str, ...] = tuple(name_list)
        self._size: int = size
        self._strides: tuple[int, ...] = tuple(strides)

    # ------------------------------------------------------------------ properties
    @property
    def radices(self) -> tuple[int, ...]:
        """Number of classes of each field, most significant first."""
        return self._radices

    @property
    def names(self) -> tuple[str, ...]:
        """Field names, used in error messages."""
        return self._names

    @property
    def size(self) -> int:
        """Number of distinct codes (product of the radices); codes lie in ``range(size)``."""
        return self._size

    @property
    def strides(self) -> tuple[int, ...]:
        """Weight of each field in the code (the last field has weight 1)."""
        return self._strides

    @property
    def n_fields(self) -> int:
        """Number of fields."""
        return len(self._radices)

    # ------------------------------------------------------------------ pack / unpack
    def pack(self, fields: Sequence[Any] | np.ndarray) -> int | np.ndarray:
        """Pack field values into codes: ``sum(fields[i] * strides[i])``.

        ``fields`` is either a sequence of ``n_fields`` items (ints or integer arrays, which
        are broadcast together), or an integer ndarray whose last axis has length
        ``n_fields``. Returns a Python int when the (broadcast) result is a scalar, else an
        int64 ndarray of the broadcast shape.
        """
        n = self.n_fields
        if isinstance(fields, np.ndarray):
            if fields.ndim == 0:
                raise TypeError("fields must be a sequence or an array with a last axis of fields")
            arr = _as_int_array(fields, "fields array")
            if arr.shape[-1] != n:
                raise ValueError(
                    f"expected {n} fields {self._names} on the last axis, "
                    f"got last axis of length {arr.shape[-1]}"
                )
            items: list[Any] = [arr[..., i] for i in range(n)]
        elif isinstance(fields, (str, bytes)) or not isinstance(fields, Sequence):
            raise TypeError(
                f"fields must be a sequence of {n} values or an ndarray, "
                f"got {type(fields).__name__}"
            )
        else:
            if len(fields) != n:
                raise ValueError(f"expected {n} fields {self._names}, got {len(fields)}")
            items = list(fields)

        # Fast exact path: every field a scalar -> Python int arithmetic.
        if all(_is_int_scalar(v) for v in items):
            code = 0
            for v, r, s, nm in zip(items, self._radices, self._strides, self._names, strict=True):
                v = int(v)
                if not 0 <= v < r:
                    raise ValueError(
                        f"field {nm!r} value out of range(0, {r}) (radix {r}): got {v}"
                    )
                code += v * s
            return code

        arrays: list[np.ndarray] = []
        for v, r, nm in zip(items, self._radices, self._names, strict=True):
            if isinstance(v, bool | np.bool_):
                raise TypeError(f"field {nm!r} must be an integer, got bool {v!r}")
            a = _as_int_array(v, f"field {nm!r}")
            bad = (a < 0) | (a >= r)
            if bad.any():
                offending = a[bad].flat[0].item()
                raise ValueError(
                    f"field {nm!r} value out of range(0, {r}) (radix {r}): got {offending}"
                )
            arrays.append(a.astype(np.int64, copy=False))

        try:
            shape = np.broadcast_shapes(*(a.shape for a in arrays))
        except ValueError as exc:
            shapes = ", ".join(f"{nm}={a.shape}" for nm, a in zip(self._names, arrays, strict=True))
            raise ValueError(f"field shapes do not broadcast together: {shapes}") from exc

        code_arr = np.zeros(shape, dtype=np.int64)
        for a, s in zip(arrays, self._strides, strict=True):
            # Values are validated, so every partial sum is <= size - 1 <= INT64_MAX: no overflow.
            code_arr += a * np.int64(s)
        if code_arr.ndim == 0:
            return int(code_arr)
        return code_arr

    def unpack(self, codes: int | np.ndarray) -> tuple[int, ...] | tuple[np.ndarray, ...]:
        """Split codes back into field values (inverse of :meth:`pack`).

        Returns a tuple of ``n_fields`` Python ints for a scalar code, else a tuple of int64
        arrays with the same shape as ``codes``.
        """
        if _is_int_scalar(codes):
            c = int(codes)
            if not 0 <= c < self._size:
                raise ValueError(f"code out of range(0, {self._size}): got {c}")
            out: list[int] = []
            for r in reversed(self._radices):
                c, v = divmod(c, r)
                out.append(v)
            return tuple(reversed(out))

        if isinstance(codes, bool | np.bool_):
            raise TypeError(f"codes must be integers, got bool {codes!r}")
        arr = _as_int_array(codes, "codes")
        bad = (arr < 0) | (arr >= self._size)
        if bad.any():
            offending = arr[bad].flat[0].item()
            raise ValueError(f"code out of range(0, {self._size}): got {offending}")
        rest = arr.astype(np.int64, copy=True)
        if rest.ndim == 0:
            return self.unpack(int(rest))
        fields: list[np.ndarray] = []
        for r in reversed(self._radices):
            rest, v = np.divmod(rest, np.int64(r))
            fields.append(v)
        return tuple(reversed(fields))

    # ------------------------------------------------------------------ dunder
    def __repr__(self) -> str:
        return f"Packer(radices={list(self._radices)!r}, names={list(self._names)!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Packer):
            return NotImplemented
        return self._radices == other._radices and self._names == other._names

    def __hash__(self) -> int:
        return hash((Packer, self._radices, self._names))
