"""The inference form every method ejects to: stored embeddings, key/value prefixes and/or adapter keys/values,
no encoder."""

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
        self.adapter = None if c.adapter is None else nn.Parameter(c.adapter.detach().clone())

    def contribute(self) -> Contribution:
        return Contribution(embeds=self.embeds, kv=self.kv, adapter=self.adapter)

    def eject(self) -> Contribution:
        return Contribution(
            **{k: None if v is None else v.detach().clone() for k, v in vars(self.contribute()).items()}
        )

    @classmethod
    def from_tensors(cls, tensors: dict[str, torch.Tensor], config: StaticConfig) -> StaticPrompt:
        keys = ("embeds", "kv", "adapter")
        return cls(config, contribution=Contribution(**{k: tensors.get(k) for k in keys}))


METHOD = Method(
    config=StaticConfig,
    module=StaticPrompt,
    from_tensors=StaticPrompt.from_tensors,
    peft=PeftMapping(),  # exported by what it holds: embeddings as PROMPT_TUNING, a prefix as PREFIX_TUNING
    listed=False,  # built by eject and loading, never chosen by name
)
