"""Shared pytest fixtures (helpers for audio live in audio_fixtures.py)."""
from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20201024)


@pytest.fixture(scope="session")
def pulse_server(tmp_path_factory):
    """One real, isolated PulseAudio server for the session (``tests/pulse_server.py``).

    Tests that load modules unload them again; tests that restart the server leave it up.
    """
    from pulse_server import PulseServer

    server = PulseServer(tmp_path_factory.mktemp("pulse"))
    server.start()
    yield server
    server.stop()
