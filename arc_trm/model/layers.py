"""Building blocks of TRM, as the reference defines them (docs/model.md).

Weights are stored in fp32 and cast to the activations' dtype at use (bf16 compute with fp32 master
weights, no autocast). Layers have no biases except the halting head. RMSNorm has no scale.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

# std of a standard normal truncated at +-2: dividing by it makes the truncated draw have the asked std
_TRUNCATED_STD = 0.8796256610342398


def trunc_normal_(tensor: torch.Tensor, std: float) -> torch.Tensor:
    """JAX-style truncated normal at +-2 sigma whose *actual* std equals `std`."""
    corrected = std / _TRUNCATED_STD
    with torch.no_grad():
        return nn.init.trunc_normal_(tensor, mean=0.0, std=corrected, a=-2 * corrected, b=2 * corrected)


def rms_norm(h: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """RMSNorm over the last axis without a learnable scale, computed in fp32."""
    dtype = h.dtype
    h = h.float()
    h = h * torch.rsqrt(h.square().mean(-1, keepdim=True) + eps)
    return h.to(dtype)


class CastedLinear(nn.Module):
    """Linear layer with fp32 weights cast to the input dtype; LeCun truncated-normal init."""

    def __init__(self, in_features: int, out_features: int, bias: bool = False):
        super().__init__()
        self.weight = nn.Parameter(trunc_normal_(torch.empty(out_features, in_features), 1 / math.sqrt(in_features)))
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = None if self.bias is None else self.bias.to(x.dtype)
        return F.linear(x, self.weight.to(x.dtype), bias)


class CastedEmbedding(nn.Module):
    def __init__(self, num_embeddings: int, dim: int, init_std: float, dtype: torch.dtype):
        super().__init__()
        self.embedding_weight = nn.Parameter(trunc_normal_(torch.empty(num_embeddings, dim), init_std))
        self.dtype = dtype

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return F.embedding(ids, self.embedding_weight.to(self.dtype))


class RotaryEmbedding(nn.Module):
    """RoPE tables for `positions` positions; not saved in checkpoints (recomputed)."""

    def __init__(self, head_dim: int, positions: int, theta: float):
        super().__init__()
        inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
        angles = torch.outer(torch.arange(positions, dtype=torch.float32), inv_freq)
        angles = torch.cat((angles, angles), dim=-1)  # (L, head_dim)
        self.register_buffer("cos", angles.cos(), persistent=False)
        self.register_buffer("sin", angles.sin(), persistent=False)


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    first, second = x.chunk(2, dim=-1)
    return torch.cat((-second, first), dim=-1)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    # x: (B, L, heads, head_dim); cos/sin: (L, head_dim). Rotated in fp32 like the reference.
    dtype = x.dtype
    x = x.float()
    return (x * cos[:, None, :] + _rotate_half(x) * sin[:, None, :]).to(dtype)


class Attention(nn.Module):
    """Non-causal multi-head attention with one fused QKV projection (rows: q heads, k heads, v heads)."""

    def __init__(self, hidden: int, heads: int):
        super().__init__()
        self.heads, self.head_dim = heads, hidden // heads
        self.qkv_proj = CastedLinear(hidden, 3 * hidden)
        self.o_proj = CastedLinear(hidden, hidden)

    def forward(self, h: torch.Tensor, rope: RotaryEmbedding | None) -> torch.Tensor:
        B, L, D = h.shape
        qkv = self.qkv_proj(h).view(B, L, 3, self.heads, self.head_dim)
        q, k, v = qkv.unbind(dim=2)  # each (B, L, heads, head_dim)
        if rope is not None:
            q, k = apply_rope(q, rope.cos, rope.sin), apply_rope(k, rope.cos, rope.sin)
        out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
        return self.o_proj(out.transpose(1, 2).reshape(B, L, D))


def swiglu_width(hidden: int, expansion: float) -> int:
    """Intermediate width: round(expansion * hidden * 2/3) rounded up to a multiple of 256 (reference),
    at least 256 (a tiny expansion rounds to 0, a layer without inputs)."""
    width = max(1, round(expansion * hidden * 2 / 3))
    return -(-width // 256) * 256


class SwiGLU(nn.Module):
    def __init__(self, hidden: int, expansion: float):
        super().__init__()
        width = swiglu_width(hidden, expansion)
        self.gate_up_proj = CastedLinear(hidden, 2 * width)  # first half gate, second half up
        self.down_proj = CastedLinear(width, hidden)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        gate, up = self.gate_up_proj(h).chunk(2, dim=-1)
        return self.down_proj(F.silu(gate) * up)


class Block(nn.Module):
    """Post-norm block: h = norm(h + mix(h)); h = norm(h + SwiGLU(h)).

    The mixer is attention, or (`mlp_t`, Sudoku) a SwiGLU along the sequence axis. With `mlp_t` the
    reference normalises while the tensor is still transposed, i.e. over the sequence axis; kept as is.
    """

    def __init__(self, hidden: int, heads: int, expansion: float, mixer: str, seq_len: int, eps: float):
        super().__init__()
        self.eps = eps
        if mixer == "attention":
            self.self_attn = Attention(hidden, heads)
        else:
            self.mlp_t = SwiGLU(seq_len, expansion)
        self.mlp = SwiGLU(hidden, expansion)

    def forward(self, h: torch.Tensor, rope: RotaryEmbedding | None) -> torch.Tensor:
        if hasattr(self, "self_attn"):
            h = rms_norm(h + self.self_attn(h, rope), self.eps)
        else:
            h_t = h.transpose(1, 2)  # (B, D, L)
            h = rms_norm(h_t + self.mlp_t(h_t), self.eps).transpose(1, 2)
        return rms_norm(h + self.mlp(h), self.eps)
