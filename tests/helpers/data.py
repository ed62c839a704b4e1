"""The tests' own data files and the reference checks: what a test module may import (fixtures
stay in conftest.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parent.parent / "data"
CHORALES = sorted((DATA / "chorales").glob("*.mid"))
# 36 more chorales for training tests (music21 corpus, exported to MIDI).
TRAIN_CHORALES = sorted((DATA / "chorales_train").glob("*.mid"))


def require_reference() -> bool:
    return os.environ.get("NEURALBAND_REQUIRE_REFERENCE") == "1"


def missing(reason: str) -> None:
    """Skip with a reason, or fail where the reference is required."""
    if require_reference():
        pytest.fail(f"{reason} (NEURALBAND_REQUIRE_REFERENCE=1)")
    pytest.skip(reason)
