"""Shared pytest fixtures (helpers for audio live in audio_fixtures.py)."""
from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20201024)
