"""The only place that knows how virtual tokens enter the input sequence.

Each row's virtual-token embeddings are inserted among its real tokens (before real token ``insert_at[k]``, in
content order; prepending is ``insert_at = 0``). The expanded batch is re-padded so every row's content sits
contiguously (left or right), and position ids restart per row at ``offset`` (the row's number of key/value
prefix positions, which occupy the positions before it). Rows therefore see exactly what they would see alone,
whatever the other rows' prompt lengths or padding. ``real_pos`` maps outputs back onto the caller's tokens.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch

from softprompt.errors import InputTooLong


@dataclass
class Expanded:
    embeds: torch.Tensor  # (B, T, H)
    mask: torch.Tensor  # (B, T) long
    position_ids: torch.Tensor  # (B, T)
    real_pos: torch.Tensor  # (B, L): expanded index of each caller token (pads -> 0)
    real_valid: torch.Tensor  # (B, L) bool: caller tokens that are real (not padding)
    last_pos: torch.Tensor  # (B,): expanded index of each row's last content element

    def scatter_labels(self, labels: torch.Tensor, ignore: int = -100) -> torch.Tensor:
        """Caller-aligned labels (B, L) -> expanded labels (B, T); virtual and pad positions get ``ignore``."""
        out = labels.new_full((labels.shape[0], self.mask.shape[1] + 1), ignore)
        idx = torch.where(self.real_valid, self.real_pos, self.mask.shape[1]).to(labels.device)
        return out.scatter(1, idx, labels)[:, :-1]

    def gather(self, x: torch.Tensor) -> torch.Tensor:
        """Expanded-aligned (B, T, ...) -> caller-aligned (B, L, ...)."""
        idx = self.real_pos.to(x.device).view(*self.real_pos.shape, *([1] * (x.dim() - 2)))  # x: any layer's
        return x.gather(1, idx.expand(-1, -1, *x.shape[2:]))


def _insert_positions(insert_at, virtual_mask, n_real) -> torch.Tensor:
    """(B, P) content index each virtual slot goes before: prepended by default, unused slots at the row's
    end; one past the row's end is an error."""
    if insert_at is None:
        insert_at = torch.zeros(virtual_mask.shape, dtype=torch.long, device=n_real.device)
    insert_at = torch.where(virtual_mask, insert_at, n_real[:, None])
    if (insert_at > n_real[:, None]).any():
        raise InputTooLong("a virtual token is placed after the end of its row's tokens (insert_at > length)")
    return insert_at


def _scatter(embeds, virtual, real_idx, virt_idx, T: int) -> torch.Tensor:
    """(B, T, H): real and virtual embeddings written to their expanded columns (index T is a scratch column
    for pads and unused slots, dropped)."""
    B, _, H = embeds.shape
    idx = torch.cat([real_idx, virt_idx], 1)  # (B, L + P)
    src = torch.cat([embeds, virtual.to(embeds.dtype)], 1)  # (B, L + P, H)
    return embeds.new_zeros(B, T + 1, H).scatter(1, idx[..., None].expand(-1, -1, H), src)[:, :T]


def expand(
    embeds: torch.Tensor,
    attention_mask: torch.Tensor,
    virtual: torch.Tensor | None,
    virtual_mask: torch.Tensor | None,
    insert_at: torch.Tensor | None,
    offset: torch.Tensor,
    *,
    left_pad: bool,
    position_base: int = 0,
    max_positions: int | None = None,
) -> Expanded:
    """Insert virtual tokens into a padded batch (shapes in the comments).

    Args:
        embeds: (B, L, H) embeddings of the caller's tokens.
        attention_mask: (B, L) 1 for real tokens (left or right padded).
        virtual: (B, P, H) virtual-token embeddings, or None.
        virtual_mask: (B, P) bool, which virtual slots row b uses (valid ones first).
        insert_at: (B, P) content index each virtual token goes before; None = prepend.
        offset: (B,) positions taken before the sequence (key/value prefix length).
        left_pad: lay the expanded batch out left-padded (generation) or right-padded.
        position_base: first position id (RoBERTa counts from padding_idx + 1).
        max_positions: the context limit, checked against offset + expanded length (InputTooLong).
    """
    B, _L, H = embeds.shape
    real = attention_mask.bool()  # (B, L)
    rank = real.long().cumsum(1) - 1  # (B, L) content index of each real token
    n_real = real.sum(1)  # (B,)
    if virtual is None or virtual.shape[1] == 0:
        virtual = embeds.new_zeros(B, 0, H)
        virtual_mask = real.new_zeros(B, 0)
    elif virtual_mask is None:  # every row uses all of its virtual tokens
        virtual_mask = real.new_ones(B, virtual.shape[1])
    P = virtual.shape[1]
    insert_at = _insert_positions(insert_at, virtual_mask, n_real)
    n_virt = virtual_mask.sum(1)
    length = n_real + n_virt  # (B,)
    T = int(length.max()) if B else 0
    if max_positions is not None and B:
        fit_context(attention_mask, n_virt + offset, max_positions)
    start = (T - length) if left_pad else torch.zeros_like(length)  # (B,)
    # content position of real token with rank c: c + number of valid virtual tokens inserted at <= c
    before = (insert_at[:, None, :] <= rank[:, :, None]) & virtual_mask[:, None, :]  # (B, L, P)
    real_content = rank + before.sum(-1)
    virt_content = insert_at + torch.arange(P, device=embeds.device)[None, :]  # valid ones are first
    dump = T  # index of a scratch column for pads / unused slots
    real_idx = torch.where(real, start[:, None] + real_content, dump)
    virt_idx = torch.where(virtual_mask, start[:, None] + virt_content, dump)
    out = _scatter(embeds, virtual, real_idx, virt_idx, T)
    cols = torch.arange(T, device=embeds.device)[None, :]
    mask = ((cols >= start[:, None]) & (cols < (start + length)[:, None])).long()  # (B, T)
    pos = (cols - start[:, None] + offset[:, None]).clamp(min=0) * mask + position_base
    return Expanded(
        embeds=out,
        mask=mask,
        position_ids=pos,
        real_pos=torch.where(real, real_idx, 0),
        real_valid=real,
        last_pos=start + length - 1,
    )


def fit_context(
    attention_mask: torch.Tensor,
    extra: torch.Tensor | int,
    limit: int | None,
    *,
    truncate: bool = False,
    new_tokens: int = 0,
    truncate_hint: str = "",
) -> torch.Tensor:
    """Check that each row's real tokens + ``extra`` (its virtual tokens) + ``new_tokens`` fit in ``limit``.

    Returns ``attention_mask`` unchanged when they fit. Otherwise raises :class:`InputTooLong` naming the
    worst row, or with ``truncate`` warns and returns a mask without each long row's oldest tokens (the last
    ones are kept, which is what generation continues from); a row that cannot keep one token still raises.
    ``truncate_hint`` ends the error message when the caller offers truncation (how to ask for it).
    """
    n_real = attention_mask.bool().sum(1)  # (B,)
    over = n_real + extra + new_tokens - (limit if limit is not None else 0)
    if limit is None or not bool((over > 0).any()):
        return attention_mask
    w = int(over.argmax())
    virt = int(extra[w]) if isinstance(extra, torch.Tensor) else int(extra)
    msg = (
        f"row {w}: {int(n_real[w])} tokens + {virt} virtual tokens"
        + (f" + {new_tokens} new tokens" if new_tokens else "")
        + f" = {int(n_real[w]) + virt + new_tokens} positions > the model's {limit} (its context length)"
    )
    if not truncate or bool((n_real - over.clamp(min=0) < 1).any()):
        hint = "shorten the input" + (", lower max_new_tokens" if new_tokens else "")
        raise InputTooLong(f"{msg}; {hint}" + ("" if truncate else truncate_hint))
    warnings.warn(f"{msg}: the oldest {int(over[w])} tokens of that row were dropped", stacklevel=3)
    real = attention_mask.bool()
    from_end = real.flip(1).long().cumsum(1).flip(1) - 1  # (B, L) real tokens after this one
    keep = real & (from_end < (n_real - over.clamp(min=0))[:, None])
    return keep.to(attention_mask.dtype)
