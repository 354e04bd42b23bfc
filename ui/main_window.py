"""The PercepNet Desktop main window.

Left: the controls (suppression switch, device pickers, attenuation limit, A/B stage
switches, virtual microphone, level meters). Right: what the suppressor is doing, fed from
the engine's telemetry rings (``engine.telemetry``) on a ~33 fps timer — input and output
spectrograms, the pitch track, band gains and comb strengths now and over time. Bottom: the
status bar (state, end-to-end latency, CPU, xruns, model, virtual-microphone state and
self-test), refreshed from ``engine.diagnostics()`` twice a second.

The window builds the layout and wires its parts: ``banners`` (the notices on top),
``status_bar`` (the diagnostics readouts), ``tray`` (the tray icon), ``window_settings``
(saving the settings), ``device_controller`` (device pickers, hot-plug, selection → engine)
and ``virtual_mic_panel`` (the virtual microphone).

Threading: the GUI never touches the audio thread. It only reads the rings (lock-free,
single reader) and sets plain control attributes (``engine.suppression`` ...). Anything that
can block — device listing, reopening the stream on a device switch, the virtual microphone's
sound-server calls — runs in worker threads and reports back through queued signals.
"""
from __future__ import annotations

import time
from typing import Any, Callable, Iterable

import numpy as np
from PyQt6.QtCore import Qt, QTimer, pyqtSignal
from PyQt6.QtGui import QCloseEvent, QKeySequence, QShortcut
from PyQt6.QtWidgets import (QGridLayout, QGroupBox, QHBoxLayout, QLabel, QMainWindow,
                             QSizePolicy, QVBoxLayout, QWidget)

from percepnet.app.engine import DEMO_DEVICE
from percepnet.app.settings import PARAMS, STAGE_PARAMS, Settings
from percepnet.app.telemetry import Telemetry

from . import plot_style
from .band_view import BandBarsView, BandHeatmapView
from .banners import Banner, BannerStack, sentence
from .controls import ParamCheck, ParamSlider, SuppressionButton
from .device_controller import DeviceController
from .icons import app_icon
from .level_meter import LevelMeter, NoiseRemovedLabel
from .pitch_track_view import PitchTrackView
from .spectrogram_view import SpectrogramView
from .status_bar import DiagnosticsBar
from .tray import TrayIcon
from .virtual_mic_panel import VirtualMicController, VirtualMicPanel
from .window_settings import SettingsSaver

__all__ = ["MainWindow", "SHORTCUTS", "FIRST_RUN_HINT", "VIEW_FPS"]

#: views refresh rate (the timer runs at 30 ms, ~33 fps)
VIEW_FPS = 33.0
DIAGNOSTICS_INTERVAL_MS = 500
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
        self.saver = SettingsSaver(settings, persist, parent=self)
        self.saver.save_failed.connect(lambda msg: self.statusBar().showMessage(msg, 8000))
        self.device_controller = DeviceController(
            engine, settings, device_lister=device_lister, watch_devices=watch_devices,
            fallback_demo=(engine.input_device == DEMO_DEVICE
                           and settings.input_device != DEMO_DEVICE and not demo_forced),
            parent=self)
        self.watcher = self.device_controller.watcher
        self._last_rows: dict[str, int] = {}
        self.frames_drawn = 0  # view-timer ticks that drew something
        self.ticks = 0
        self.fps = 0.0
        self._fps_t0 = time.monotonic()
        self._fps_n0 = 0
        self.last_diagnostics = None

        # timers (all on the GUI thread)
        self._view_timer = QTimer(self)
        self._view_timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._view_timer.setInterval(max(1, int(1000.0 / fps)))
        self._view_timer.timeout.connect(self.update_views)
        self._diag_timer = QTimer(self)
        self._diag_timer.setInterval(DIAGNOSTICS_INTERVAL_MS)
        self._diag_timer.timeout.connect(self.update_status)

        self.setWindowTitle("PercepNet Desktop")
        self.setWindowIcon(app_icon())
        self.resize(1280, 820)
        self.status_bar = DiagnosticsBar()
        self.setStatusBar(self.status_bar)
        self._build(seconds)
        self._build_status_bar()
        self._build_shortcuts()
        self.tray = TrayIcon.create(self, self.suppress_button.isChecked()) if tray else None
        if self.tray is not None:
            self.tray.suppression_toggled.connect(self.suppress_button.setChecked)
            self.tray.toggle_window.connect(self.toggle_visible)
            self.tray.quit_clicked.connect(self.quit)

        for i, note in enumerate(notes):
            kind = "info" if ("demo" in note.lower() or "playback" in note.lower()) else "warning"
            self.add_banner(f"note{i}", sentence(note), kind)
        for i, w in enumerate(getattr(settings, "warnings", []) or []):
            self.add_banner(f"settings{i}", sentence(w), "warning")
        # the hint is about the virtual microphone: only where one can be made
        if not settings.first_run_done and self.vmic.available:
            self.add_banner("first_run", FIRST_RUN_HINT, "info")
            settings.first_run_done = True
            self._schedule_save()

        dc = self.device_controller
        dc.settings_changed.connect(self._schedule_save)
        dc.message.connect(self.statusBar().showMessage)
        dc.devices_switched.connect(self.update_status)
        dc.microphone_found.connect(self._on_microphone_found)
        self.vmic.enabled_changed.connect(dc.on_vmic_enabled)
        self.vmic.rebuilt.connect(dc.on_vmic_rebuilt)
        dc.start()
        self._view_timer.start()
        self._diag_timer.start()
        self.vmic_panel.start()
        self.update_status()

    # ================================================================== construction
    def _build(self, seconds: float) -> None:
        central = QWidget()
        root = QVBoxLayout(central)
        root.setContentsMargins(8, 8, 8, 4)
        root.setSpacing(6)
        self.banner_box = BannerStack()
        self.banners = self.banner_box.banners
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

        self.input_combo = self.device_controller.input_combo
        self.output_combo = self.device_controller.output_combo
        for param, combo in (("input_device", self.input_combo),
                             ("output_device", self.output_combo)):
            label = QLabel(PARAMS[param].label)
            label.setBuddy(combo)
            lay.addWidget(label)
            lay.addWidget(combo)

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

        self.vmic_panel = VirtualMicPanel(self.vmic, self.engine, s,
                                          self.device_controller.chosen_output)
        self.vmic_panel.settings_changed.connect(self._schedule_save)
        self.vmic_panel.message.connect(self.statusBar().showMessage)
        self.vmic_panel.server_unreachable.connect(lambda: self.remove_banner("first_run"))
        self.vmic_check = self.vmic_panel.vmic_check
        self.monitor_check = self.vmic_panel.monitor_check
        lay.addWidget(self.vmic_panel)

        levels = QGroupBox("Levels")
        lv = QVBoxLayout(levels)
        self.input_meter = LevelMeter("in")
        self.output_meter = LevelMeter("out")
        lv.addWidget(self.input_meter)
        lv.addWidget(self.output_meter)
        self.noise_removed_label = NoiseRemovedLabel()
        lv.addWidget(self.noise_removed_label)
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
        sb = self.status_bar
        self.state_label, self.latency_label, self.cpu_label = (sb.state_label,
                                                                sb.latency_label, sb.cpu_label)
        self.xrun_label, self.model_label, self.fps_label = (sb.xrun_label, sb.model_label,
                                                             sb.fps_label)
        self.vmic_label = self.vmic_panel.status_label
        self.self_test_button = self.vmic_panel.self_test_button
        for w in (self.vmic_label, self.self_test_button):
            sb.addPermanentWidget(w)

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

    # ================================================================== banners
    def add_banner(self, key: str, text: str, kind: str = "info") -> Banner:
        return self.banner_box.add(key, text, kind)

    def remove_banner(self, key: str) -> None:
        self.banner_box.remove(key)

    def visible_banner_texts(self) -> list[str]:
        return self.banner_box.visible_texts()

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
        self.noise_removed_label.push(sc, self.settings.suppression)

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
            self.status_bar.show_error(exc)
            return
        self.last_diagnostics = d
        text = self.status_bar.show_diagnostics(d, self.fps)
        if self.tray is not None:
            self.tray.setToolTip(f"PercepNet Desktop — suppression "
                                 f"{'on' if d.suppression else 'off'}, {text}")

    # ================================================================== controls
    def _on_suppression(self, on: bool) -> None:
        self.engine.suppression = on
        self.settings.suppression = on
        if self.tray is not None:
            self.tray.set_suppression(on)
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

    # ------------------------------------------------------------------ devices, virtual mic
    def on_devices_listed(self, devices: list) -> None:
        """New device list from the hot-plug watcher (GUI thread)."""
        self.device_controller.on_devices_listed(devices)

    def _on_microphone_found(self) -> None:
        self.banner_box.remove_matching("demo clip")
        self.add_banner("mic_found", "A microphone is now available: switched from the "
                        "demo clip to it.", "info")

    def wait_engine_ops(self, timeout_s: float = 5.0) -> None:
        """Block until queued device switches are done (tests, shutdown)."""
        self.device_controller.wait_engine_ops(timeout_s)

    def run_self_test(self) -> bool:
        """Start the virtual microphone's self-test in the background."""
        return self.vmic_panel.run_self_test()

    @property
    def self_test_result(self) -> tuple[bool, str] | None:
        return self.vmic_panel.self_test_result

    # ================================================================== settings
    def _schedule_save(self) -> None:
        self.saver.schedule()

    def save_settings(self) -> bool:
        return self.saver.save()

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

    def quit(self) -> None:
        self._quitting = True
        self.close()
        self.quit_requested.emit()

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt override
        if self.tray is not None and self.tray.isVisible() and not self._quitting:
            # closing hides to the tray; the suppressor keeps running (Quit in the tray menu)
            self.hide()
            self.tray.show_still_running_hint()
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
        for t in (self._view_timer, self._diag_timer):
            t.stop()
        self.vmic_panel.stop()
        self.saver.stop()
        self.device_controller.shutdown()
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
