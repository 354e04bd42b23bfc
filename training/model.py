"""The PercepNet network in PyTorch, the float reference of the int8 runtime.

Architecture and where its sizes come from: docs/algorithm.md, 'The network'.

Input: standardised 70-value features per frame (``features.compute_features``), output 34
band gains and 34 comb strengths in [0, 1] per frame. Layer widths come from
``percepnet.dsp.model_config.ARCHITECTURES``. Hidden activations are tanh (bounded, for the
u8 activation path of the runtime), outputs sigmoid; all weights are kept in [-0.5, 0.5]
(``clip_weights`` after every optimiser step) so int8 with per-row scales loses little.
The causal convolutions see frames t-4..t and t-2..t; the look-ahead is already in the
features (their energy part is from frame t + 2).
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

__all__ = ["PercepNetModel", "WEIGHT_CLIP"]

#: Weight range enforced during training, so int8 loses little (docs/algorithm.md, 'Int8 weights').
WEIGHT_CLIP = 0.5


class PercepNetModel(nn.Module):
    def __init__(self, arch: dict) -> None:
        super().__init__()
        self.arch = dict(arch)
        nf, d = arch["n_features"], arch["dense"]
        c1, c2 = arch["conv1"], arch["conv2"]
        self.register_buffer("feat_mean", torch.zeros(nf))
        self.register_buffer("feat_std", torch.ones(nf))
        self.dense = nn.Linear(nf, d)
        self.conv1 = nn.Conv1d(d, c1, arch["conv1_kernel"])
        self.conv2 = nn.Conv1d(c1, c2, arch["conv2_kernel"])
        self.grus = nn.ModuleList()
        prev = c2
        for h in arch["gru"]:
            self.grus.append(nn.GRU(prev, h, batch_first=True))
            prev = h
        self.gru_gain = nn.GRU(prev, arch["gru_gain"], batch_first=True)
        self.gru_strength = nn.GRU(c2 + prev, arch["gru_strength"], batch_first=True)
        self.gain_head = nn.Linear(c2 + sum(arch["gru"]) + arch["gru_gain"], arch["n_bands"])
        self.strength_head = nn.Linear(arch["gru_strength"], arch["n_bands"])
        self.clip_weights()

    def set_normalisation(self, mean: np.ndarray, std: np.ndarray) -> None:
        self.feat_mean.copy_(torch.as_tensor(mean, dtype=torch.float32))
        self.feat_std.copy_(torch.as_tensor(np.maximum(std, 1e-3), dtype=torch.float32))

    @torch.no_grad()
    def clip_weights(self) -> None:
        for name, p in self.named_parameters():
            if "weight" in name:
                p.clamp_(-WEIGHT_CLIP, WEIGHT_CLIP)

    @staticmethod
    def _causal_conv(conv: nn.Conv1d, x: torch.Tensor) -> torch.Tensor:
        # x: (B, T, C) -> left-pad k-1 frames of zeros -> (B, T, C_out)
        k = conv.kernel_size[0]
        y = conv(nn.functional.pad(x.transpose(1, 2), (k - 1, 0)))
        return y.transpose(1, 2)

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """features: (B, T, 70) raw features -> gains, strengths: (B, T, 34) in [0, 1]."""
        x = (features - self.feat_mean) / self.feat_std
        d = torch.tanh(self.dense(x))
        c1 = torch.tanh(self._causal_conv(self.conv1, d))
        c2 = torch.tanh(self._causal_conv(self.conv2, c1))
        outs, h = [], c2
        for gru in self.grus:
            h, _ = gru(h)
            outs.append(h)
        hg, _ = self.gru_gain(h)
        hr, _ = self.gru_strength(torch.cat([c2, h], dim=-1))
        gains = torch.sigmoid(self.gain_head(torch.cat([c2, *outs, hg], dim=-1)))
        strengths = torch.sigmoid(self.strength_head(hr))
        return gains, strengths
