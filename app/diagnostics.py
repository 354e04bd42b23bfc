"""A snapshot of the live engine for the status bar, the service's status line and the
self-test: state, devices, controls, xruns, callback timing, CPU, latency, errors."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from percepnet.dsp.constants import SAMPLE_RATE_HZ

from .engine_core import BLOCK_SIZE

__all__ = ["Diagnostics"]


@dataclass
class Diagnostics:
    """A snapshot for the status bar and the service's status line."""

    state: str = "stopped"  # stopped | running | reconnecting | error
    input_device: str = ""
    output_device: str = ""
    model: str = ""
    suppression: bool = True
    atten_limit_db: float = 100.0
    sample_rate: int = SAMPLE_RATE_HZ
    block_size: int = BLOCK_SIZE
    xruns: int = 0  # PortAudio status flags after the start-up second
    xruns_startup: int = 0
    input_overflows: int = 0
    output_underflows: int = 0
    late_callbacks: int = 0
    callback_p50_ms: float = 0.0
    callback_p99_ms: float = 0.0
    cpu_load: float = 0.0  # PortAudio's estimate, 0..1 of one core
    latency_ms: float = 0.0  # end to end: device in + algorithmic + device out
    device_latency_ms: tuple[float, float] = (0.0, 0.0)
    model_rtf: float = 0.0  # processing time / audio time
    insufficient_resources: bool = False
    errors: int = 0
    last_error: str = ""
    restarts: int = 0
    #: latency re-syncs: the stream reopened because buffered audio had piled up
    resyncs: int = 0
    #: the virtual microphone's FIFO cut back to the slack its sound server needs (a few ms
    #: of a quiet block left out; PipeWire)
    trims: int = 0
    #: NaN/Inf samples replaced by zeros (input or output)
    nonfinite_samples: int = 0
    #: times the suppressor's state was cleared after repeated errors
    denoiser_resets: int = 0
    uptime_s: float = 0.0
    frames: int = 0
    warnings: list[str] = field(default_factory=list)
    #: chosen devices that are missing, so the sound server's default plays their part:
    #: "", "input", "output" or "input and output"
    fallback: str = ""
    #: False while the suppressor is being prepared (first start: its kernels compile in
    #: the background and the input passes through, aligned)
    suppressor_ready: bool = True
    #: the audio threads' scheduling priority: "nice -11 (2 threads)", "nice -11 via rtkit
    #: (2 threads)" or "not raised: <why>"
    audio_priority: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def cpu_share(self) -> float:
        """Share of one core the audio processing takes (0..1): PortAudio's load, or the
        processing time per audio time where that is higher (the paced demo with no output
        has no PortAudio stream to measure). What the status line and the window show."""
        return max(self.cpu_load, self.model_rtf)

    def status_line(self) -> str:
        state = self.state
        if state == "running" and not self.suppressor_ready:
            state = ("running (preparing the suppressor, about 30 s on a first start: "
                     "passing through)")
        return (f"{state}: in={self.input_device or 'default'} "
                f"out={self.output_device or 'default'} "
                f"suppression={'on' if self.suppression else 'off'} "
                f"limit={self.atten_limit_db:g}dB latency={self.latency_ms:.0f}ms "
                f"cb p50/p99={self.callback_p50_ms:.2f}/{self.callback_p99_ms:.2f}ms "
                f"cpu={100 * self.cpu_share:.1f}% rtf={self.model_rtf:.3f} xruns={self.xruns} "
                f"resyncs={self.resyncs} errors={self.errors}" + (" INSUFFICIENT-RESOURCES"
                                          if self.insufficient_resources else "")
                + (f" nonfinite-samples={self.nonfinite_samples}"
                   if self.nonfinite_samples else "")
                + (f" suppressor-resets={self.denoiser_resets}" if self.denoiser_resets else "")
                + (f" trims={self.trims}" if self.trims else "")
                + (f" stream-restarts={self.restarts}" if self.restarts else "")
                + (f" device-rate={self.sample_rate}Hz(converted)"
                   if self.sample_rate != SAMPLE_RATE_HZ else "")
                + (f" MISSING-{self.fallback.upper().replace(' ', '-')}-DEVICE(using default)"
                   if self.fallback else ""))
