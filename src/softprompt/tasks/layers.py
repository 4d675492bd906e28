"""Task heads on the backbone's last hidden state (P-tuning v2 style): sequence and token classification.

Heads read caller-aligned hidden states, so virtual tokens never reach a head, a token logit or a label.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from softprompt.errors import check_value

Pool = Literal["first", "last", "mean", "max"]


class ClassificationHead(nn.Module):
    """Pool the real tokens ("first" = [CLS]/BOS, "last" = the last real token, "mean", "max" = per feature),
    then a linear layer."""

    def __init__(self, hidden: int, num_labels: int, pool: Pool = "first", dropout: float = 0.1):
        super().__init__()
        check_value("pool", pool, Pool)
        self.pool = pool
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(hidden, num_labels)

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, L, H), (B, L) -> (B, C)."""
        m = mask.to(hidden.dtype)
        rows = torch.arange(hidden.shape[0], device=hidden.device)
        if self.pool == "mean":
            pooled = (hidden * m[..., None]).sum(1) / m.sum(1, keepdim=True).clamp(min=1)
        elif self.pool == "max":
            pooled = hidden.masked_fill(~mask.bool()[..., None], torch.finfo(hidden.dtype).min).amax(1)
        elif self.pool == "first":
            pooled = hidden[rows, mask.long().argmax(1)]
        else:
            last = mask.shape[1] - 1 - mask.long().flip(1).argmax(1)
            pooled = hidden[rows, last]
        return self.classifier(self.dropout(pooled))


class TokenClassificationHead(nn.Module):
    """A linear layer per token: (B, L, H) -> (B, L, num_tags)."""

    def __init__(self, hidden: int, num_tags: int, dropout: float = 0.1):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(hidden, num_tags)

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.classifier(self.dropout(hidden))
