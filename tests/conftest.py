"""Shared pytest fixtures (helpers for audio live in audio_fixtures.py)."""
from __future__ import annotations

import faulthandler
import os
import signal
import sys

import numpy as np
import pytest
from hypothesis import settings as hypothesis_settings

# Property tests draw the same examples on every run (the suite must be deterministic: a
# failure in CI is then a failure here too). HYPOTHESIS_PROFILE=explore draws fresh ones, to
# look for new failures on purpose; keep what it finds as an @example.
hypothesis_settings.register_profile("deterministic", derandomize=True, database=None)
hypothesis_settings.register_profile("explore", derandomize=False)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "deterministic"))


def pytest_configure(config) -> None:
    """A run stopped from outside (CI's time limit sends SIGTERM) prints where every thread
    was first: a hang then shows its place in the log. The default action (exit) follows."""
    faulthandler.register(signal.SIGTERM, file=sys.__stderr__, all_threads=True, chain=True)


#: runs first: on a fresh clone its compile fills the suite's kernel cache (see the test)
FIRST_TEST = "test_empty_kernel_cache_passes_through_aligned_then_suppresses"


def pytest_collection_modifyitems(config, items) -> None:
    first = [item for item in items if item.name == FIRST_TEST]
    items[:] = first + [item for item in items if item.name != FIRST_TEST]


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20201024)


@pytest.fixture(scope="session")
def pulseaudio_session(tmp_path_factory):
    """One real, isolated PulseAudio server for the session (``tests/pulse_server.py``).

    Tests that load modules unload them again; tests that restart the server leave it up.
    """
    from pulse_server import PulseServer

    server = PulseServer(tmp_path_factory.mktemp("pulse"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def pulse_server(pulseaudio_session):
    """The PulseAudio server, for tests that are about PulseAudio alone. A test module that
    runs on both servers overrides this name with :func:`sound_server`."""
    return pulseaudio_session


@pytest.fixture(scope="session")
def pipewire_session(tmp_path_factory):
    """One real, isolated PipeWire session (pipewire + wireplumber + pipewire-pulse on a
    private D-Bus; ``tests/pipewire_server.py``), started on first use. It points this
    process at itself only inside :func:`sound_server`."""
    from pipewire_server import PipeWireServer

    server = PipeWireServer(tmp_path_factory.mktemp("pipewire"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(params=["pulseaudio", "pipewire"])
def sound_server(request):
    """The test runs once on PulseAudio and once on PipeWire (through pipewire-pulse, what
    current desktops run); this process and its children talk to that server meanwhile."""
    server = request.getfixturevalue(f"{request.param}_session")
    with server.active():
        name = server.pactl("info").stdout
        assert ("PipeWire" in name) == (request.param == "pipewire"), name
        yield server
