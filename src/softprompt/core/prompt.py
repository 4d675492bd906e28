"""What every prompt method provides. ``forward`` code only ever sees a :class:`Contribution`."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import torch
from torch import nn

from softprompt.core.arch import BackboneInfo

if TYPE_CHECKING:
    from softprompt.core.bank import PromptModule


@dataclass
class Contribution:
    """A prompt's effect on the backbone, identical for every row that uses it.

    ``embeds``: (P_e, H) virtual input tokens, placed where the row's ``insert_at`` says (default: prepended).
    ``kv``: (S, 2, H_kv, P_kv, D) key/value prefix for each attention slot of the backbone.
    """

    embeds: torch.Tensor | None = None
    kv: torch.Tensor | None = None

    @property
    def num_embeds(self) -> int:
        return 0 if self.embeds is None else self.embeds.shape[0]

    @property
    def num_kv(self) -> int:
        return 0 if self.kv is None else self.kv.shape[3]


@dataclass
class InitContext:
    """What a method may use to initialize itself: the frozen embeddings, a tokenizer, task words."""

    info: BackboneInfo
    embeddings: torch.Tensor  # (V, H) the backbone's input embedding matrix (frozen)
    tokenizer: Any = None
    label_words: list[str] = field(default_factory=list)
    init_token_ids: list[int | None] = field(default_factory=list)
    """Per virtual token, a token id to start from (a template's {soft:"words"} slots); None = method default."""
    seed: int = 0
    token_kv: Any = None
    """Callable: token ids -> the frozen model's own keys/values for them, (S, 2, H_kv, P, D)."""
    embed_tokens: Any = None
    """Callable: token ids -> what the backbone's embedding *module* outputs for them, (n, H) float32. Word-based
    inits start there, not at raw rows of ``embeddings``: some modules scale their output (Gemma by
    sqrt(hidden), BART with ``scale_embedding``), and virtual tokens enter where that output does."""


@dataclass(kw_only=True)
class MethodConfig:
    """Base of every method config; subclasses add fields with attribute docstrings and checks."""

    num_virtual_tokens: int = 20
    """Virtual tokens (input tokens or prefix positions) this prompt adds; 1..4096."""

    method: str = ""

    def to_json(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def eject_in_eval(module: nn.Module) -> Contribution:
    """``module.contribute()`` computed once the way inference computes it (dropout off, ``no_grad``), detached.

    Inference (eval / predict / generate) always runs without autograd, and some kernels differ without it
    (an LSTM takes another one: up to 6e-4 apart on real models), so the ejected form is computed on that path.
    """
    was = module.training
    module.eval()
    try:
        with torch.no_grad():
            c: Contribution = module.contribute()  # type: ignore[operator]  # a PromptMethod; torch types Module attributes as Tensor | Module
    finally:
        module.train(was)
    return Contribution(
        embeds=None if c.embeds is None else c.embeds.detach().clone(),
        kv=None if c.kv is None else c.kv.detach().clone(),
    )


def seeded_init(init: Callable[..., None]) -> Callable[..., None]:
    """Decorate a method module's ``__init__(self, config, ctx)``: its parameters are drawn from ``ctx.seed``
    on a forked CPU generator, so building a prompt never touches (reseeds or advances) the global RNG."""

    @functools.wraps(init)
    def wrapper(self: nn.Module, config: MethodConfig, ctx: InitContext, *args: Any, **kwargs: Any) -> None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(ctx.seed)
            init(self, config, ctx, *args, **kwargs)

    return wrapper


@runtime_checkable
class PromptMethod(Protocol):
    """A trainable prompt: an ``nn.Module`` with these members (see methods/*.py)."""

    config: MethodConfig

    def contribute(self) -> Contribution: ...

    def eject(self) -> Contribution:
        """The inference form: plain tensors, reparameterization removed."""
        ...


METHODS: dict[str, tuple[type[MethodConfig], type]] = {}
"""The method table: name -> (config class, module class). Filled by ``softprompt.methods`` (one row per method)."""


def register(name: str, config_cls: type[MethodConfig], module_cls: type) -> None:
    """Add a method to the table (``softprompt/methods/__init__.py`` registers every built-in one)."""
    METHODS[name] = (config_cls, module_cls)


def build(config: MethodConfig, ctx: InitContext) -> PromptModule:
    """Instantiate the module of ``config.method``."""
    from softprompt.errors import ConfigError

    if config.method not in METHODS:
        raise ConfigError(
            f"method {config.method!r} is not registered; known: {', '.join(METHODS) or 'none'}"
        )
    return METHODS[config.method][1](config, ctx)
