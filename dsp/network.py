"""Int8 inference runtime of the PercepNet network, one fused call per frame: the
:class:`Network` object the audio engine uses, and the one import point of the runtime.

The network (same maths as PyTorch, see ``training/model.py``), per 10 ms frame t, with
f the 70 features:

1. x0 = (f - feat_mean) / feat_std
2. d = tanh(W_dense x0 + b)                                   dense, D
3. c1 = tanh(W_c1 [d_{t-4}; ...; d_t] + b)                    causal conv k=5, C1
4. c2 = tanh(W_c2 [c1_{t-2}; c1_{t-1}; c1_t] + b)             causal conv k=3, C2
5. h_1 = GRU_1(c2, h_1), h_l = GRU_l(h_{l-1}, h_l)            the GRU stack (any depth >= 1)
6. h_g = GRU_gain(h_L, h_g); gains = sigmoid(W_g [c2; h_1..h_L; h_g] + b)          34
7. h_r = GRU_strength([c2; h_L], h_r); strengths = sigmoid(W_r h_r + b)            34

Conv matrices are [C_out, k*C_in] with column j*C_in + c = tap j (oldest first) of input
channel c. GRU cells are PyTorch's (gates r, z, n stacked in that order; b_hn inside r*(.)).

The runtime is split by job; this module re-exports every public name of:

- :mod:`percepnet.dsp.network_format`: the int8 weights format (layout, validation,
  per-row quantisation, random weights);
- :mod:`percepnet.dsp.network_reference`: the float64 numpy reference;
- :mod:`percepnet.dsp.network_pack`: packed weights (:class:`NetworkWeights`) and the
  preallocated state (:class:`NetworkState`);
- :mod:`percepnet.dsp.network_kernels`: the portable compiled step (:func:`network_step`);
- :mod:`percepnet.dsp.network_vnni`: the AVX-512 VNNI step and :func:`vnni_available`.

Both compiled paths, chosen at construction (:class:`Network`), use the same packed weights
and state. A frame is one call of the njit step function (:func:`network_step` or the VNNI
one from :func:`vnni_step_function`), which allocates nothing; another njit function can call
it directly with ``network.step_function, network.weights, network.state``. Importing this
module never compiles anything.
"""
from __future__ import annotations

import numpy as np

from .network_format import (dequantize_weights, quantize_rows, quantize_weights,
                             random_float_weights, random_weights, validate_weights,
                             weight_layout)
from .network_kernels import network_step
# Also re-exported beyond __all__: the layout constants (M_*, the matrix rows, D_*, A_*,
# U_*) and _mv_u8 for the tests, _network_step_vnni for the denoiser.
from .network_pack import (A_CAT, A_CONV1_IN, A_CONV2_IN, A_GH, A_GI, A_HR, A_SIZE, A_STR_IN,
                           A_X0, COL_BLOCK, CONV1, CONV2, D_FEAT_MEAN, D_FEAT_STD, D_N_BANDS,
                           D_N_FEATURES, D_N_LAYERS, DENSE, GAIN_HEAD, GRU_GAIN, GRU_STACK,
                           GRU_STRENGTH, M_BIAS, M_COLS, M_KPAD, M_ROWS, M_ROWSUM, M_SCALE,
                           M_W, N_DIMS, STRENGTH_HEAD, U_CAT, U_CONV1_IN, U_CONV2_IN, U_HR,
                           U_SIZE, U_STR_IN, NetworkState, NetworkWeights, make_state,
                           pack_weights, reset_state)
from .network_reference import float_reference
from .network_vnni import _mv_u8, _network_step_vnni, vnni_available, vnni_step_function

__all__ = [
    "quantize_rows",
    "dequantize_weights",
    "quantize_weights",
    "random_float_weights",
    "random_weights",
    "weight_layout",
    "validate_weights",
    "float_reference",
    "vnni_available",
    "NetworkWeights",
    "NetworkState",
    "pack_weights",
    "make_state",
    "reset_state",
    "network_step",
    "vnni_step_function",
    "Network",
]


class Network:
    """The int8 network with its state, one :meth:`step` per 10 ms frame.

    ``use_vnni``: None picks the VNNI path when :func:`vnni_available`, True demands it
    (ValueError without VNNI), False forces the portable path. The constructor validates the
    weights, packs them and compiles the step (one warm-up frame, then :meth:`reset`), so the
    audio thread never triggers compilation.
    From other njit code: ``step_function(weights, state, features, gains_out, strengths_out)``.
    """

    def __init__(self, arch: dict, weights: dict, *, use_vnni: bool | None = None) -> None:
        validate_weights(arch, weights)
        self.arch = dict(arch)
        available = vnni_available()
        if use_vnni is None:
            use_vnni = available
        elif use_vnni and not available:
            raise ValueError("use_vnni=True but this CPU (or numba's target) has no AVX-512 VNNI")
        self.uses_vnni = bool(use_vnni)
        self.weights = pack_weights(arch, weights)
        self.state = make_state(self.weights)
        self.step_function = _network_step_vnni if self.uses_vnni else network_step
        self.n_weights = int(sum(weights[k].size for k, (dt, _) in weight_layout(self.arch).items()
                                 if dt == np.int8))
        self.n_features, self.n_bands = int(arch["n_features"]), int(arch["n_bands"])
        self._in_shape, self._out_shape = (self.n_features,), (self.n_bands,)
        self._features = np.zeros(self.n_features)
        self.step(np.zeros(self.n_features), np.zeros(self.n_bands), np.zeros(self.n_bands))
        self.reset()

    def reset(self) -> None:
        """Forget all state (a new stream starts)."""
        reset_state(self.state)

    def step(self, features: np.ndarray, gains_out: np.ndarray, strengths_out: np.ndarray) -> None:
        """One frame: features [70] (float64; other real dtypes are copied into a float64
        buffer first) -> gains_out, strengths_out [34] (float64, written in place)."""
        if (features.shape != self._in_shape or gains_out.shape != self._out_shape
                or strengths_out.shape != self._out_shape):
            raise ValueError(f"step expects features {self._in_shape} and outputs {self._out_shape}, "
                             f"got {features.shape}, {gains_out.shape}, {strengths_out.shape}")
        if gains_out.dtype != np.float64 or strengths_out.dtype != np.float64:
            raise ValueError("step writes float64 gains_out and strengths_out")
        if features.dtype != np.float64:
            np.copyto(self._features, features)  # one compiled specialisation only
            features = self._features
        self.step_function(self.weights, self.state, features, gains_out, strengths_out)

    def run(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Convenience (allocates): step through a sequence [T, 70] from the current state."""
        f = np.asarray(features, dtype=np.float64)
        gains, strengths = np.empty((f.shape[0], self.n_bands)), np.empty((f.shape[0], self.n_bands))
        for t in range(f.shape[0]):
            self.step(f[t], gains[t], strengths[t])
        return gains, strengths

    def state_arrays(self) -> dict:
        """Named float32 views of the state (for tests and debugging): conv1_in, conv2_in,
        c2, gru0 .. gru{L-1}, gru_gain, gru_strength."""
        a, dims, arch = self.state.act, self.weights.dims, self.arch
        out = {
            "conv1_in": a[dims[A_CONV1_IN]:dims[A_CONV1_IN] + arch["conv1_kernel"] * arch["dense"]],
            "conv2_in": a[dims[A_CONV2_IN]:dims[A_CONV2_IN] + arch["conv2_kernel"] * arch["conv1"]],
        }
        off = int(dims[A_CAT])
        for name, n in [("c2", arch["conv2"])] + [(f"gru{i}", h) for i, h in enumerate(arch["gru"])] \
                + [("gru_gain", arch["gru_gain"])]:
            out[name], off = a[off:off + n], off + n
        out["gru_strength"] = a[dims[A_HR]:dims[A_HR] + arch["gru_strength"]]
        return out
