"""The device pickers and what they drive: the input/output lists (kept current by the
hot-plug watcher), the user's selection → ``engine.set_devices`` on a worker thread (reopening
the stream can take a while), the virtual-microphone routing of the output, and the switch
from the demo clip to a microphone that appears when the demo was only a fallback."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Callable

from PyQt6.QtCore import QObject, pyqtSignal

from percepnet.app.engine import DEMO_DEVICE, NULL_DEVICE
from percepnet.app.settings import PARAMS, Settings

from .controls import DeviceCombo
from .device_watcher import DeviceWatcher

__all__ = ["DeviceController"]

_INPUT_LABELS = {"": "System default microphone", DEMO_DEVICE: "Demo clip (noisy speech, looped)"}
_OUTPUT_LABELS = {"": "System default output", NULL_DEVICE: "No playback (no output device)"}


class DeviceController(QObject):
    """Owns :attr:`input_combo`, :attr:`output_combo` and the :attr:`watcher` (None unless
    ``watch_devices``). ``fallback_demo``: the engine plays the demo clip only because no
    microphone was found, so the first microphone listed replaces it.

    Signals: :attr:`settings_changed` (save them), :attr:`message` (status-bar text, ms),
    :attr:`devices_switched` (a switch finished, or failed), :attr:`microphone_found` (the
    demo fallback ended).
    """

    settings_changed = pyqtSignal()
    message = pyqtSignal(str, int)
    devices_switched = pyqtSignal()
    microphone_found = pyqtSignal()
    _op_done = pyqtSignal(str)

    def __init__(self, engine, settings: Settings, *, fallback_demo: bool = False,
                 device_lister: Callable[[], list] | None = None, watch_devices: bool = True,
                 parent=None) -> None:
        super().__init__(parent)
        self.engine = engine
        self.settings = settings
        self.fallback_demo = fallback_demo
        self._devices: list | None = None
        self._vmic_sink = ""  # where the engine's output goes while virtual-mic mode is on
        self._engine_ops = ThreadPoolExecutor(max_workers=1,
                                              thread_name_prefix="percepnet-ui-engine")
        self.input_combo = DeviceCombo()
        self.input_combo.setToolTip(PARAMS["input_device"].help)
        self.input_combo.device_selected.connect(self._on_input_selected)
        self.output_combo = DeviceCombo()
        self.output_combo.setToolTip(PARAMS["output_device"].help)
        self.output_combo.device_selected.connect(self._on_output_selected)
        self.refresh_combos()
        self._op_done.connect(self._on_op_done)
        self.watcher = DeviceWatcher(device_lister, parent=self) if watch_devices else None
        if self.watcher is not None:
            self.watcher.devices_changed.connect(self.on_devices_listed)

    def start(self) -> None:
        """Start the hot-plug watcher (when there is one)."""
        if self.watcher is not None:
            self.watcher.start()

    def shutdown(self) -> None:
        """Stop the watcher; wait for the running device switch, drop the queued ones."""
        if self.watcher is not None:
            self.watcher.stop()
        self._engine_ops.shutdown(wait=True, cancel_futures=True)

    # ------------------------------------------------------------------ lists
    def chosen_output(self) -> str:
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
        self.refresh_combos()
        if self.fallback_demo:
            from percepnet.app.devices import has_microphone

            if has_microphone(self._devices):
                self.fallback_demo = False
                out = None
                if self.engine.output_device == NULL_DEVICE:
                    out = self.settings.output_device
                self.switch_devices(input_device=self.settings.input_device, output_device=out)
                self.microphone_found.emit()

    def refresh_combos(self) -> None:
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

    # ------------------------------------------------------------------ selection
    def _on_input_selected(self, dev_id: str) -> None:
        self.fallback_demo = False
        self.settings.input_device = dev_id
        self.settings_changed.emit()
        out = None
        if dev_id != DEMO_DEVICE and self.engine.output_device == NULL_DEVICE:
            out = self.settings.output_device  # a microphone needs a real output stream
        self.switch_devices(input_device=dev_id, output_device=out)

    def _on_output_selected(self, dev_id: str) -> None:
        if dev_id != NULL_DEVICE:
            self.settings.output_device = dev_id
            self.settings_changed.emit()
        if not self._vmic_sink:
            self.switch_devices(output_device=dev_id)

    # ------------------------------------------------------------------ virtual microphone
    def on_vmic_enabled(self, on: bool, sink: str, text: str, requested: bool) -> None:
        """Virtual-mic mode on: the cleaned voice goes to its sink; off: back to the chosen
        output (``VirtualMicController.enabled_changed``)."""
        if on and sink:
            self._vmic_sink = sink
            self.switch_devices(output_device=sink)
            self.output_combo.setToolTip("In virtual-microphone mode the cleaned voice goes to "
                                         "“PercepNet Microphone”; this device is for "
                                         "“Listen to myself”.")
            return
        was_on = bool(self._vmic_sink)
        self._vmic_sink = ""
        self.output_combo.setToolTip(PARAMS["output_device"].help)
        if was_on:
            self.switch_devices(output_device=self.chosen_output())

    def on_vmic_rebuilt(self, sink: str) -> None:
        """The virtual microphone was rebuilt (sound-server restart): reopen our output."""
        if self._vmic_sink:
            self._vmic_sink = sink
            self.switch_devices(output_device=sink)

    # ------------------------------------------------------------------ engine
    def switch_devices(self, input_device: str | None = None,
                       output_device: str | None = None) -> None:
        """Reopen the engine's stream on a worker thread (it can take a while)."""
        if input_device is None and output_device is None:
            return

        def op() -> None:
            try:
                self.engine.set_devices(input_device=input_device, output_device=output_device)
                self._op_done.emit("")
            except Exception as exc:  # noqa: BLE001
                self._op_done.emit(f"could not switch devices: {exc}")

        self.message.emit("Switching audio devices…", 2000)
        try:
            self._engine_ops.submit(op)
        except RuntimeError:  # shut down
            pass

    def _on_op_done(self, error: str) -> None:
        if error:
            self.message.emit(error, 8000)
        self.refresh_combos()
        self.devices_switched.emit()

    def wait_engine_ops(self, timeout_s: float = 5.0) -> None:
        """Block until queued device switches are done (tests, shutdown)."""
        fut = self._engine_ops.submit(lambda: None)
        fut.result(timeout=timeout_s)
