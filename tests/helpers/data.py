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


def skip_unless_required(reason: str, variable: str) -> None:
    """Skip with a reason, or fail where CI requires the missing part (``variable``=1)."""
    if os.environ.get(variable) == "1":
        pytest.fail(f"{reason} ({variable}=1)")
    pytest.skip(reason)


def missing(reason: str) -> None:
    """A reference system is missing: skip, or fail under NEURALBAND_REQUIRE_REFERENCE=1."""
    skip_unless_required(reason, "NEURALBAND_REQUIRE_REFERENCE")
