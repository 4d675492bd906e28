"""Hard prompts: a hand-written template and a verbalizer, nothing trained."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from softprompt.core.prompt import Contribution, InitContext, Method, MethodConfig


@dataclass(kw_only=True)
class HardConfig(MethodConfig):
    """A template only; the text of the prompt lives in the prompt's template."""

    method: str = "hard"
    num_virtual_tokens: int = 0

    def __post_init__(self):
        self.num_virtual_tokens = 0


class HardPrompt(nn.Module):
    def __init__(self, config: HardConfig, ctx: InitContext | None = None):
        super().__init__()
        self.config = config

    def contribute(self) -> Contribution:
        return Contribution()

    def eject(self) -> Contribution:
        return Contribution()


METHOD = Method(config=HardConfig, module=HardPrompt)  # nothing to train, nothing PEFT stores
