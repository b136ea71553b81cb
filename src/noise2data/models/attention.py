"""Self-attention with the weights of an ``nn.MultiheadAttention`` and the arithmetic written out.

On a CPU, torch's fused attention kernel is slower than two matrix products for the few hundred
positions that the U-Net's low-resolution levels and a small DiT's patches give (for the tiny U-Net's
7x7 level it was ~15% of a training step), so there the product is computed directly; on a GPU the
fused kernel is used. The weights stay in ``nn.MultiheadAttention``, so checkpoints do not change.
"""

from __future__ import annotations

from torch import Tensor, nn


def self_attention(mha: nn.MultiheadAttention, seq: Tensor) -> Tensor:
    """``mha(seq, seq, seq)`` without the weights: ``seq: (B, L, E)`` -> ``(B, L, E)``."""
    b, n, e = seq.shape
    heads = mha.num_heads
    qkv = nn.functional.linear(seq, mha.in_proj_weight, mha.in_proj_bias)  # (B, L, 3E)
    q, k, v = qkv.view(b, n, 3, heads, e // heads).permute(2, 0, 3, 1, 4)  # (B, heads, L, E/heads) each
    if seq.is_cuda:
        out = nn.functional.scaled_dot_product_attention(q, k, v)
    else:
        out = (q @ k.transpose(-1, -2) * (e // heads) ** -0.5).softmax(-1) @ v
    return mha.out_proj(out.transpose(1, 2).reshape(b, n, e))


__all__ = ["self_attention"]
