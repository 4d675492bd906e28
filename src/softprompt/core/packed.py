"""Several groups of rows in ONE forward: their tokens packed into one sequence, each group attending to its own
cache.

The serving engine decodes the running rows (one token each, on their cache) and feeds the joining rows' next
prefill chunk (several columns each, on their own cache) in the same backbone call: the tokens of every group
are laid end to end in one row (``(1, Q, H)`` embeddings, each token with its own position), so every linear
layer runs once over all of them. At each attention layer :func:`attend` cuts the packed queries, keys and
values back into the groups (``Part``), appends each group's new keys/values to its cache, and runs the layer's
attention for each group with its own mask and key/value prefix — exactly the attention the group would get
in a forward of its own. The backbone is called without a cache (``use_cache=False``); the caches live here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch


@dataclass
class Part:
    """One group of ``rows`` rows feeding ``cols`` new columns each, packed row after row."""

    rows: int
    cols: int
    mask: torch.Tensor
    """(rows, 1, cols, T + cols) bool: which cached and new columns each new query sees."""
    past: list[tuple[torch.Tensor, torch.Tensor]] | None = None
    """Each attention slot's cached (keys, values), (rows, H_kv, T, D) each; None when nothing is cached."""
    prefix: Any = None
    """The group's per-row key/value prefix (a ``kv.KVPrefix``), or None."""
    cache: dict[int, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)
    """Filled by the forward: each slot's keys/values, past and new columns, (rows, H_kv, T + cols, D)."""

    @property
    def tokens(self) -> int:
        return self.rows * self.cols

    def layers(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """The cache after the forward, slot by slot (the order of a causal model's layers)."""
        return [self.cache[s] for s in range(len(self.cache))]


@dataclass
class Packed:
    """The groups of one packed forward, in packing order (passed as the ``softprompt_kv`` keyword)."""

    parts: list[Part]


def causal_mask(attn: torch.Tensor, start: int, cols: int) -> torch.Tensor:
    """(n, 1, cols, start + cols) bool: query column ``start + i`` sees key columns ``<= start + i`` that are real
    in ``attn`` (n, start + cols); a query that would see nothing (left padding) sees every column instead, so no
    softmax row is empty (its output is never used)."""
    width = start + cols
    j = torch.arange(width, device=attn.device)[None, :]
    i = torch.arange(start, width, device=attn.device)[:, None]
    mask = attn[:, None, None, :width].bool() & (j <= i)[None, None]  # (n, 1, cols, width)
    return mask | ~mask.any(-1, keepdim=True)


def attend(
    state: Packed,
    module: torch.nn.Module,
    slot: int,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    kwargs: dict[str, Any],
    attention: Callable[..., tuple[torch.Tensor, Any]],
) -> tuple[torch.Tensor, None]:
    """One attention layer of a packed forward: (1, H, Q, D) query, (1, H_kv, Q, D) new keys/values; each part
    runs ``attention`` (the per-row prefix function) on its own rows; returns the packed output (1, Q, H, D)."""
    outs, start = [], 0
    for part in state.parts:
        end = start + part.tokens

        def rows(x: torch.Tensor, a: int = start, b: int = end, p: Part = part) -> torch.Tensor:
            return x[0, :, a:b].unflatten(1, (p.rows, p.cols)).transpose(0, 1)  # (rows, heads, cols, D)

        q, k, v = rows(query), rows(key), rows(value)
        if part.past is not None:
            past_k, past_v = part.past[slot]
            k, v = torch.cat([past_k, k], 2), torch.cat([past_v, v], 2)  # (rows, H_kv, T + cols, D)
        part.cache[slot] = (k, v)
        kw = {**kwargs, "is_causal": False}
        if part.prefix is not None:
            kw["softprompt_kv"] = part.prefix
        out, _ = attention(module, q, k, v, part.mask, **kw)  # (rows, cols, H, D)
        outs.append(out.reshape(1, part.tokens, *out.shape[2:]))
        start = end
    return torch.cat(outs, 1), None
