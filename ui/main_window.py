"""The PercepNet Desktop main window.

Left: the controls (suppression switch, device pickers, attenuation limit, A/B stage
switches, virtual microphone, level meters). Right: what the suppressor is doing, fed from
the engine's telemetry rings (``engine.telemetry``) on a ~33 fps timer — input and output
spectrograms, the pitch track, band gains and comb strengths now and over time. Bottom: the
status bar (state, end-to-end latency, CPU, xruns, model, virtual-microphone state and
self-test), refreshed from ``engine.diagnostics()`` twice a second.

Threading: the GUI never touches the audio thread. It only reads the rings (lock-free,
single reader) and sets plain control attributes (``engine.suppression`` ...). Anything that
can block — device listing, reopening the stream on a device switch, the virtual microphone's
sound-server calls — runs in worker threads and reports back through queued signals.
"""
from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Iterable

import numpy as np
from PyQt6.QtCore import Qt, QTimer, pyqtSignal
from PyQt6.QtGui import QAction, QCloseEvent, QKeySequence, QShortcut
from PyQt6.QtWidgets import (QFrame, QGridLayout, QGroupBox, QHBoxLayout, QLabel, QMainWindow,
                             QMenu, QPushButton, QSizePolicy, QSystemTrayIcon, QVBoxLayout,
                             QWidget)

from percepnet.app.engine import DEMO_DEVICE, NULL_DEVICE
from percepnet.app.settings import PARAMS, STAGE_PARAMS, Settings
from percepnet.app.telemetry import Telemetry

from . import plot_style
from .band_view import BandBarsView, BandHeatmapView
from .controls import DeviceCombo, ParamCheck, ParamSlider, SuppressionButton
from .device_watcher import DeviceWatcher
from .icons import app_icon
from .level_meter import LevelMeter
from .pitch_track_view import PitchTrackView
from .spectrogram_view import SpectrogramView
from .virtual_mic_panel import VirtualMicController

__all__ = ["MainWindow", "SHORTCUTS", "FIRST_RUN_HINT", "VIEW_FPS"]

log = logging.getLogger("percepnet.ui")

#: views refresh rate (the timer runs at 30 ms, ~33 fps)
VIEW_FPS = 33.0
DIAGNOSTICS_INTERVAL_MS = 500
SAVE_DEBOUNCE_MS = 500
VMIC_STATUS_INTERVAL_MS = 5000
FIRST_RUN_HINT = "Meeting apps must be restarted to see “PercepNet Microphone”."

#: (key sequence, what it does) — shown in the window and in the README
SHORTCUTS = (
    ("Ctrl+Space", "suppression on/off"),
    ("Ctrl+1", "comb filter on/off (A/B)"),
    ("Ctrl+2", "postfilter on/off (A/B)"),
    ("Ctrl+3", "gain-decay cap on/off (A/B)"),
    ("Ctrl+Up / Ctrl+Down", "attenuation limit ±5 dB"),
    ("Ctrl+Q", "quit"),
)

_PITCH = Telemetry.field("pitch_hz")
_IN_DB = Telemetry.field("input_db")
_OUT_DB = Telemetry.field("output_db")
_VOICING = Telemetry.field("voicing")
_SILENT = Telemetry.field("silent")
_BYPASS = Telemetry.field("bypass")
#: frames the pitch tracker finds unvoiced below this voicing count as noise for the
#: "noise removed" readout (speech pauses, the noise between words)
NOISE_FRAME_MAX_VOICING = 0.3
#: the readout is the median over the last this many noise frames (about 5 s of pauses)
NOISE_READOUT_FRAMES = 500

_INPUT_LABELS = {"": "System default microphone", DEMO_DEVICE: "Demo clip (noisy speech, looped)"}
_OUTPUT_LABELS = {"": "System default output", NULL_DEVICE: "No playback (no output device)"}


class Banner(QFrame):
    """A one-line notice across the top of the window, with a close button."""

    dismissed = pyqtSignal()

    STYLES = {
        "info": "background:#1f3b57; color:#e6f0ff; border:1px solid #2f5b85;",
        "warning": "background:#4d3b12; color:#fff2d6; border:1px solid #7a5d1c;",
    }

    def __init__(self, text: str, kind: str = "info", parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("banner")
        style = self.STYLES.get(kind, self.STYLES["info"])
        self.setStyleSheet(f"#banner {{ {style} border-radius:6px; }} "
                           "QLabel { border:none; background:transparent; }")
        self.label = QLabel(text)
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        close = QPushButton("✕")
        close.setFlat(True)
        close.setFixedWidth(28)
        close.setToolTip("Dismiss")
        close.setAccessibleName("Dismiss notice")
        close.clicked.connect(self._dismiss)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(10, 4, 4, 4)
        lay.addWidget(self.label, 1)
        lay.addWidget(close)

    @property
    def text(self) -> str:
        return self.label.text()

    def _dismiss(self) -> None:
        self.hide()
        self.dismissed.emit()


def _sentence(text: str) -> str:
    text = text.strip()
    return text[:1].upper() + text[1:] if text else text


class MainWindow(QMainWindow):
    """The window around a running (or about to run) :class:`percepnet.app.engine.Engine`.

    ``settings`` is the shared config (``Settings.load()``); every change is applied to the
    engine at once and saved 0.5 s later (and on close) when ``persist``. ``notes`` are
    shown as banners (e.g. build_engine's "no microphone found: playing the bundled demo
    clip"). ``vmic``: a :class:`VirtualMicController` (default: one for the platform's
    back-end, or "unavailable"). ``device_lister``: what the hot-plug watcher polls
    (default ``list_devices``). ``demo_forced``: the demo clip was asked for (``--demo``),
    so a microphone appearing later does not switch away from it.
    """

    quit_requested = pyqtSignal()
    _engine_op_done = pyqtSignal(str)

    def __init__(self, engine, settings: Settings, *, notes: Iterable[str] = (),
                 persist: bool = True, vmic: VirtualMicController | None = None,
                 device_lister: Callable[[], list] | None = None, watch_devices: bool = True,
                 demo_forced: bool = False, tray: bool = True, fps: float = VIEW_FPS,
                 seconds: float = 3.0, parent=None) -> None:
        super().__init__(parent)
        plot_style.configure()
        self.engine = engine
        self.settings = settings
        self.persist = persist
        self.vmic = vmic if vmic is not None else VirtualMicController()
        self._quitting = False
        self._shut_down = False
        self._tray_hint_shown = False
        self._fallback_demo = (engine.input_device == DEMO_DEVICE
                               and settings.input_device != DEMO_DEVICE and not demo_forced)
        self._devices: list | None = None
        self._vmic_sink = ""  # where the engine's output goes while virtual-mic mode is on
        self._engine_ops = ThreadPoolExecutor(max_workers=1,
                                              thread_name_prefix="percepnet-ui-engine")
        self._last_rows: dict[str, int] = {}
        self.frames_drawn = 0  # view-timer ticks that drew something
        self.ticks = 0
        self.fps = 0.0
        self._fps_t0 = time.monotonic()
        self._fps_n0 = 0
        self.last_diagnostics = None
        self.banners: dict[str, Banner] = {}
        self.self_test_result: tuple[bool, str] | None = None

        # timers (all on the GUI thread)
        self._view_timer = QTimer(self)
        self._view_timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._view_timer.setInterval(max(1, int(1000.0 / fps)))
        self._view_timer.timeout.connect(self.update_views)
        self._diag_timer = QTimer(self)
        self._diag_timer.setInterval(DIAGNOSTICS_INTERVAL_MS)
        self._diag_timer.timeout.connect(self.update_status)
        self._save_timer = QTimer(self)
        self._save_timer.setSingleShot(True)
        self._save_timer.setInterval(SAVE_DEBOUNCE_MS)
        self._save_timer.timeout.connect(self.save_settings)
        self._vmic_timer = QTimer(self)
        self._vmic_timer.setInterval(VMIC_STATUS_INTERVAL_MS)
        self._vmic_timer.timeout.connect(self.vmic.refresh_status)

        self.setWindowTitle("PercepNet Desktop")
        self.setWindowIcon(app_icon())
        self.resize(1280, 820)
        self._build(seconds)
        self._build_status_bar()
        self._build_shortcuts()
        self.tray = self._build_tray() if tray else None

        for i, note in enumerate(notes):
            kind = "info" if ("demo" in note.lower() or "playback" in note.lower()) else "warning"
            self.add_banner(f"note{i}", _sentence(note), kind)
        for i, w in enumerate(getattr(settings, "warnings", []) or []):
            self.add_banner(f"settings{i}", _sentence(w), "warning")
        # the hint is about the virtual microphone: only where one can be made
        if not settings.first_run_done and self.vmic.available:
            self.add_banner("first_run", FIRST_RUN_HINT, "info")
            settings.first_run_done = True
            self._schedule_save()


        self._engine_op_done.connect(self._on_engine_op_done)
        self.watcher = DeviceWatcher(device_lister, parent=self) if watch_devices else None
        if self.watcher is not None:
            self.watcher.devices_changed.connect(self.on_devices_listed)
            self.watcher.start()
        self._view_timer.start()
        self._diag_timer.start()
        if self.vmic.available:
            self._vmic_timer.start()
            self.vmic.refresh_status()
            if settings.virtual_mic:
                self.vmic.set_enabled(True)
        self.update_status()

    # ================================================================== construction
    def _build(self, seconds: float) -> None:
        central = QWidget()
        root = QVBoxLayout(central)
        root.setContentsMargins(8, 8, 8, 4)
        root.setSpacing(6)
        self.banner_box = QVBoxLayout()
        self.banner_box.setSpacing(4)
        root.addLayout(self.banner_box)
        body = QHBoxLayout()
        body.setSpacing(8)
        root.addLayout(body, 1)
        body.addWidget(self._build_controls())
        body.addWidget(self._build_views(seconds), 1)
        self.setCentralWidget(central)

    def _build_controls(self) -> QWidget:
        s = self.settings
        panel = QWidget()
        panel.setFixedWidth(300)
        lay = QVBoxLayout(panel)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(8)

        self.suppress_button = SuppressionButton(PARAMS["suppression"], self.engine.suppression,
                                                 shortcut_text="Ctrl+Space")
        self.suppress_button.toggled.connect(self._on_suppression)
        lay.addWidget(self.suppress_button)

        self.input_combo = DeviceCombo()
        self.input_combo.setToolTip(PARAMS["input_device"].help)
        self.input_combo.device_selected.connect(self._on_input_selected)
        self.output_combo = DeviceCombo()
        self.output_combo.setToolTip(PARAMS["output_device"].help)
        self.output_combo.device_selected.connect(self._on_output_selected)
        for param, combo in (("input_device", self.input_combo),
                             ("output_device", self.output_combo)):
            label = QLabel(PARAMS[param].label)
            label.setBuddy(combo)
            lay.addWidget(label)
            lay.addWidget(combo)
        self._refresh_device_combos()

        self.atten_slider = ParamSlider(PARAMS["atten_limit_db"], self.engine.atten_limit_db)
        self.atten_slider.value_changed.connect(self._on_atten)
        lay.addWidget(self.atten_slider)

        ab = QGroupBox("A/B listening")
        ab_lay = QVBoxLayout(ab)
        #: one check box per DSP stage switch (settings.STAGE_PARAMS), showing the engine's state
        self.stage_checks: dict[str, ParamCheck] = {}
        for name in STAGE_PARAMS:
            check = ParamCheck(PARAMS[name], self.engine.core.stage(name)
                               if hasattr(self.engine, "core") else getattr(s, name))
            check.toggled.connect(lambda on, name=name: self._on_stage(name, on))
            ab_lay.addWidget(check)
            self.stage_checks[name] = check
        self.comb_check = self.stage_checks["use_comb"]
        self.postfilter_check = self.stage_checks["use_postfilter"]
        self.decay_cap_check = self.stage_checks["use_decay_cap"]
        lay.addWidget(ab)

        vm = QGroupBox("Virtual microphone")
        vm_lay = QVBoxLayout(vm)
        self.vmic_check = ParamCheck(PARAMS["virtual_mic"], s.virtual_mic)
        self.vmic_check.toggled.connect(self._on_virtual_mic)
        self.monitor_check = ParamCheck(PARAMS["monitor"], s.monitor)
        self.monitor_check.toggled.connect(self._on_monitor)
        if not hasattr(self.engine, "monitor"):
            self.monitor_check.setToolTip(self.monitor_check.toolTip()
                                          + " (Not yet supported by the audio engine: the "
                                          "setting is stored.)")
        vm_lay.addWidget(self.vmic_check)
        vm_lay.addWidget(self.monitor_check)
        if not self.vmic.available:
            self.vmic_check.setEnabled(False)
            self.vmic_check.setToolTip(f"Virtual microphone unavailable: {self.vmic.reason}")
        self.monitor_check.setEnabled(self.vmic.available and s.virtual_mic)
        lay.addWidget(vm)

        levels = QGroupBox("Levels")
        lv = QVBoxLayout(levels)
        self.input_meter = LevelMeter("in")
        self.output_meter = LevelMeter("out")
        lv.addWidget(self.input_meter)
        lv.addWidget(self.output_meter)
        self.noise_removed_label = QLabel("noise removed: –")
        self.noise_removed_label.setToolTip(
            "How much quieter the output is than the input in the pauses between words "
            "(unvoiced, non-silent frames), median over the last few seconds of them.")
        lv.addWidget(self.noise_removed_label)
        self._noise_db = np.full(NOISE_READOUT_FRAMES, np.nan)
        self._noise_pos = 0
        lay.addWidget(levels)
        lay.addStretch(1)

        keys = QLabel("<br>".join(f"<b>{k}</b> {what}" for k, what in SHORTCUTS))
        keys.setStyleSheet("color:#8a94a6; font-size:11px;")
        lay.addWidget(keys)
        return panel

    def _build_views(self, seconds: float) -> QWidget:
        w = QWidget()
        grid = QGridLayout(w)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setSpacing(6)
        self.spec_in = SpectrogramView("Input (microphone)", seconds=seconds)
        self.spec_out = SpectrogramView("Output (cleaned)", seconds=seconds)
        self.pitch_view = PitchTrackView(seconds=seconds)
        self.bars_view = BandBarsView()
        self.gain_map = BandHeatmapView("Band gains over time", seconds=seconds, cmap="viridis")
        self.strength_map = BandHeatmapView("Comb strengths over time", seconds=seconds,
                                            cmap="plasma")
        grid.addWidget(self.spec_in, 0, 0)
        grid.addWidget(self.spec_out, 0, 1)
        grid.addWidget(self.pitch_view, 1, 0)
        grid.addWidget(self.bars_view, 1, 1)
        grid.addWidget(self.gain_map, 2, 0)
        grid.addWidget(self.strength_map, 2, 1)
        grid.setRowStretch(0, 5)
        grid.setRowStretch(1, 3)
        grid.setRowStretch(2, 3)
        for v in (self.spec_in, self.spec_out, self.pitch_view, self.bars_view, self.gain_map,
                  self.strength_map):
            v.setMinimumSize(200, 110)
            v.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        return w

    def _build_status_bar(self) -> None:
        sb = self.statusBar()
        self.state_label = QLabel()
        self.latency_label = QLabel()
        self.cpu_label = QLabel()
        self.xrun_label = QLabel()
        self.model_label = QLabel()
        self.fps_label = QLabel()
        self.vmic_label = QLabel(self.vmic.last_text)
        self.self_test_button = QPushButton("Self-test")
        self.self_test_button.setToolTip("Play a short 1 kHz tone into “PercepNet Microphone” "
                                          "and read it back (anyone recording from it hears "
                                          "the beep)")
        self.self_test_button.setEnabled(self.vmic.available)
        self.self_test_button.clicked.connect(self.run_self_test)
        self.latency_label.setToolTip("End to end: device input + 40 ms algorithmic delay + "
                                      "device output")
        for w in (self.state_label, self.latency_label, self.cpu_label, self.xrun_label,
                  self.model_label, self.fps_label, self.vmic_label, self.self_test_button):
            sb.addPermanentWidget(w)
        self.vmic.status_changed.connect(self._on_vmic_status)
        self.vmic.self_test_done.connect(self._on_self_test_done)
        self.vmic.enabled_changed.connect(self._on_vmic_enabled)
        self.vmic.busy_changed.connect(self._on_vmic_busy)
        self.vmic.rebuilt.connect(self._on_vmic_rebuilt)

    def _build_shortcuts(self) -> None:
        def add(keys: str, fn) -> None:
            sc = QShortcut(QKeySequence(keys), self)
            sc.setContext(Qt.ShortcutContext.ApplicationShortcut)
            sc.activated.connect(fn)

        add("Ctrl+Space", self.suppress_button.toggle)
        add("Ctrl+1", self.comb_check.toggle)
        add("Ctrl+2", self.postfilter_check.toggle)
        add("Ctrl+3", self.decay_cap_check.toggle)
        add("Ctrl+Up", lambda: self._nudge_atten(+5.0))
        add("Ctrl+Down", lambda: self._nudge_atten(-5.0))
        add("Ctrl+Q", self.quit)

    def _build_tray(self) -> QSystemTrayIcon | None:
        if not QSystemTrayIcon.isSystemTrayAvailable():
            return None
        tray = QSystemTrayIcon(app_icon(), self)
        tray.setToolTip("PercepNet Desktop")
        menu = QMenu(self)
        self.tray_suppress_action = QAction("Suppression", menu)
        self.tray_suppress_action.setCheckable(True)
        self.tray_suppress_action.setChecked(self.suppress_button.isChecked())
        self.tray_suppress_action.toggled.connect(self.suppress_button.setChecked)
        show = QAction("Show / hide window", menu)
        show.triggered.connect(self.toggle_visible)
        quit_ = QAction("Quit", menu)
        quit_.triggered.connect(self.quit)
        menu.addAction(self.tray_suppress_action)
        menu.addAction(show)
        menu.addSeparator()
        menu.addAction(quit_)
        tray.setContextMenu(menu)
        tray.activated.connect(self._on_tray_activated)
        tray.show()
        return tray

    # ================================================================== banners
    def add_banner(self, key: str, text: str, kind: str = "info") -> Banner:
        old = self.banners.pop(key, None)
        if old is not None:
            old.deleteLater()
        b = Banner(text, kind)
        self.banners[key] = b
        self.banner_box.addWidget(b)
        b.show()
        return b

    def remove_banner(self, key: str) -> None:
        b = self.banners.pop(key, None)
        if b is not None:
            b.hide()
            b.deleteLater()

    def visible_banner_texts(self) -> list[str]:
        return [b.text for b in self.banners.values() if not b.isHidden()]

    # ================================================================== views
    def _read(self, name: str):
        ring = getattr(self.engine.telemetry, name)
        last = self._last_rows.get(name, 0)
        if int(ring.written[0]) < last:  # the engine's telemetry was reset
            last = 0
        rows, self._last_rows[name] = ring.read_new(last)
        return rows

    def update_views(self) -> None:
        """One view-timer tick: copy what the engine wrote since the last tick, redraw."""
        self.ticks += 1
        self.spec_in.push_rows(self._read("spec_in"))
        self.spec_out.push_rows(self._read("spec_out"))
        gains = self._read("gains")
        strengths = self._read("strengths")
        self.gain_map.push_rows(gains)
        self.strength_map.push_rows(strengths)
        self._show_applied()
        if gains.shape[0] or strengths.shape[0]:
            g = gains[-1] if gains.shape[0] else self.bars_view.gains
            s = strengths[-1] if strengths.shape[0] else self.bars_view.strengths
            self.bars_view.set_frame(g, s)
        sc = self._read("scalars")
        if sc.shape[0]:
            self.pitch_view.push_pitch(sc[:, _PITCH])
            self.input_meter.set_level(float(np.max(sc[:, _IN_DB])))
            self.output_meter.set_level(float(np.max(sc[:, _OUT_DB])))
            self._update_noise_removed(sc)
        drew = False
        if self.isVisible() and not self.isMinimized():
            for v in (self.spec_in, self.spec_out, self.gain_map, self.strength_map,
                      self.pitch_view):
                drew = v.refresh() or drew
        if drew:
            self.frames_drawn += 1
        now = time.monotonic()
        if now - self._fps_t0 >= 1.0:
            self.fps = (self.frames_drawn - self._fps_n0) / (now - self._fps_t0)
            self._fps_t0, self._fps_n0 = now, self.frames_drawn

    def _update_noise_removed(self, sc: np.ndarray) -> None:
        """The plain "noise removed" figure, in dB, from the frames that carry only noise."""
        noise = ((sc[:, _VOICING] < NOISE_FRAME_MAX_VOICING) & (sc[:, _SILENT] < 0.5)
                 & (sc[:, _BYPASS] < 0.5))
        d = sc[noise, _IN_DB] - sc[noise, _OUT_DB]
        self._noise_db[(self._noise_pos + np.arange(d.size)) % NOISE_READOUT_FRAMES] = d
        self._noise_pos += d.size
        if not self.settings.suppression:
            self.noise_removed_label.setText("noise removed: 0 dB (suppression off)")
            self._noise_db[:] = np.nan
            self._noise_pos = 0
        elif self._noise_pos >= 20:
            self.noise_removed_label.setText(
                f"noise removed: {float(np.nanmedian(self._noise_db)):.0f} dB")
        else:
            self.noise_removed_label.setText("noise removed: – (waiting for a pause)")

    def _show_applied(self) -> None:
        """Gains are applied only with suppression on, comb strengths only with the comb
        filter on as well: what is not applied is drawn as such."""
        gains_on = bool(self.settings.suppression)
        comb_on = gains_on and bool(self.settings.use_comb)
        self.bars_view.set_applied(gains_on, comb_on)
        self.gain_map.set_not_applied("" if gains_on else "suppression off")
        self.strength_map.set_not_applied(
            "" if comb_on else ("suppression off" if not gains_on else "comb filter off"))

    # ================================================================== status
    def update_status(self) -> None:
        try:
            d = self.engine.diagnostics()
        except Exception as exc:  # noqa: BLE001 - the window must survive a broken engine
            self.state_label.setText(f"engine error: {exc}")
            return
        self.last_diagnostics = d
        states = {"running": "● running", "reconnecting": "◌ reconnecting…",
                  "stopped": "○ stopped", "error": "✕ error"}
        text = states.get(d.state, d.state)
        style = ""
        if d.state != "running":
            style = "color:#e0a84a;"
        elif not d.suppressor_ready:
            text = "◌ preparing the suppressor (first start only) — passing your voice through"
            style = "color:#e0a84a;"
        if d.fallback:
            text += f" — chosen {d.fallback} device missing, using the default"
            style = "color:#e0a84a;"
        if d.insufficient_resources:
            text += " — CPU overloaded"
            style = "color:#e5534b;"
        self.state_label.setText(text)
        self.state_label.setStyleSheet(style)
        tip = [f"input: {d.input_device or 'default'}", f"output: {d.output_device or 'default'}",
               f"uptime {d.uptime_s:.0f} s, {d.frames} frames, {d.restarts} restarts"]
        if d.errors or d.last_error:
            tip.append(f"{d.errors} processing errors; last: {d.last_error or '-'}")
        tip.extend(d.warnings)
        self.state_label.setToolTip("\n".join(tip))
        self.latency_label.setText(f"latency {d.latency_ms:.0f} ms")
        dl = d.device_latency_ms
        self.latency_label.setToolTip(f"End to end {d.latency_ms:.1f} ms = device in "
                                      f"{dl[0]:.1f} ms + 40 ms algorithmic + device out "
                                      f"{dl[1]:.1f} ms (measured from stream timestamps when "
                                      "available)")
        self.cpu_label.setText(f"CPU {100.0 * d.cpu_share:.1f} %")
        self.cpu_label.setToolTip(f"Audio processing, share of one core: PortAudio load "
                                  f"{100 * d.cpu_load:.1f} %, processing/real time "
                                  f"{100 * d.model_rtf:.1f} %; callback p50/p99 "
                                  f"{d.callback_p50_ms:.2f}/{d.callback_p99_ms:.2f} ms")
        self.xrun_label.setText(f"xruns {d.xruns}")
        self.xrun_label.setToolTip(f"Dropouts after the first second: {d.xruns} "
                                   f"(input overflows {d.input_overflows}, output underflows "
                                   f"{d.output_underflows}); at start-up: {d.xruns_startup}; "
                                   f"late callbacks: {d.late_callbacks}")
        self.model_label.setText(f"model {d.model}")
        self.fps_label.setText(f"{self.fps:.0f} fps")
        self.fps_label.setToolTip("View refresh rate")
        if self.tray is not None:
            self.tray.setToolTip(f"PercepNet Desktop — suppression "
                                 f"{'on' if d.suppression else 'off'}, {text}")

    # ================================================================== controls
    def _on_suppression(self, on: bool) -> None:
        self.engine.suppression = on
        self.settings.suppression = on
        if self.tray is not None:
            self.tray_suppress_action.blockSignals(True)
            self.tray_suppress_action.setChecked(on)
            self.tray_suppress_action.blockSignals(False)
        self._schedule_save()

    def _on_atten(self, value: float) -> None:
        self.engine.atten_limit_db = value
        self.settings.atten_limit_db = value
        self._schedule_save()

    def _nudge_atten(self, delta: float) -> None:
        lo, hi = PARAMS["atten_limit_db"].range
        v = min(max(self.atten_slider.value() + delta, lo), hi)
        self.atten_slider.slider.setValue(int(round(v / self.atten_slider.step)))

    def _on_stage(self, name: str, on: bool) -> None:
        self.engine.set_stage(name, on)
        self.settings.set(name, on)
        self._schedule_save()

    def _on_monitor(self, on: bool) -> None:
        self.settings.monitor = on
        if hasattr(self.engine, "monitor_device"):
            self.engine.monitor_device = self._chosen_output()
        if hasattr(self.engine, "monitor"):
            self.engine.monitor = on
        self._schedule_save()

    def _on_virtual_mic(self, on: bool) -> None:
        self.settings.virtual_mic = on
        self._schedule_save()
        self.monitor_check.setEnabled(on and self.vmic.available)
        self.vmic.set_enabled(on)

    def _on_vmic_enabled(self, on: bool, sink: str, text: str, requested: bool) -> None:
        self.vmic_label.setText(text)
        if on and sink:
            self._vmic_sink = sink
            self._switch_devices(output_device=sink)
            self.output_combo.setToolTip("In virtual-microphone mode the cleaned voice goes to "
                                         "“PercepNet Microphone”; this device is for "
                                         "“Listen to myself”.")
            return
        was_on = bool(self._vmic_sink)
        self._vmic_sink = ""
        self.output_combo.setToolTip(PARAMS["output_device"].help)
        if was_on:
            self._switch_devices(output_device=self._chosen_output())
        if requested and not on:
            # asked for but could not be created: show it as off (the setting is kept, so
            # the next start tries again)
            self.vmic_check.blockSignals(True)
            self.vmic_check.setChecked(False)
            self.vmic_check.blockSignals(False)
            self.monitor_check.setEnabled(False)

    def _on_vmic_rebuilt(self, sink: str) -> None:
        """The virtual microphone was rebuilt (sound-server restart): reopen our output."""
        if self._vmic_sink:
            self._vmic_sink = sink
            self._switch_devices(output_device=sink)

    def _on_vmic_status(self, text: str, present: bool) -> None:
        self.vmic_label.setText(text)
        self.vmic_label.setStyleSheet("" if present else "color:#8a94a6;")
        no_server = not present and "server reachable" in text
        if no_server:  # nothing to restart meeting apps for, nothing the controls can do
            self.remove_banner("first_run")
            reason = "No sound server (PulseAudio/PipeWire) is reachable."
            for w in (self.vmic_check, self.monitor_check, self.self_test_button):
                w.setEnabled(False)
                w.setToolTip(reason)
        elif self.vmic.available and not self.vmic_check.isEnabled():
            self.vmic_check.setEnabled(True)
            self.vmic_check.setToolTip(PARAMS["virtual_mic"].help)
            self.monitor_check.setEnabled(self.settings.virtual_mic)
            self.monitor_check.setToolTip(PARAMS["monitor"].help)
            self.self_test_button.setEnabled(True)
            self.self_test_button.setToolTip("")

    def _on_vmic_busy(self, busy: bool) -> None:
        self.self_test_button.setEnabled(self.vmic.available and not busy)
        if busy:
            self.self_test_button.setText("Testing…" if self._self_test_pending else "Working…")
        else:
            self.self_test_button.setText("Self-test")

    _self_test_pending = False

    def run_self_test(self) -> bool:
        """Start the virtual microphone's self-test in the background."""
        self._self_test_pending = True
        started = self.vmic.run_self_test()
        if not started:
            self._self_test_pending = False
            self.statusBar().showMessage("Virtual microphone unavailable, or a self-test is "
                                         "already running", 4000)
        return started

    def _on_self_test_done(self, ok: bool, text: str) -> None:
        self._self_test_pending = False
        first = text.splitlines()[0] if text else ("self-test: OK" if ok else "self-test: FAILED")
        self.statusBar().showMessage(first, 8000)
        self.self_test_button.setToolTip(text)
        self.self_test_result = (ok, text)

    # ------------------------------------------------------------------ devices
    def _chosen_output(self) -> str:
        """The output device the user picked (used when virtual-mic mode ends)."""
        if self.engine.input_device == DEMO_DEVICE and self._devices is not None \
                and not self._has_outputs():
            return NULL_DEVICE  # the demo clip with nowhere to play it
        return self.settings.output_device

    def _has_outputs(self) -> bool:
        return any(getattr(d, "kind", "") == "output" for d in (self._devices or []))

    def on_devices_listed(self, devices: list) -> None:
        """New device list from the hot-plug watcher (GUI thread)."""
        self._devices = list(devices)
        self._refresh_device_combos()
        if self._fallback_demo:
            from percepnet.app.devices import has_microphone

            if has_microphone(self._devices):
                self._fallback_demo = False
                out = None
                if self.engine.output_device == NULL_DEVICE:
                    out = self.settings.output_device
                self._switch_devices(input_device=self.settings.input_device, output_device=out)
                for key, b in list(self.banners.items()):
                    if "demo clip" in b.text.lower():
                        self.remove_banner(key)
                self.add_banner("mic_found", "A microphone is now available: switched from the "
                                "demo clip to it.", "info")

    def _refresh_device_combos(self) -> None:
        known = self._devices is not None
        devs = self._devices or []
        ins = [("", _INPUT_LABELS[""])]
        ins += [(d.id, d.label) for d in devs if d.kind == "input"]
        ins.append((DEMO_DEVICE, _INPUT_LABELS[DEMO_DEVICE]))
        outs = [("", _OUTPUT_LABELS[""])]
        outs += [(d.id, d.label) for d in devs if d.kind == "output"]
        cur_in = self.engine.input_device
        cur_out = self.settings.output_device if self._vmic_sink else self.engine.output_device
        if cur_out == NULL_DEVICE:
            outs.append((NULL_DEVICE, _OUTPUT_LABELS[NULL_DEVICE]))
        if not known:  # before the first listing: show the current choice by name
            for entries, cur in ((ins, cur_in), (outs, cur_out)):
                if cur not in [e[0] for e in entries]:
                    entries.append((cur, cur))
        self.input_combo.set_entries(ins, selected=cur_in)
        self.output_combo.set_entries(outs, selected=cur_out)

    def _on_input_selected(self, dev_id: str) -> None:
        self._fallback_demo = False
        self.settings.input_device = dev_id
        self._schedule_save()
        out = None
        if dev_id != DEMO_DEVICE and self.engine.output_device == NULL_DEVICE:
            out = self.settings.output_device  # a microphone needs a real output stream
        self._switch_devices(input_device=dev_id, output_device=out)

    def _on_output_selected(self, dev_id: str) -> None:
        if dev_id != NULL_DEVICE:
            self.settings.output_device = dev_id
            self._schedule_save()
        if not self._vmic_sink:
            self._switch_devices(output_device=dev_id)

    def _switch_devices(self, input_device: str | None = None,
                        output_device: str | None = None) -> None:
        """Reopen the engine's stream on a worker thread (it can take a while)."""
        if input_device is None and output_device is None:
            return

        def op() -> None:
            try:
                self.engine.set_devices(input_device=input_device, output_device=output_device)
                self._engine_op_done.emit("")
            except Exception as exc:  # noqa: BLE001
                self._engine_op_done.emit(f"could not switch devices: {exc}")

        self.statusBar().showMessage("Switching audio devices…", 2000)
        try:
            self._engine_ops.submit(op)
        except RuntimeError:  # shut down
            pass

    def _on_engine_op_done(self, error: str) -> None:
        if error:
            self.statusBar().showMessage(error, 8000)
        self._refresh_device_combos()
        self.update_status()

    def wait_engine_ops(self, timeout_s: float = 5.0) -> None:
        """Block until queued device switches are done (tests, shutdown)."""
        fut = self._engine_ops.submit(lambda: None)
        fut.result(timeout=timeout_s)

    # ================================================================== settings
    def _schedule_save(self) -> None:
        if self.persist and not self._shut_down:
            self._save_timer.start()

    def save_settings(self) -> bool:
        if not self.persist:
            return False
        try:
            self.settings.save()
            return True
        except OSError as exc:
            log.warning("cannot save settings: %s", exc)
            self.statusBar().showMessage(f"Cannot save settings: {exc}", 8000)
            return False

    # ================================================================== window life
    def start_minimized(self) -> None:
        """Start hidden in the tray when there is one, else minimised on the task bar."""
        if self.tray is not None:
            self.hide()
        else:
            self.showMinimized()

    def toggle_visible(self) -> None:
        if self.isVisible() and not self.isMinimized():
            self.hide()
        else:
            self.showNormal()
            self.raise_()
            self.activateWindow()

    def _on_tray_activated(self, reason) -> None:
        if reason == QSystemTrayIcon.ActivationReason.Trigger:
            self.toggle_visible()

    def quit(self) -> None:
        self._quitting = True
        self.close()
        self.quit_requested.emit()

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt override
        if self.tray is not None and self.tray.isVisible() and not self._quitting:
            # closing hides to the tray; the suppressor keeps running (Quit in the tray menu)
            self.hide()
            if not self._tray_hint_shown:
                self._tray_hint_shown = True
                self.tray.showMessage("PercepNet Desktop", "Still running in the tray. "
                                      "Use Quit in its menu to stop.",
                                      QSystemTrayIcon.MessageIcon.Information, 3000)
            event.ignore()
            return
        self.shutdown()
        event.accept()
        if not self._quitting:
            self.quit_requested.emit()

    def shutdown(self) -> None:
        """Stop timers and workers and save the settings (idempotent). The engine is stopped
        by its owner, except when the window created the virtual microphone: then the engine
        stops first (else the sound server moves our stream to the speakers) and the
        microphone is removed, as the headless service does."""
        if self._shut_down:
            return
        self._shut_down = True
        for t in (self._view_timer, self._diag_timer, self._vmic_timer, self._save_timer):
            t.stop()
        if self.watcher is not None:
            self.watcher.stop()
        self._engine_ops.shutdown(wait=True, cancel_futures=True)
        if self.vmic.created and callable(getattr(self.engine, "stop", None)):
            self.engine.stop()
        self.vmic.remove_if_created()
        self.save_settings()
        if self.tray is not None:
            self.tray.hide()

    def extra_state(self) -> dict[str, Any]:
        """A few facts for tests and the self-test report."""
        return {"spec_rows": self.spec_in.rows_received, "frames_drawn": self.frames_drawn,
                "ticks": self.ticks, "fps": self.fps}
