"""MPNet's self-attention through torch's fused ``scaled_dot_product_attention``.

transformers 5 runs MPNet (the `embedded` reader and its sentence encoder) with eager attention
only: scores, scaling, relative position bias, mask, softmax and the weighted sum as separate
operations over (batch, heads, tokens, tokens) tensors. torch's SDPA computes the same in one
fused kernel, with the position bias and mask as one additive bias. Same answers, less time a
window on both CPU paths (docs/decisions.md, "Fused attention").
"""
from __future__ import annotations

import torch
from transformers.models.mpnet.modeling_mpnet import MPNetSelfAttention


class FusedMPNetSelfAttention(MPNetSelfAttention):
    """``MPNetSelfAttention`` with the same weights and outputs, computed by SDPA. Asked for the
    attention weights (``output_attentions``), which SDPA does not return, it runs the eager
    computation."""

    def forward(self, hidden_states, attention_mask=None, position_bias=None, output_attentions=False, **kwargs):
        if output_attentions:
            return super().forward(hidden_states, attention_mask, position_bias, output_attentions, **kwargs)
        shape = (*hidden_states.shape[:-1], -1, self.attention_head_size)
        q, k, v = (proj(hidden_states).view(shape).transpose(1, 2) for proj in (self.q, self.k, self.v))
        # eager adds the bias and the mask to the scaled scores: one additive bias to SDPA
        bias = position_bias
        if attention_mask is not None:
            bias = attention_mask if bias is None else bias + attention_mask
        if bias is not None:
            bias = bias.to(q.dtype)
        c = torch.nn.functional.scaled_dot_product_attention(
            q, k, v, attn_mask=bias, dropout_p=self.dropout.p if self.training else 0.0)
        c = c.transpose(1, 2).reshape(*hidden_states.shape[:-1], self.all_head_size)
        return (self.o(c),)


def fuse_attention(model: torch.nn.Module) -> int:
    """Run every MPNet self-attention module of ``model`` through SDPA (in place: the modules keep
    their weights and change class, so copies of them stay fused). Returns how many were changed;
    0 for models without MPNet attention (BERT in transformers 5 uses SDPA already)."""
    changed = 0
    for module in model.modules():
        if type(module) is MPNetSelfAttention:
            module.__class__ = FusedMPNetSelfAttention
            changed += 1
    return changed
