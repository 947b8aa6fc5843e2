"""Stand-in for the reference's ``package/transformer_layer.py`` (doc 2.3, ROI trunk).

``my_Block_2`` is a pre-LN transformer block on a feature map's HW tokens: no positional
encoding, no CLS token and, despite ``CausalSelfAttention``'s name, no mask. Separate
key / query / value Linear(C, C) (registered in that order, as in the reference), scale
1 / sqrt(C / heads), softmax, output projection; MLP Linear(C, 4C), GELU2 (x * sigmoid(1.702 x)),
Linear(4C, C). All dropouts are p = 0.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn


class GELU2(nn.Module):
    def forward(self, x):
        return x * torch.sigmoid(1.702 * x)


class CausalSelfAttention(nn.Module):
    def __init__(self, n_embd, n_head=8, attn_pdrop=0.0, resid_pdrop=0.0):
        super().__init__()
        if n_embd % n_head != 0:
            raise ValueError(f"n_embd {n_embd} is not a multiple of n_head {n_head}")
        self.key = nn.Linear(n_embd, n_embd)
        self.query = nn.Linear(n_embd, n_embd)
        self.value = nn.Linear(n_embd, n_embd)
        self.attn_drop = nn.Dropout(attn_pdrop)
        self.resid_drop = nn.Dropout(resid_pdrop)
        self.proj = nn.Linear(n_embd, n_embd)
        self.n_head = n_head

    def forward(self, x):
        b, t, c = x.size()
        k = self.key(x).view(b, t, self.n_head, c // self.n_head).transpose(1, 2)
        q = self.query(x).view(b, t, self.n_head, c // self.n_head).transpose(1, 2)
        v = self.value(x).view(b, t, self.n_head, c // self.n_head).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
        att = F.softmax(att, dim=-1)
        att = self.attn_drop(att)
        y = att @ v
        y = y.transpose(1, 2).contiguous().view(b, t, c)
        y = self.resid_drop(self.proj(y))
        return y


class my_Block_2(nn.Module):
    def __init__(self, n_embd, n_head=8, attn_pdrop=0.0, resid_pdrop=0.0):
        super().__init__()
        self.ln1 = nn.LayerNorm(n_embd)
        self.ln2 = nn.LayerNorm(n_embd)
        self.attn = CausalSelfAttention(n_embd, n_head, attn_pdrop, resid_pdrop)
        self.mlp = nn.Sequential(
            nn.Linear(n_embd, 4 * n_embd),
            GELU2(),
            nn.Linear(4 * n_embd, n_embd),
            nn.Dropout(resid_pdrop),
        )

    def forward(self, x):
        b, c, h, w = x.shape
        x = x.view(b, c, h * w).transpose(1, 2).contiguous()
        x = x + self.attn(self.ln1(x))
        x = x + self.mlp(self.ln2(x))
        x = x.transpose(1, 2).contiguous().view(b, c, h, w)
        return x
