"""Tests for encoders.packing.Packer (mixed-radix packing of categorical fields)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neuralband.encoders.packing import INT64_MAX, Packer

# Factorisation of 2**63 - 1: the largest product of radices that still fits in int64.
INT64_MAX_FACTORS = [7, 7, 73, 127, 337, 92737, 649657]

radix_lists = st.lists(st.integers(min_value=1, max_value=40), min_size=1, max_size=6)


@st.composite
def radices_and_tuple(draw: st.DrawFn) -> tuple[list[int], tuple[int, ...]]:
    """A radix list and one valid field tuple for it."""
    radices = draw(radix_lists)
    values = tuple(draw(st.integers(0, r - 1)) for r in radices)
    return radices, values


@st.composite
def radices_and_arrays(draw: st.DrawFn) -> tuple[list[int], list[np.ndarray]]:
    """A radix list and one random integer array per field, all of the same shape."""
    radices = draw(radix_lists)
    shape = tuple(draw(st.lists(st.integers(0, 4), min_size=1, max_size=3)))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    arrays = [rng.integers(0, r, size=shape, dtype=np.int64) for r in radices]
    return radices, arrays


def reference_code(radices: list[int], values: tuple[int, ...]) -> int:
    """Exact Python-int mixed-radix code, first field most significant."""
    code = 0
    for r, v in zip(radices, values, strict=True):
        code = code * r + v
    return code


# --------------------------------------------------------------------------- round trips


@given(radices_and_tuple())
def test_pack_unpack_inverse_scalars(case: tuple[list[int], tuple[int, ...]]) -> None:
    radices, values = case
    p = Packer(radices)
    code = p.pack(values)
    assert type(code) is int
    assert 0 <= code < p.size
    assert code == reference_code(radices, values)
    back = p.unpack(code)
    assert back == values
    assert all(type(v) is int for v in back)


@given(radices_and_arrays())
def test_pack_unpack_inverse_arrays(case: tuple[list[int], list[np.ndarray]]) -> None:
    radices, arrays = case
    p = Packer(radices)
    codes = p.pack(arrays)
    assert isinstance(codes, np.ndarray)
    assert codes.dtype == np.int64
    assert codes.shape == arrays[0].shape
    back = p.unpack(codes)
    assert len(back) == len(radices)
    for got, want in zip(back, arrays, strict=True):
        assert got.dtype == np.int64
        assert got.shape == want.shape
        np.testing.assert_array_equal(got, want)


@given(radix_lists, st.data())
def test_unpack_pack_inverse_over_codes(radices: list[int], data: st.DataObject) -> None:
    p = Packer(radices)
    codes = data.draw(st.lists(st.integers(0, p.size - 1), min_size=1, max_size=20))
    for c in codes:
        assert p.pack(p.unpack(c)) == c
    arr = np.array(codes, dtype=np.int64)
    np.testing.assert_array_equal(p.pack(p.unpack(arr)), arr)


def test_unpack_pack_exhaustive_small() -> None:
    p = Packer([3, 1, 4, 2])
    codes = np.arange(p.size)
    fields = p.unpack(codes)
    np.testing.assert_array_equal(p.pack(fields), codes)
    # Every tuple in the product space appears exactly once, in lexicographic order.
    tuples = list(zip(*(f.tolist() for f in fields), strict=True))
    assert tuples == list(itertools.product(*(range(r) for r in p.radices)))


# --------------------------------------------------------------------------- order / size


@given(radix_lists, st.data())
def test_monotone_codes_follow_lexicographic_order(radices: list[int], data: st.DataObject) -> None:
    p = Packer(radices)
    tuple_strategy = st.tuples(*(st.integers(0, r - 1) for r in radices))
    tuples = data.draw(st.lists(tuple_strategy, min_size=2, max_size=30))
    assert [p.pack(t) for t in sorted(tuples)] == sorted(p.pack(t) for t in tuples)
    a, b = tuples[0], tuples[1]
    assert (p.pack(a) < p.pack(b)) == (a < b)
    assert (p.pack(a) == p.pack(b)) == (a == b)


@given(radix_lists)
def test_size_strides(radices: list[int]) -> None:
    p = Packer(radices)
    assert p.size == math.prod(radices)
    assert type(p.size) is int
    assert p.radices == tuple(radices)
    assert p.n_fields == len(radices)
    assert p.strides[-1] == 1
    for i in range(len(radices)):
        assert p.strides[i] == math.prod(radices[i + 1 :])


def test_paper_example_neural_ipad_band() -> None:
    # Martin, Ellefsen & Torresen 2017: x = g0 + 9*g1 + 81*g2 + 729*g3.
    p = Packer([9, 9, 9, 9], names=["g3", "g2", "g1", "g0"])
    assert p.size == 6561
    assert p.strides == (729, 81, 9, 1)
    grid = np.array(list(itertools.product(range(9), repeat=4)), dtype=np.int64)
    g0, g1, g2, g3 = grid.T
    codes = p.pack((g3, g2, g1, g0))
    np.testing.assert_array_equal(codes, g0 + 9 * g1 + 81 * g2 + 729 * g3)
    np.testing.assert_array_equal(np.sort(codes), np.arange(6561))
    assert p.pack((4, 3, 2, 1)) == 1 + 9 * 2 + 81 * 3 + 729 * 4
    assert p.unpack(8 + 9 * 7) == (0, 0, 7, 8)


def test_voice_event_example() -> None:
    p = Packer([2, 388], names=["voice", "event"])
    assert p.size == 776
    assert p.pack((1, 5)) == 393
    assert p.unpack(393) == (1, 5)


# --------------------------------------------------------------------------- input forms


def test_broadcasting_of_array_fields() -> None:
    p = Packer([3, 5, 7], names=["a", "b", "c"])
    a = np.array([0, 1, 2])[:, None, None]  # (3, 1, 1)
    b = np.arange(5)[None, :, None]  # (1, 5, 1)
    c = 6  # scalar
    codes = p.pack((a, b, c))
    assert codes.shape == (3, 5, 1)
    np.testing.assert_array_equal(codes, a * 35 + b * 7 + c)
    back = p.unpack(codes)
    np.testing.assert_array_equal(back[0], np.broadcast_to(a, (3, 5, 1)))
    np.testing.assert_array_equal(back[1], np.broadcast_to(b, (3, 5, 1)))
    np.testing.assert_array_equal(back[2], np.full((3, 5, 1), 6))


def test_non_broadcastable_fields() -> None:
    p = Packer([3, 5], names=["a", "b"])
    with pytest.raises(ValueError, match="broadcast"):
        p.pack((np.zeros(2, dtype=int), np.zeros(3, dtype=int)))


@given(radices_and_arrays())
def test_last_axis_array_form(case: tuple[list[int], list[np.ndarray]]) -> None:
    radices, arrays = case
    p = Packer(radices)
    stacked = np.stack(arrays, axis=-1)
    np.testing.assert_array_equal(p.pack(stacked), p.pack(arrays))


def test_last_axis_array_form_2d_and_1d() -> None:
    p = Packer([2, 388], names=["voice", "event"])
    rows = np.array([[0, 0], [1, 5], [1, 387]], dtype=np.int32)
    np.testing.assert_array_equal(p.pack(rows), [0, 393, 775])
    assert p.pack(np.array([1, 5])) == 393
    assert type(p.pack(np.array([1, 5]))) is int


def test_numpy_scalars_and_other_int_dtypes() -> None:
    p = Packer([2, 300], names=["voice", "event"])
    assert p.pack((np.int8(1), np.uint16(299))) == 599
    assert type(p.pack((np.int8(1), np.uint16(299)))) is int
    codes = p.pack((np.array([0, 1], dtype=np.uint8), np.array([7, 8], dtype=np.int8)))
    np.testing.assert_array_equal(codes, [7, 308])
    np.testing.assert_array_equal(p.unpack(np.array([7, 308], dtype=np.uint64))[1], [7, 8])
    assert p.unpack(np.int32(599)) == (1, 299)
    assert p.unpack(np.array(599)) == (1, 299)


def test_empty_arrays() -> None:
    p = Packer([2, 3])
    assert p.pack(([], [])).shape == (0,)
    assert p.pack(np.zeros((0, 2), dtype=np.int64)).shape == (0,)
    out = p.unpack(np.zeros((0, 4), dtype=np.int64))
    assert [o.shape for o in out] == [(0, 4), (0, 4)]


# --------------------------------------------------------------------------- large radices


def test_large_valid_radices_round_trip_exactly() -> None:
    p = Packer(INT64_MAX_FACTORS)
    assert p.size == INT64_MAX
    top = tuple(r - 1 for r in INT64_MAX_FACTORS)
    assert p.pack(top) == INT64_MAX - 1
    assert p.unpack(INT64_MAX - 1) == top

    rng = np.random.default_rng(0)
    fields = [rng.integers(0, r, size=1000, dtype=np.int64) for r in INT64_MAX_FACTORS]
    fields = [
        np.concatenate([f, [r - 1, 0]]) for f, r in zip(fields, INT64_MAX_FACTORS, strict=True)
    ]
    codes = p.pack(fields)
    expected = [
        reference_code(INT64_MAX_FACTORS, t)
        for t in zip(*(f.tolist() for f in fields), strict=True)
    ]
    assert codes.tolist() == expected  # exact, no float rounding
    assert codes[-2] == INT64_MAX - 1 and codes[-1] == 0
    for got, want in zip(p.unpack(codes), fields, strict=True):
        np.testing.assert_array_equal(got, want)


def test_two_huge_radices_round_trip_exactly() -> None:
    p = Packer([2**31 - 1, 2**32], names=["hi", "lo"])
    assert p.size == (2**31 - 1) * 2**32
    hi = np.array([0, 1, 2**31 - 2, 123456789], dtype=np.int64)
    lo = np.array([2**32 - 1, 0, 2**32 - 1, 987654321], dtype=np.int64)
    codes = p.pack((hi, lo))
    assert codes.tolist() == [int(h) * 2**32 + int(low) for h, low in zip(hi, lo, strict=True)]
    back_hi, back_lo = p.unpack(codes)
    np.testing.assert_array_equal(back_hi, hi)
    np.testing.assert_array_equal(back_lo, lo)
    big = (2**31 - 2) * 2**32 + 2**32 - 1
    assert p.pack((2**31 - 2, 2**32 - 1)) == big
    assert p.unpack(big) == (2**31 - 2, 2**32 - 1)


@pytest.mark.parametrize(
    "radices",
    [[2**32, 2**32], [2**63], [3, 2**62], INT64_MAX_FACTORS + [2]],
)
def test_overflow_refused(radices: list[int]) -> None:
    product = math.prod(radices)
    with pytest.raises(ValueError, match=r"overflows int64") as info:
        Packer(radices)
    assert str(product) in str(info.value)


# --------------------------------------------------------------------------- errors


def test_field_value_out_of_range_names_field() -> None:
    p = Packer([2, 388], names=["voice", "event"])
    with pytest.raises(ValueError, match=r"'event'.*range\(0, 388\).*388"):
        p.pack((1, 388))
    with pytest.raises(ValueError, match=r"'voice'.*range\(0, 2\).*-1"):
        p.pack((-1, 3))
    with pytest.raises(ValueError, match=r"'event'.*range\(0, 388\).*400"):
        p.pack((np.array([0, 1]), np.array([3, 400])))
    with pytest.raises(ValueError, match=r"'voice'.*range\(0, 2\).*5"):
        p.pack(np.array([[0, 1], [5, 2]]))


def test_default_names_in_errors() -> None:
    p = Packer([4, 4])
    assert p.names == ("field0", "field1")
    with pytest.raises(ValueError, match="field1"):
        p.pack((0, 4))


def test_small_dtype_out_of_range_detected() -> None:
    p = Packer([300, 2], names=["x", "y"])
    with pytest.raises(ValueError, match="'y'"):
        p.pack((np.array([299], dtype=np.uint16), np.array([100], dtype=np.int8)))
    with pytest.raises(ValueError, match="'x'"):
        p.pack((np.array([2**64 - 1], dtype=np.uint64), 0))


@given(radix_lists, st.data())
def test_code_out_of_range(radices: list[int], data: st.DataObject) -> None:
    p = Packer(radices)
    bad = data.draw(st.one_of(st.integers(max_value=-1), st.integers(min_value=p.size)))
    with pytest.raises(ValueError, match=rf"range\(0, {p.size}\)"):
        p.unpack(bad)
    if -(2**63) <= bad <= INT64_MAX:
        with pytest.raises(ValueError, match=rf"range\(0, {p.size}\)"):
            p.unpack(np.array([0, bad], dtype=np.int64))


def test_wrong_number_of_fields() -> None:
    p = Packer([2, 388], names=["voice", "event"])
    with pytest.raises(ValueError, match="expected 2 fields"):
        p.pack((1,))
    with pytest.raises(ValueError, match="expected 2 fields"):
        p.pack((1, 2, 3))
    with pytest.raises(ValueError, match="expected 2 fields"):
        p.pack(np.zeros((4, 3), dtype=np.int64))


@pytest.mark.parametrize(
    "fields",
    [
        (1.0, 2),
        (np.array([0.0, 1.0]), 2),
        (True, 2),
        (np.array([True, False]), 2),
        (np.float32(1), 2),
        np.zeros((3, 2), dtype=np.float64),
        np.zeros((3, 2), dtype=bool),
    ],
)
def test_non_integer_fields_rejected(fields: object) -> None:
    p = Packer([2, 388], names=["voice", "event"])
    with pytest.raises(TypeError):
        p.pack(fields)  # type: ignore[arg-type]


def test_non_sequence_fields_rejected() -> None:
    p = Packer([2, 3])
    with pytest.raises(TypeError):
        p.pack(5)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        p.pack("ab")


@pytest.mark.parametrize("codes", [1.0, np.array([1.0]), True, np.array([True])])
def test_non_integer_codes_rejected(codes: object) -> None:
    p = Packer([2, 3])
    with pytest.raises(TypeError):
        p.unpack(codes)  # type: ignore[arg-type]


@pytest.mark.parametrize("radices", [[2, 3.0], [2.5], [True, 3], ["4"], [None]])
def test_non_int_radix_rejected(radices: list[object]) -> None:
    with pytest.raises(TypeError, match="radix"):
        Packer(radices)  # type: ignore[arg-type]


@pytest.mark.parametrize("radices", [[0], [3, 0, 2], [-1]])
def test_radix_below_one_rejected(radices: list[int]) -> None:
    with pytest.raises(ValueError, match=">= 1"):
        Packer(radices)


def test_empty_radices_rejected() -> None:
    with pytest.raises(ValueError, match="empty"):
        Packer([])


def test_numpy_int_radices_accepted() -> None:
    p = Packer(np.array([3, 4]))
    assert p.radices == (3, 4)
    assert all(type(r) is int for r in p.radices)
    assert p == Packer([3, 4])


def test_names_validation() -> None:
    with pytest.raises(ValueError, match="names"):
        Packer([2, 3], names=["a"])
    with pytest.raises(ValueError, match="unique.*'a'"):
        Packer([2, 3], names=["a", "a"])
    with pytest.raises(TypeError):
        Packer([2, 3], names="ab")
    with pytest.raises(TypeError):
        Packer([2, 3], names=["a", 1])  # type: ignore[list-item]


# --------------------------------------------------------------------------- dunders


def test_repr_eq_hash() -> None:
    p = Packer([2, 388], names=["voice", "event"])
    q = Packer((2, 388), names=("voice", "event"))
    assert p == q
    assert hash(p) == hash(q)
    assert len({p, q}) == 1
    assert p != Packer([2, 388])
    assert p != Packer([388, 2], names=["voice", "event"])
    assert p != (2, 388)
    assert "Packer" in repr(p) and "388" in repr(p) and "voice" in repr(p)
    assert eval(repr(p), {"Packer": Packer}) == p
    assert not hasattr(p, "__len__")


@settings(max_examples=25)
@given(radix_lists)
def test_radix_one_fields_are_always_zero(radices: list[int]) -> None:
    p = Packer([1, *radices, 1])
    assert p.size == math.prod(radices)
    assert p.unpack(p.size - 1)[0] == 0
    assert p.unpack(p.size - 1)[-1] == 0
