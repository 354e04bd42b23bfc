"""What better comb strengths could buy: the network's gains with its own strengths, with the
comb off, and with the oracle's strengths (the training targets, from the clean reference).

    .venv/bin/python -m benchmarks.comb_headroom [--out bench-out] [--model pair]

On the dry items of the honest development set (``benchmarks.devset_unseen``), per input SNR,
PESQ-WB and SI-SDR of

- ``comb off``: the network's gains, no pitch filtering;
- ``network``: the shipped chain (the network's gains and strengths, the gated comb);
- ``oracle strengths``: the network's gains and the oracle's strengths in the same chain,
  i.e. the ceiling of a perfect strength head for these gains;
- ``oracle``: gains and strengths both from the clean reference (``dsp.oracle``), the chain's
  own ceiling.

Every variant runs the same stages (``stage_defaults``: postfilter on, gated comb below
8 kHz). Writes ``OUT/comb_headroom.md`` and ``OUT/comb_headroom.json``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from benchmarks.report import write_results

#: Columns of the report, in order.
VARIANTS = ("input", "comb off", "network", "oracle strengths", "oracle")


class NetworkGains:
    """Gain source: the model's networks on the noisy features, as the denoiser runs them
    (pre-roll and digital silence pass through, the mean of a pair, ``shape_band_gains``), with the
    strengths taken from an oracle on the clean reference instead when ``clean`` is given."""

    def __init__(self, model, clean: np.ndarray | None) -> None:
        from percepnet.dsp.constants import N_BANDS, N_FEATURES
        from percepnet.dsp.network import Network
        from percepnet.dsp.oracle import OracleSource

        members = getattr(model, "members", None) or (model,)
        self.networks = [Network(m.arch, m.weights) for m in members]
        self.oracle = OracleSource(clean, with_comb=True) if clean is not None else None
        self.features = np.zeros(N_FEATURES)
        self.scratch = np.zeros((4, N_BANDS))
        self.frames = 0

    def reset(self) -> None:
        for net in self.networks:
            net.reset()
        if self.oracle is not None:
            self.oracle.reset()
        self.frames = 0

    def frame(self, analysis, slot, gains, strengths) -> None:
        from percepnet.dsp.constants import LOOKAHEAD_FRAMES
        from percepnet.dsp.denoiser import average_members, frame_is_silent, shape_band_gains
        from percepnet.dsp.features import frame_features

        pre_roll = self.frames < LOOKAHEAD_FRAMES
        self.frames += 1
        oracle_g, oracle_r = self.scratch[2], self.scratch[3]
        if self.oracle is not None:  # advances the clean analysis every frame
            self.oracle.frame(analysis, slot, oracle_g, oracle_r)
        if pre_roll or frame_is_silent(analysis, slot):
            gains[:] = 1.0
            strengths[:] = 0.0
            return
        frame_features(analysis, slot, self.features)
        self.networks[0].step(self.features, gains, strengths)
        if len(self.networks) == 2:
            self.networks[1].step(self.features, self.scratch[0], self.scratch[1])
            average_members(gains, strengths, self.scratch[0], self.scratch[1])
        shape_band_gains(gains)
        if self.oracle is not None:
            strengths[:] = oracle_r


def run_item(model, clean: np.ndarray, noisy: np.ndarray) -> dict[str, np.ndarray]:
    """The four variants' outputs for one item (aligned with the input, its length)."""
    from percepnet.app.settings import stage_defaults
    from percepnet.dsp.oracle import oracle_enhance
    from percepnet.dsp.processor import StreamProcessor, process_signal

    stages = stage_defaults()
    out = {}
    for name, comb, oracle in (("comb off", False, False), ("network", True, False),
                               ("oracle strengths", True, True)):
        proc = StreamProcessor(NetworkGains(model, clean if oracle else None),
                               **{**stages, "use_comb": comb})
        out[name] = process_signal(noisy, proc)
    out["oracle"] = oracle_enhance(clean, noisy, "all")
    return out


def main(argv: list[str] | None = None) -> str:
    from percepnet.app.models import default_model_name, load_model

    from benchmarks.devset_unseen import CONDITIONS, condition_label, load_devset
    from benchmarks.metrics import scores

    ap = argparse.ArgumentParser(prog="python -m benchmarks.comb_headroom", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=19)
    ap.add_argument("--model", default=default_model_name())
    ap.add_argument("--out", type=Path, default=Path("bench-out"))
    args = ap.parse_args(argv)
    model = load_model(args.model)
    items = [it for it in load_devset(args.seed) if not it["room"] and it["snr_db"] is not None]
    per_item = []
    for it in items:
        outs = {"input": it["noisy"], **run_item(model, it["clean"], it["noisy"])}
        figures = {}
        for name, y in outs.items():
            s = scores(it["clean"], y, fullband=False)
            figures[name] = {"pesq": s["pesq"], "si_sdr": s["si_sdr"]}
        per_item.append({"name": it["name"], "condition": it["condition"], "scores": figures})
        print(f"{it['name']}: " + ", ".join(f"{n} {f['pesq']:.2f} / {f['si_sdr']:.1f} dB"
                                            for n, f in figures.items()), flush=True)
    lines = ["# Comb headroom: the network's gains with better comb strengths", "",
             f"`python -m benchmarks.comb_headroom --model {args.model}`: the {len(items)} dry "
             "noisy items of the unseen-voices set; per input SNR the mean PESQ-WB / the median "
             "SI-SDR dB (items whose noise pauses score near-infinite SI-SDR; a mean would "
             "follow them). "
             "Same stages in every column (postfilter on, gated comb below 8 kHz where on).", "",
             "| input SNR | items | " + " | ".join(VARIANTS) + " |",
             "|---|---|" + "---|" * len(VARIANTS)]
    for snr in CONDITIONS:
        if snr is None:
            continue
        label = condition_label(snr)
        rows = [x["scores"] for x in per_item if x["condition"] == label]
        if not rows:
            continue
        cells = [f"{np.nanmean([r[v]['pesq'] for r in rows]):.2f} / "
                 f"{np.median([r[v]['si_sdr'] for r in rows]):.2f}" for v in VARIANTS]
        lines.append(f"| {label} | {len(rows)} | " + " | ".join(cells) + " |")
    meta = {"model": args.model, "seed": args.seed, "variants": list(VARIANTS)}
    return write_results(args.out, "comb_headroom", lines, meta, per_item)


if __name__ == "__main__":
    main(sys.argv[1:])
