"""The window's status bar: the engine's state, end-to-end latency, CPU share, xruns, model
and view frame rate, each with the detail in its tool tip, from one
``engine.diagnostics()`` snapshot (the window refreshes it twice a second). The virtual
microphone's readout and self-test button are appended by the window."""
from __future__ import annotations

from PyQt6.QtWidgets import QLabel, QStatusBar

__all__ = ["DiagnosticsBar"]


class DiagnosticsBar(QStatusBar):
    """A status bar with :attr:`state_label`, :attr:`latency_label`, :attr:`cpu_label`,
    :attr:`xrun_label`, :attr:`model_label` and :attr:`fps_label` as permanent widgets."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.state_label = QLabel()
        self.latency_label = QLabel()
        self.cpu_label = QLabel()
        self.xrun_label = QLabel()
        self.model_label = QLabel()
        self.fps_label = QLabel()
        self.latency_label.setToolTip("End to end: device input + 40 ms algorithmic delay + "
                                      "device output")
        for w in (self.state_label, self.latency_label, self.cpu_label, self.xrun_label,
                  self.model_label, self.fps_label):
            self.addPermanentWidget(w)

    def show_error(self, exc: Exception) -> None:
        """The engine could not report (the window must survive a broken engine)."""
        self.state_label.setText(f"engine error: {exc}")

    def show_diagnostics(self, d, fps: float) -> str:
        """Show ``d`` (``engine.diagnostics()``) and the view rate; returns the state text."""
        states = {"running": "● running", "reconnecting": "◌ reconnecting…",
                  "stopped": "○ stopped", "error": "✕ error"}
        text = states.get(d.state, d.state)
        style = ""
        if d.state != "running":
            style = "color:#e0a84a;"
        elif not d.suppressor_ready:
            text = ("◌ preparing the suppressor (about 30 s on a first start) — passing your "
                    "voice through")
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
                                      f"available).\nRe-syncs: {d.resyncs} (buffered audio had "
                                      f"piled up); virtual microphone trims: {d.trims} (a few "
                                      "ms of a quiet block left out)")
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
        self.fps_label.setText(f"{fps:.0f} fps")
        self.fps_label.setToolTip("View refresh rate")
        return text
