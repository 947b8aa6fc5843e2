"""Shared fixtures: where the real data lives, and synthetic prepared data."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` (read-only real faces); skips the test where it is absent."""
    if not (SHARED_DATA / "ckplus48").is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture
def fake_prepared(tmp_path):
    """Factory: ``fake_prepared(**kwargs)`` writes synthetic prepared data (tests/fakes.py)."""
    from tests.fakes import write_fake_prepared

    def make(name: str = "prepared", **kwargs):
        return write_fake_prepared(tmp_path / name, **kwargs)

    return make
