"""Label log-probabilities from a forward's logits, aligned with the caller's tokens (every backbone kind), and
which positions' vocabulary logits a causal forward computes and hands back."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from softprompt.core.inject import Expanded


def next_targets(exp: Expanded, labels: torch.Tensor) -> torch.Tensor:
    """(B, T) the label each expanded position predicts (the next element's), -100 where none."""
    return F.pad(exp.scatter_labels(labels)[:, 1:], (0, 1), value=-100)


def _logp(lg: torch.Tensor, lb: torch.Tensor) -> torch.Tensor:
    """(B, N, V), (B, N) -> (B, N) log-probabilities; flat rows: cross-entropy's fast contiguous layout."""
    flat = F.cross_entropy(
        lg.reshape(-1, lg.shape[-1]).float(), lb.reshape(-1), ignore_index=-100, reduction="none"
    )
    return -flat.view(lb.shape)


def label_logprobs(
    kind: str,
    logits: torch.Tensor,
    labels: torch.Tensor,
    exp: Expanded,
    scored: torch.Tensor | None = None,
    keep: torch.Tensor | None = None,
) -> torch.Tensor:
    """log p(label_j) per caller token (B, L): causal LMs predict from the previous *expanded* element.

    Causal ``logits`` are (B, T, V) over the expanded sequence, or (B, K, V) at positions ``keep`` only;
    seq2seq logits are decoder-aligned; encoders' are expanded-aligned.
    """
    if kind == "causal":
        scored = next_targets(exp, labels) if scored is None else scored  # (B, T)
        keep = torch.arange(scored.shape[1], device=scored.device) if keep is None else keep
        at_keep = _logp(logits, scored[:, keep])  # (B, K): position p scores element p + 1
        B, T = scored.shape  # entry t of ``shifted`` scores element t (one spare column for p = T - 1)
        shifted = at_keep.new_zeros(B, T + 1).index_copy(1, keep + 1, at_keep)[:, :T]
        return exp.gather(shifted) * (labels != -100)
    if kind == "seq2seq":
        return _logp(logits, labels)
    return _logp(exp.gather(logits), labels)


def logits_to_keep(
    exp: Expanded, labels: torch.Tensor | None, last_only: bool, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor | None] | tuple[None, None]:
    """(keep, scored) for a causal LM: the expanded positions whose vocabulary logits are worth computing, on
    the LM head's ``device`` (None = every position), and with labels each position's next target (-100 =
    none). With labels: only where some row predicts a label (virtual tokens and padding skipped); with
    ``last_only``: each row's last element, shared by the batch."""
    scored = None
    if labels is not None:
        scored = next_targets(exp, labels.to(exp.mask.device))
        keep = (scored != -100).any(0).nonzero().squeeze(1)
    elif last_only:
        keep = torch.unique(exp.last_pos)
    else:
        return None, None
    return keep.to(device), scored


def next_and_caller_logits(
    logits: torch.Tensor, exp: Expanded, keep: torch.Tensor | None, labeled: bool, last_only: bool
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """(next_logits, logits): each row's logits after its last element (None when only label positions were
    computed, which need not hold it), and the logits back in the caller's layout (None when only some
    positions were computed or ``last_only``)."""
    next_logits = None
    if keep is None or not labeled:
        rows = torch.arange(logits.shape[0], device=logits.device)
        last = exp.last_pos.to(logits.device)
        col = last if keep is None else torch.searchsorted(keep.to(logits.device), last)
        next_logits = logits[rows, col]
    return next_logits, None if keep is not None or last_only else exp.gather(logits)
