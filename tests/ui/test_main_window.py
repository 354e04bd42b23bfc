"""The window's controls, settings, device pickers and virtual-microphone panel (fake
engine and fake back-end: fast and deterministic)."""
from __future__ import annotations

import json
import threading

import numpy as np

from PyQt6.QtCore import Qt
from PyQt6.QtTest import QTest

from percepnet.app.devices import Device
from percepnet.app.engine import DEMO_DEVICE, NULL_DEVICE
from percepnet.app.settings import PARAMS, Settings
from percepnet.app.telemetry import SCALAR_FIELDS, Telemetry
from percepnet.ui.main_window import FIRST_RUN_HINT, VIEW_FPS
from percepnet.ui.virtual_mic_panel import VirtualMicController, load_backend

MIC = Device("alsa_input.usb-mic", "USB Microphone", "input", "pulse")
MIC2 = Device("alsa_input.headset", "Headset Microphone", "input", "pulse")
SPK = Device("alsa_output.speakers", "Speakers", "output", "pulse")


def test_controls_are_built_from_the_param_registry(make_window, fake_engine):
    w = make_window(fake_engine)
    p = PARAMS["atten_limit_db"]
    assert (w.atten_slider.slider.minimum(), w.atten_slider.slider.maximum()) == p.range == (0, 100)
    assert w.atten_slider.title.text() == p.label
    assert p.help[5:40] in w.atten_slider.slider.toolTip()
    assert w.comb_check.text() == PARAMS["use_comb"].label
    assert PARAMS["use_postfilter"].help[5:30] in w.postfilter_check.toolTip()
    assert w.monitor_check.text() == PARAMS["monitor"].label
    assert w.suppress_button.isChecked() and "ON" in w.suppress_button.text()
    assert w._view_timer.interval() <= 1000 / 30 and VIEW_FPS >= 30
    assert w._diag_timer.interval() == 500  # diagnostics at 2 Hz, not per frame


def test_toggle_shortcut_slider_and_stages_drive_the_engine(make_window, fake_engine, settings,
                                                            qtbot):
    w = make_window(fake_engine)
    qtbot.mouseClick(w.suppress_button, Qt.MouseButton.LeftButton)
    assert fake_engine.suppression is False and settings.suppression is False
    assert "OFF" in w.suppress_button.text()
    w.activateWindow()
    qtbot.waitUntil(lambda: w.isActiveWindow(), timeout=2000)
    QTest.keyClick(w, Qt.Key.Key_Space, Qt.KeyboardModifier.ControlModifier)
    assert fake_engine.suppression is True and w.suppress_button.isChecked()

    w.atten_slider.slider.setValue(30)
    assert fake_engine.atten_limit_db == 30.0 and settings.atten_limit_db == 30.0
    assert "30 dB" in w.atten_slider.value_label.text()
    QTest.keyClick(w, Qt.Key.Key_Down, Qt.KeyboardModifier.ControlModifier)
    assert fake_engine.atten_limit_db == 25.0

    comb = w.comb_check.isChecked()
    assert comb == PARAMS["use_comb"].default
    w.comb_check.setChecked(not comb)
    assert fake_engine.stages["use_comb"] is (not comb) and settings.use_comb is (not comb)
    QTest.keyClick(w, Qt.Key.Key_2, Qt.KeyboardModifier.ControlModifier)
    assert fake_engine.stages["use_postfilter"] is False and settings.use_postfilter is False
    cap = w.decay_cap_check.isChecked()
    assert cap == PARAMS["use_decay_cap"].default
    assert w.decay_cap_check.text() == PARAMS["use_decay_cap"].label
    QTest.keyClick(w, Qt.Key.Key_3, Qt.KeyboardModifier.ControlModifier)
    assert fake_engine.stages["use_decay_cap"] is (not cap) and settings.use_decay_cap is (not cap)

    w.monitor_check.setEnabled(True)
    w.monitor_check.setChecked(True)
    assert fake_engine.monitor is True and settings.monitor is True


def test_status_bar_shows_diagnostics(make_window, fake_engine):
    w = make_window(fake_engine)
    w.update_status()
    assert w.latency_label.text() == "latency 63 ms"
    fake_engine.resyncs, fake_engine.trims = 1, 4
    w.update_status()
    assert "Re-syncs: 1 " in w.latency_label.toolTip()
    assert "trims: 4 " in w.latency_label.toolTip()
    assert w.cpu_label.text() == "CPU 5.0 %"
    assert w.xrun_label.text() == "xruns 2"
    assert w.model_label.text() == "model fake"
    assert "running" in w.state_label.text()
    assert "missing" not in w.state_label.text()
    fake_engine.fallback = "input"  # the chosen microphone was unplugged
    w.update_status()
    assert "chosen input device missing, using the default" in w.state_label.text()
    assert "#e0a84a" in w.state_label.styleSheet()


def test_settings_are_saved_debounced_and_first_run_hint(make_window, fake_engine, tmp_path,
                                                         qtbot, fakes):
    path = tmp_path / "cfg.json"
    s = Settings(path=path)  # first run: first_run_done is False
    w = make_window(fake_engine, settings=s, persist=True,
                    vmic=VirtualMicController(fakes.VirtualMic(), autoload=False))
    assert FIRST_RUN_HINT in w.visible_banner_texts()
    assert FIRST_RUN_HINT == "Meeting apps must be restarted to see “PercepNet Microphone”."
    w.atten_slider.slider.setValue(40)
    w.atten_slider.slider.setValue(45)
    assert w.saver.timer.isActive()  # debounced: not written on every slider step

    def saved():
        return json.loads(path.read_text())["settings"] if path.exists() else {}

    assert saved().get("atten_limit_db") != 45.0
    qtbot.waitUntil(lambda: saved().get("atten_limit_db") == 45.0, timeout=3000)
    assert saved()["first_run_done"] is True
    w.banners["first_run"].findChild(type(w.self_test_button)).click()
    assert FIRST_RUN_HINT not in w.visible_banner_texts()
    w.suppress_button.click()
    w.close()  # saves at once, no debounce wait
    assert Settings.load(path).suppression is False
    # the next start shows no hint
    w2 = make_window(fake_engine, settings=Settings.load(path), persist=False)
    assert FIRST_RUN_HINT not in w2.visible_banner_texts()


def test_notes_are_shown_as_banners(make_window, fake_engine):
    note = "no microphone found: playing the bundled demo clip (noisy speech, looped)"
    w = make_window(fake_engine, notes=[note])
    assert "No microphone found: playing the bundled demo clip" in w.visible_banner_texts()[0]


def test_device_pickers_keep_the_selection_across_hotplug(make_window, fake_engine, settings,
                                                          qtbot):
    w = make_window(fake_engine)
    w.on_devices_listed([MIC, MIC2, SPK])
    assert w.input_combo.ids() == ["", MIC.id, MIC2.id, DEMO_DEVICE]
    assert w.output_combo.ids() == ["", SPK.id]
    w.input_combo.activated.emit(w.input_combo.findData(MIC2.id))
    w.wait_engine_ops()
    assert settings.input_device == MIC2.id
    assert fake_engine.device_calls[-1][0] == MIC2.id
    assert fake_engine.device_calls[-1][2].startswith("percepnet-ui-engine")  # not GUI thread
    w.on_devices_listed([MIC, SPK])  # headset unplugged: still selected, marked
    assert w.input_combo.current_id() == MIC2.id
    assert w.input_combo.currentText() == f"{MIC2.id} (not connected)"
    w.on_devices_listed([MIC, MIC2, SPK])  # plugged back in
    assert w.input_combo.current_id() == MIC2.id
    assert w.input_combo.currentText() == MIC2.label
    calls = len(fake_engine.device_calls)
    w.output_combo.activated.emit(w.output_combo.findData(SPK.id))
    w.wait_engine_ops()
    assert settings.output_device == SPK.id and len(fake_engine.device_calls) == calls + 1


def test_device_watcher_polls_in_a_thread_and_reports_changes(make_window, fake_engine, qtbot):
    listed = [[SPK]]
    threads = set()

    def lister():
        threads.add(threading.current_thread().name)
        return list(listed[0])

    w = make_window(fake_engine, watch_devices=True, device_lister=lister)
    w.watcher.interval_s = 0.05
    qtbot.waitUntil(lambda: SPK.id in w.output_combo.ids(), timeout=3000)
    listed[0] = [MIC, SPK]  # hot-plug
    w.watcher.poll_now()
    qtbot.waitUntil(lambda: MIC.id in w.input_combo.ids(), timeout=3000)
    assert threads == {"percepnet-ui-devices"}


def test_demo_fallback_switches_to_a_microphone_that_appears(make_window, settings, fakes):
    engine = fakes.Engine(input_device=DEMO_DEVICE, output_device=NULL_DEVICE)
    w = make_window(engine, notes=["no microphone found: playing the bundled demo clip"])
    assert w.input_combo.current_id() == DEMO_DEVICE
    assert w.output_combo.current_id() == NULL_DEVICE
    w.on_devices_listed([SPK])  # still no microphone: stay on the demo
    w.wait_engine_ops()
    assert engine.device_calls == []
    w.on_devices_listed([MIC, SPK])
    w.wait_engine_ops()
    assert engine.device_calls[-1][:2] == ("", "")  # default mic, default output
    assert any("microphone is now available" in t for t in w.visible_banner_texts())
    assert not any("demo clip" in t.lower() and "playing" in t.lower()
                   for t in w.visible_banner_texts())
    assert settings.input_device == ""  # nothing the user did not choose is saved


def test_virtual_mic_unavailable_is_handled(make_window, fake_engine, monkeypatch):
    import sys

    import percepnet.app

    monkeypatch.setitem(sys.modules, "percepnet.app.mic_backends", None)  # import fails
    # an earlier test may have imported it: the package attribute would still resolve
    monkeypatch.delattr(percepnet.app, "mic_backends", raising=False)
    backend, reason = load_backend()
    assert backend is None and "not available" in reason
    w = make_window(fake_engine, vmic=VirtualMicController())
    assert w.vmic_label.text() == "virtual mic: unavailable"
    assert not w.self_test_button.isEnabled() and not w.vmic_check.isEnabled()
    assert w.run_self_test() is False


def test_self_test_runs_off_the_gui_thread(make_window, fake_engine, qtbot, fakes):
    backend = fakes.VirtualMic(test_s=0.4)
    w = make_window(fake_engine, vmic=VirtualMicController(backend))
    assert w.self_test_button.isEnabled()
    w.self_test_button.click()
    # the click returned at once: the button shows the test running, the GUI is responsive
    assert not w.self_test_button.isEnabled() and w.self_test_button.text() == "Testing…"
    qtbot.waitUntil(lambda: w.self_test_result is not None, timeout=3000)
    assert w.self_test_result[0] is True and "tone read back" in w.self_test_result[1]
    assert len(backend.threads) == 1 and backend.threads[0].startswith("percepnet-ui-vmic")
    qtbot.waitUntil(w.self_test_button.isEnabled, timeout=2000)
    assert w.self_test_button.text() == "Self-test"


def test_virtual_mic_mode_routes_the_output_and_back(make_window, fake_engine, settings, qtbot,
                                                     fakes):
    settings.output_device = SPK.id
    backend = fakes.VirtualMic(events=fake_engine.events)
    w = make_window(fake_engine, vmic=VirtualMicController(backend))
    assert not w.monitor_check.isEnabled()
    w.vmic_check.setChecked(True)
    qtbot.waitUntil(lambda: fake_engine.output_device == "percepnet_mic_sink", timeout=3000)
    assert settings.virtual_mic is True and w.monitor_check.isEnabled()
    assert "ready" in w.vmic_label.text() and backend.on_change is not None
    # the sound server restarted and the supervisor rebuilt the device: the output reopens
    n = len(fake_engine.device_calls)
    backend.simulate_server_restart()
    qtbot.waitUntil(lambda: len(fake_engine.device_calls) == n + 1, timeout=3000)
    assert fake_engine.device_calls[-1][1] == "percepnet_mic_sink"
    # a meeting app had our sink as its speaker and the supervisor moved it: the window says
    # so, and nothing reopens (the microphone itself did not change)
    from dataclasses import replace
    n = len(fake_engine.device_calls)
    notice = replace(backend.status(), moved=("meeting-app had our sink as its speaker",))
    threading.Thread(target=backend.on_change, args=(notice,)).start()
    qtbot.waitUntil(lambda: "meeting-app" in w.vmic_label.text(), timeout=3000)
    qtbot.wait(200)
    assert len(fake_engine.device_calls) == n
    w.vmic_check.setChecked(False)
    qtbot.waitUntil(lambda: fake_engine.output_device == SPK.id, timeout=3000)
    w.close()
    # created by the window, removed at exit, after the engine stopped (as the service does)
    assert backend.removed == 1
    assert fake_engine.events == ["supervising", "engine stopped", "supervision stopped",
                                  "mic removed"]


def test_start_minimized_without_a_tray(make_window, fake_engine):
    w = make_window(fake_engine)
    assert w.tray is None  # offscreen has no system tray
    w.start_minimized()
    assert w.isMinimized()


def test_first_run_hint_only_where_a_virtual_mic_can_be_made(make_window, fake_engine, tmp_path):
    """No virtual-mic back-end: the "restart meeting apps" hint would be false, so it is not
    shown (and stays due for a start where it is true)."""
    s = Settings(path=tmp_path / "cfg.json")
    w = make_window(fake_engine, settings=s)
    assert FIRST_RUN_HINT not in w.visible_banner_texts()
    assert not w.vmic_check.isEnabled() and "unavailable" in w.vmic_check.toolTip()
    assert s.first_run_done is False


def test_no_sound_server_drops_the_hint_and_disables_the_mic_controls(make_window, fake_engine,
                                                                       tmp_path, fakes):
    s = Settings(path=tmp_path / "cfg.json")
    w = make_window(fake_engine, settings=s,
                    vmic=VirtualMicController(fakes.VirtualMic(), autoload=False))
    assert FIRST_RUN_HINT in w.visible_banner_texts()
    w.vmic_panel._on_status(
        "virtual mic: off — no PulseAudio/PipeWire server reachable: refused", False, False)
    assert FIRST_RUN_HINT not in w.visible_banner_texts()
    for ctl in (w.vmic_check, w.monitor_check, w.self_test_button):
        assert not ctl.isEnabled() and "No sound server" in ctl.toolTip()
    w.vmic_panel._on_status("virtual mic: ready (“PercepNet Microphone”)", True)  # server back
    assert w.vmic_check.isEnabled() and w.self_test_button.isEnabled()


def test_views_show_what_is_not_applied(make_window, fake_engine):
    """Comb strengths are drawn as not applied while the comb filter is off, band gains while
    suppression is off (the network still computes both)."""
    w = make_window(fake_engine)
    w.settings.use_comb = False
    w.settings.suppression = True
    w.update_views()
    assert w.bars_view.gains_applied and not w.bars_view.comb_applied
    assert "comb strengths (not applied: comb filter off)" in w.bars_view.title
    assert w.strength_map.not_applied == "comb filter off" and w.gain_map.not_applied == ""
    w.settings.use_comb = True
    w.update_views()
    assert w.bars_view.comb_applied and "not applied" not in w.bars_view.title
    w.settings.suppression = False
    w.update_views()
    assert not w.bars_view.gains_applied and not w.bars_view.comb_applied
    assert w.gain_map.not_applied == "suppression off"
    assert "band gains (not applied: suppression off)" in w.bars_view.title


def test_noise_removed_readout_from_unvoiced_frames(make_window, fake_engine):
    """The readout is the median input-output level difference over unvoiced, non-silent
    frames; voiced frames do not count."""
    w = make_window(fake_engine)
    w.settings.suppression = True
    f = Telemetry.field
    rows = np.zeros((100, len(SCALAR_FIELDS)), np.float32)
    rows[:, f("input_db")] = -40.0
    rows[:50, f("output_db")] = -65.0  # unvoiced: 25 dB removed
    rows[:50, f("voicing")] = 0.05
    rows[50:, f("output_db")] = -41.0  # voiced speech: barely touched, not counted
    rows[50:, f("voicing")] = 0.9
    w._update_noise_removed(rows)
    assert w.noise_removed_label.text() == "noise removed: 25 dB"
    w.settings.suppression = False
    w._update_noise_removed(rows)
    assert "suppression off" in w.noise_removed_label.text()


def test_status_shows_the_suppressor_being_prepared(make_window, fake_engine):
    """First start: audio passes through while the kernels compile; the window says so."""
    w = make_window(fake_engine)
    orig = fake_engine.diagnostics

    def preparing():
        d = orig()
        d.state, d.suppressor_ready = "running", False
        return d

    fake_engine.diagnostics = preparing
    w.update_status()
    assert "preparing the suppressor (about 30 s on a first start)" in w.state_label.text()
    fake_engine.diagnostics = orig
    w.update_status()
    assert "preparing" not in w.state_label.text()
