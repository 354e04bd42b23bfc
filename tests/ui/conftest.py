"""UI tests run headless: Qt's offscreen platform (set before Qt is imported), a config file
in a temporary folder, and fakes for the engine and the virtual microphone where a real one
is not the point of the test."""
from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import threading  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass  # noqa: E402

import pytest  # noqa: E402

from percepnet.app.engine import DEMO_DEVICE, NULL_DEVICE, Diagnostics, Engine  # noqa: E402
from percepnet.app.settings import STAGE_PARAMS, Settings, stage_defaults  # noqa: E402
from percepnet.app.telemetry import Telemetry  # noqa: E402


@pytest.fixture(autouse=True)
def _private_config(tmp_path, monkeypatch):
    """Never read or write the user's real config file."""
    monkeypatch.setenv("PERCEPNET_CONFIG", str(tmp_path / "config" / "settings.json"))


class FakeEngine:
    """The control surface of :class:`Engine` without audio: records what the window does."""

    def __init__(self, input_device: str = "", output_device: str = "") -> None:
        self.telemetry = Telemetry()
        self.input_device = input_device
        self.output_device = output_device
        self.suppression = True
        self.atten_limit_db = 100.0
        self.stages = stage_defaults()
        self.monitor = False
        self.device_calls: list[tuple] = []
        self.errors = 0
        self.events: list[str] = []  # shared with a FakeVirtualMic to check the order

    def stop(self) -> None:
        self.events.append("engine stopped")

    def set_stage(self, name: str, on: bool) -> None:
        if name not in STAGE_PARAMS:  # as the real engine
            raise ValueError(f"unknown stage {name!r}")
        self.stages[name] = bool(on)

    def set_devices(self, input_device=None, output_device=None) -> None:
        self.device_calls.append((input_device, output_device, threading.current_thread().name))
        if input_device is not None:
            self.input_device = input_device
        if output_device is not None:
            self.output_device = output_device

    def diagnostics(self) -> Diagnostics:
        return Diagnostics(state="running", input_device=self.input_device,
                           output_device=self.output_device, model="fake",
                           latency_ms=63.0, cpu_load=0.05, xruns=2, errors=self.errors,
                           fallback=getattr(self, "fallback", ""),
                           resyncs=getattr(self, "resyncs", 0), trims=getattr(self, "trims", 0))


@dataclass(frozen=True)
class FakeMicStatus:
    present: bool
    detail: str = ""
    description: str = "PercepNet Microphone"
    sink_name: str = "percepnet_mic_sink"
    readers: tuple = ()
    moved: tuple = ()


@dataclass(frozen=True)
class FakeSelfTest:
    ok: bool
    detail: str = ""

    def lines(self) -> list[str]:
        return [f"self-test: {'OK' if self.ok else 'FAILED'}", f"detail: {self.detail}"]


class FakeVirtualMic:
    """A back-end with the VirtualMic interface; self_test takes ``test_s`` seconds."""

    sink_name = "percepnet_mic_sink"

    def __init__(self, test_s: float = 0.3, ok: bool = True, events: list | None = None) -> None:
        self.present = False
        self.test_s = test_s
        self.ok = ok
        self.threads: list[str] = []
        self.removed = 0
        self.on_change = None
        self.events = events if events is not None else []

    def status(self) -> FakeMicStatus:
        return FakeMicStatus(self.present, "" if self.present else "not created yet")

    def ensure(self) -> FakeMicStatus:
        self.threads.append(threading.current_thread().name)
        self.present = True
        return self.status()

    def remove(self) -> int:
        self.removed += 1
        self.present = False
        self.events.append("mic removed")
        return 2

    def start_supervision(self, interval_s: float = 0.5, on_change=None):
        self.on_change = on_change
        self.events.append("supervising")

    def stop_supervision(self) -> None:
        self.events.append("supervision stopped")

    def simulate_server_restart(self) -> None:
        """What the back-end's supervisor does after rebuilding the device (its thread)."""
        threading.Thread(target=self.on_change, args=(self.status(),)).start()

    def self_test(self) -> FakeSelfTest:
        self.threads.append(threading.current_thread().name)
        time.sleep(self.test_s)
        return FakeSelfTest(self.ok, "tone read back at -9.1 dBFS")


@pytest.fixture
def fake_engine():
    return FakeEngine()


@pytest.fixture
def settings(tmp_path):
    return Settings({"first_run_done": True}, path=tmp_path / "config" / "settings.json")


@pytest.fixture(scope="session")
def shipped_model():
    """The trained default model (its gains react to speech; a random tiny model's hardly
    move)."""
    from percepnet.app.models import default_model_name, load_model

    return load_model(default_model_name())


@pytest.fixture
def demo_engine(shipped_model):
    """A real, file-driven engine: the demo clip paced in real time, no sound device."""
    engine = Engine(shipped_model, input_device=DEMO_DEVICE, output_device=NULL_DEVICE)
    yield engine
    engine.stop()


@pytest.fixture
def make_window(qtbot, settings):
    """``make_window(engine, **kwargs)``: a shown MainWindow with no virtual microphone and no
    device polling unless asked for; closed (and shut down) at the end of the test."""
    from percepnet.ui.main_window import MainWindow
    from percepnet.ui.virtual_mic_panel import VirtualMicController

    made = []

    def make(engine, **kwargs):
        kwargs.setdefault("settings", settings)
        kwargs.setdefault("persist", False)
        kwargs.setdefault("watch_devices", False)
        kwargs.setdefault("tray", False)
        if "vmic" not in kwargs:
            kwargs["vmic"] = VirtualMicController(None, "not in tests", autoload=False)
        s = kwargs.pop("settings")
        w = MainWindow(engine, s, **kwargs)
        qtbot.addWidget(w)
        w.resize(1200, 780)
        w.show()
        qtbot.waitExposed(w)
        made.append(w)
        return w

    yield make
    for w in made:
        w.shutdown()


@pytest.fixture
def fakes():
    """The fake classes (conftest modules cannot be imported by name from tests here)."""
    from types import SimpleNamespace

    return SimpleNamespace(Engine=FakeEngine, VirtualMic=FakeVirtualMic)
