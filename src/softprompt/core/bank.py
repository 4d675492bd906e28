"""Many prompts on one frozen backbone, and per-row selection for mixed batches."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

import torch
from torch import nn

from softprompt.core.prompt import Contribution
from softprompt.errors import ConfigError

if TYPE_CHECKING:
    from softprompt.core.prompt import MethodConfig

    class PromptModule(nn.Module):
        """What the bank holds, for the type checker: an ``nn.Module`` with ``core.prompt.PromptMethod``'s
        members (methods are plain modules that satisfy the protocol; none inherits from this class)."""

        config: MethodConfig

        def contribute(self) -> Contribution: ...

        def eject(self) -> Contribution: ...


NAME = re.compile(r"^[A-Za-z0-9_\-]{1,128}$")


@dataclass
class BatchPrompt:
    """Per-row prompt tensors for one batch (rows without a prompt have empty masks)."""

    embeds: torch.Tensor | None  # (B, P_e, H)
    embeds_mask: torch.Tensor | None  # (B, P_e) bool
    kv: torch.Tensor | None  # (S, 2, B, H_kv, P_kv, D)
    kv_mask: torch.Tensor | None  # (B, P_kv) bool
    adapter: torch.Tensor | None = None  # (S, 2, B, H_kv, P_a, D)
    adapter_mask: torch.Tensor | None = None  # (B, P_a) bool

    @property
    def offset(self) -> torch.Tensor | None:
        return None if self.kv_mask is None else self.kv_mask.sum(1)


def rows_of(prompts: str | Sequence[str | None] | None, batch: int) -> list[str | None]:
    """Normalize the ``prompts`` argument to one name (or None) per row."""
    if prompts is None or isinstance(prompts, str):
        return [prompts] * batch
    rows = list(prompts)
    if len(rows) != batch:
        raise ConfigError(f"prompts has {len(rows)} entries for a batch of {batch} rows")
    return rows


def _stack(parts: Sequence[torch.Tensor | None], dim: int) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Pad each part along ``dim`` to the longest and stack; None parts become empty (zeros, mask False)."""
    longest = max((p.shape[dim] for p in parts if p is not None), default=0)
    if longest == 0:
        return None, None
    ref = next(p for p in parts if p is not None)
    out, mask = [], []
    for p in parts:
        if p is None:
            p = ref.new_zeros(*ref.shape[:dim], 0, *ref.shape[dim + 1 :])
        n = p.shape[dim]
        pad = [0, 0] * (p.dim() - dim - 1) + [0, longest - n]
        out.append(nn.functional.pad(p, pad))
        mask.append(torch.arange(longest, device=p.device) < n)
    return torch.stack(out), torch.stack(mask)


class PromptBank(nn.Module):
    """A named collection of prompt modules; ``batch`` builds per-row tensors for a mixed batch."""

    def __init__(self) -> None:
        super().__init__()
        self.prompts = nn.ModuleDict()

    def add(self, name: str, module: nn.Module) -> None:
        if not NAME.match(name or ""):
            raise ConfigError(f"prompt name {name!r}: use 1-128 letters, digits, '_' or '-'")
        if name in self.prompts:
            raise ConfigError(f"a prompt named {name!r} is already in the bank; remove it first")
        self.prompts[name] = module

    def remove(self, name: str) -> None:
        self.get(name)
        del self.prompts[name]

    def get(self, name: str) -> PromptModule:
        if name not in self.prompts:
            known = ", ".join(self.prompts) or "none"
            raise ConfigError(f"no prompt named {name!r} in the bank (loaded: {known})")
        return cast("PromptModule", self.prompts[name])

    def __contains__(self, name: str) -> bool:
        return name in self.prompts

    def names(self) -> list[str]:
        return list(self.prompts)

    def batch(self, rows: list[str | None], overrides: dict[str, Contribution] | None = None) -> BatchPrompt:
        """Each distinct prompt is computed once, then rows index into the stack."""
        unique = list(dict.fromkeys(r for r in rows if r is not None))
        if not unique:
            return BatchPrompt(None, None, None, None)
        overrides = overrides or {}
        contribs = [overrides[n] if n in overrides else self.get(n).contribute() for n in unique]
        which = torch.tensor([0 if r is None else unique.index(r) + 1 for r in rows])
        embeds, emask = _stack([None] + [c.embeds for c in contribs], 0)  # (U+1, P_e, H)
        kvs, kmask = _stack([None] + [c.kv for c in contribs], 3)  # (U+1, S, 2, H_kv, P, D)
        out = BatchPrompt(None, None, None, None)
        if embeds is not None and emask is not None:
            w = which.to(embeds.device)
            out.embeds, out.embeds_mask = embeds[w], emask[w]
        if kvs is not None and kmask is not None:
            w = which.to(kvs.device)
            out.kv, out.kv_mask = kvs[w].permute(1, 2, 0, 3, 4, 5), kmask[w]  # (S, 2, B, H_kv, P, D)
        adapters, amask = _stack([None] + [c.adapter for c in contribs], 3)  # (U+1, S, 2, H_kv, P_a, D)
        if adapters is not None and amask is not None:
            w = which.to(adapters.device)
            out.adapter, out.adapter_mask = adapters[w].permute(1, 2, 0, 3, 4, 5), amask[w]
        return out
