"""Analytic FLOP count of TRM, for throughput and MFU figures (benchmarks/train_throughput.py,
benchmarks/predict_throughput.py).

Matmuls only, at 2 FLOP per multiply-add; norms, activations, RoPE, softmax, the embedding lookup
and the halting head (two outputs from token 0 only) are left out. With D = hidden, L = total_len
(sequence + puzzle prefix) and W = `swiglu_width(D, expansion)`, one layer pass (one `Block`)
costs per token:

- the mixer: attention, 2·D·3D (QKV projection) + 2·D·D (output projection) + 4·L·D (scores
  Q·Kᵀ and the weighted sum of values, each 2·L·D per token); or, for `mixer == "mlp_t"`, a SwiGLU
  of width W_L = `swiglu_width(L, expansion)` along the sequence for each of the D channels,
  6·W_L·L·D per example, i.e. 6·W_L·D per token;
- the channel SwiGLU: 2·D·2W (gate and up projections) + 2·W·D (down projection).

One supervision step applies the network f T·(n+1) times (n z-updates and one y-update per cycle),
each `layers` blocks. Training back-propagates only the last of the T cycles, at twice its forward
cost: 2·(n+1)·layers more layer-pass equivalents. The output head costs 2·D·vocab per token forward,
three times that when training (forward + backward).

For the reference ARC model (`ModelConfig()`: D 512, L 900 + 16, W 1536, T 3, n 4, 2 layers) a layer
pass costs about 8.69 MFLOP per token; a training step is 50 layer-pass equivalents, about 398.1
GFLOP per example, and an inference step 30, about 238.9 GFLOP.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from arc_trm.model.layers import swiglu_width

if TYPE_CHECKING:
    from arc_trm.model.trm import ModelConfig


def flops_per_token_layer(config: ModelConfig) -> float:
    """Matmul FLOP of one layer pass (one block: mixer + channel SwiGLU) per token."""
    L, D = config.total_len, config.hidden
    W = swiglu_width(D, config.expansion)
    if config.mixer == "attention":  # QKV and output projections, scores and values
        mixer = 2 * D * 3 * D + 2 * D * D + 4 * L * D
    elif config.mixer == "mlp_t":  # a SwiGLU over the sequence for each of the D channels, spread over the L tokens
        mixer = 6 * swiglu_width(L, config.expansion) * D
    else:
        raise ValueError(f"model.mixer must be 'attention' or 'mlp_t', not {config.mixer!r}")
    return float(mixer + 2 * D * 2 * W + 2 * W * D)


def layer_passes(config: ModelConfig, training: bool) -> int:
    """Forward layer-pass equivalents per example and supervision step: T·(n+1)·layers forward, plus
    2·(n+1)·layers for the backward of the last cycle when training."""
    forward = config.T * (config.n + 1) * config.layers
    return forward + (2 * (config.n + 1) * config.layers if training else 0)


def flops_per_example_step(config: ModelConfig, training: bool) -> float:
    """Matmul FLOP per example and supervision step: L·(layer passes · per-token layer cost + head),
    the head being 2·D·vocab per token forward, ×3 when training."""
    head = 2 * config.hidden * config.vocab_size * (3 if training else 1)
    return config.total_len * (layer_passes(config, training) * flops_per_token_layer(config) + head)
