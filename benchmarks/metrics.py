"""Quality metrics shared by ``benchmarks.quality`` (the older set) and
``benchmarks.quality_unseen``: SI-SDR, log-spectral distance, DNSMOS P.835, PESQ/STOI."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import soxr
from percepnet.dsp.constants import SAMPLE_RATE_HZ

RATE = SAMPLE_RATE_HZ  # the one definition: percepnet.dsp.constants


def si_sdr(ref: np.ndarray, est: np.ndarray) -> float:
    ref = ref - ref.mean()
    est = est - est.mean()
    target = np.dot(est, ref) / (np.dot(ref, ref) + 1e-20) * ref
    return float(10 * np.log10(np.sum(target**2) / (np.sum((est - target) ** 2) + 1e-20) + 1e-20))


def lsd(ref: np.ndarray, est: np.ndarray, lo_hz: float, hi_hz: float) -> float:
    """Log-spectral distance (dB) in [lo, hi) over the frames where the reference is active
    (960-point Hann frames, 480 hop)."""
    n, hop = 960, 480
    frames = (min(len(ref), len(est)) - n) // hop + 1
    if frames < 1:
        return float("nan")
    idx = np.arange(n)[None, :] + hop * np.arange(frames)[:, None]
    win = np.hanning(n)
    k = np.arange(n // 2 + 1) * RATE / n
    band = (k >= lo_hz) & (k < hi_hz)
    r = np.abs(np.fft.rfft(ref[idx] * win, axis=1))[:, band] ** 2
    e = np.abs(np.fft.rfft(est[idx] * win, axis=1))[:, band] ** 2
    active = r.mean(axis=1) >= 1e-9
    if not active.any():
        return float("nan")
    d = 10 * np.log10(r[active] + 1e-12) - 10 * np.log10(e[active] + 1e-12)
    return float(np.mean(np.sqrt(np.mean(d**2, axis=1))))


class DNSMOS:
    """DNSMOS P.835 with the ONNX models that ``speechmos`` ships (no download), one thread."""

    def __init__(self) -> None:
        import onnxruntime as ort
        from speechmos import dnsmos as dm

        base = Path(dm.__file__).parent / "dnsmos_models"
        primary, p808 = base / "sig_bak_ovr.onnx", base / "model_v8.onnx"
        for p in (primary, p808):
            if not p.is_file():
                raise FileNotFoundError(f"speechmos is installed but {p} is missing")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        self._impl = dm.DNSMOS.__new__(dm.DNSMOS)
        self._impl.primary_model_path = str(primary)
        self._impl.onnx_sess = ort.InferenceSession(str(primary), opts,
                                                    providers=["CPUExecutionProvider"])
        self._impl.p808_onnx_sess = ort.InferenceSession(str(p808), opts,
                                                         providers=["CPUExecutionProvider"])

    def __call__(self, y16: np.ndarray) -> dict:
        r = self._impl(np.clip(y16, -1.0, 1.0), 16000, False)
        return {"ovrl": float(r["ovrl_mos"]), "sig": float(r["sig_mos"]), "bak": float(r["bak_mos"])}


def _safe(fn, *args) -> float:
    """A metric that cannot be computed (PESQ finds no utterance in a muted output...) is NaN."""
    try:
        return float(fn(*args))
    except Exception:
        return float("nan")


def scores(clean: np.ndarray, y: np.ndarray, dnsmos: DNSMOS | None = None,
           fullband: bool = True) -> dict:
    """Every metric of one output against its 48 kHz reference."""
    from pesq import pesq
    from pystoi import stoi

    c16, y16 = soxr.resample(clean, RATE, 16000), soxr.resample(y, RATE, 16000)
    out = {"pesq": _safe(pesq, 16000, c16, y16, "wb"), "stoi": _safe(stoi, c16, y16, 16000),
           "si_sdr": si_sdr(clean, y)}
    if dnsmos is not None:
        try:
            out.update(dnsmos(y16))
        except Exception:
            out.update(ovrl=math.nan, sig=math.nan, bak=math.nan)
    if fullband:
        out["lsd_8_16"] = lsd(clean, y, 8000, 16000)
        out["lsd_16_20"] = lsd(clean, y, 16000, 20000)
    return out
