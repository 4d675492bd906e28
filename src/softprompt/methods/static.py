"""The inference form every method ejects to: stored embeddings and/or key/value prefixes, no encoder."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from softprompt.core.prompt import Contribution, InitContext, Method, MethodConfig, PeftMapping


@dataclass(kw_only=True)
class StaticConfig(MethodConfig):
    """Plain tensors; built by ``eject`` or loaded from an inference-form file."""

    method: str = "static"
    source_method: str = ""
    """The method that was trained and ejected into this form."""


class StaticPrompt(nn.Module):
    def __init__(
        self, config: StaticConfig, ctx: InitContext | None = None, contribution: Contribution | None = None
    ):
        super().__init__()
        self.config = config
        c = contribution or Contribution()
        self.embeds = None if c.embeds is None else nn.Parameter(c.embeds.detach().clone())
        self.kv = None if c.kv is None else nn.Parameter(c.kv.detach().clone())

    def contribute(self) -> Contribution:
        return Contribution(embeds=self.embeds, kv=self.kv)

    def eject(self) -> Contribution:
        return Contribution(
            embeds=None if self.embeds is None else self.embeds.detach().clone(),
            kv=None if self.kv is None else self.kv.detach().clone(),
        )

    @classmethod
    def from_tensors(cls, tensors: dict[str, torch.Tensor], config: StaticConfig) -> StaticPrompt:
        return cls(config, contribution=Contribution(embeds=tensors.get("embeds"), kv=tensors.get("kv")))


METHOD = Method(
    config=StaticConfig,
    module=StaticPrompt,
    from_tensors=StaticPrompt.from_tensors,
    peft=PeftMapping(),  # exported by what it holds: embeddings as PROMPT_TUNING, a prefix as PREFIX_TUNING
    listed=False,  # built by eject and loading, never chosen by name
)
