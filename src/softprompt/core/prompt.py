"""What every prompt method provides. ``forward`` code only ever sees a :class:`Contribution`."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, is_dataclass
from types import MappingProxyType
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
    ``adapter``: (S, 2, H_kv, P_a, D) keys/values of a second, separately normalized attention per slot whose
    output is added to the slot's own (LLaMA-Adapter's gated attention; the values carry the gate, so zero
    values leave the model exactly unchanged).
    """

    embeds: torch.Tensor | None = None
    kv: torch.Tensor | None = None
    adapter: torch.Tensor | None = None

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
    project_kv: Any = None
    """Callable: (slot, (P, H) hidden states) -> that attention slot's own keys/values for them (no positions),
    (2, H_kv, P, D); raises UnsupportedModel where the slot's projections cannot be reached."""
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
    return Contribution(**{k: None if v is None else v.detach().clone() for k, v in vars(c).items()})


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


@dataclass(frozen=True, kw_only=True)
class PeftMapping:
    """How a method's prompts map to PEFT's prompt-learning format (``files/peft.py`` reads this).

    Export writes any mapped method's ejected values (PEFT stores values, not encoders): input embeddings as
    PROMPT_TUNING, a key/value prefix as PREFIX_TUNING without projection.
    """

    peft_type: str | None = None
    """The PEFT type whose files ``import_peft`` reads into this method (one method per type); None: none."""
    fields: Callable[[dict], dict | None] = lambda adapter_config: None
    """``adapter_config.json`` -> this method's config fields where PEFT's tensor *is* this method's parameter;
    None where it is an encoder's output (then it loads as the ejected ``static`` form)."""
    load: Callable[[Any, torch.Tensor], None] | None = None
    """Copy PEFT's tensor, (P, H) embeddings or a (P, S*2*H_kv*D) flat prefix, into the module's parameter."""
    load_all: Callable[[Any, dict[str, torch.Tensor]], None] | None = None
    """A PEFT type of several tensors (MULTITASK_PROMPT_TUNING): copy the file's tensors, by PEFT's names, into
    the module built from ``fields``; replaces ``load``."""
    save_all: Callable[[Any], tuple[dict, dict[str, torch.Tensor]]] | None = None
    """Export as ``peft_type`` itself (not the ejected values): module -> (its ``adapter_config.json`` fields,
    its tensors by PEFT's names)."""


@dataclass(frozen=True, kw_only=True)
class Method:
    """Everything the package knows about one prompt method. A method's file builds one and registers it:
    ``softprompt.register(Method(config=MyConfig, module=MyPrompt, train={"lr": 1e-2}))``."""

    config: type[MethodConfig]
    """The config dataclass; its ``method`` field's default is the method's name."""
    module: type
    """The ``nn.Module``: ``module(config, ctx: InitContext)`` with ``contribute()`` and ``eject()``."""
    train: Mapping[str, Any] | None = None
    """``TrainConfig`` fields training starts from (lr, warmup_ratio, steps, batch_size, ...; flags win);
    the loop's own defaults where absent. None: nothing to train (a hard prompt)."""
    train_with_head: Mapping[str, Any] = field(default_factory=dict)
    """On top of ``train`` where the task trains a new head with the prompt (a bare encoder's pooled or token
    head, which starts from scratch)."""
    text_start_lr: Callable[[dict], float | None] | None = None
    """Where a chosen template's lead-in words can start the virtual tokens (``init="text"``): the user's
    method options -> the peak learning rate for that start (None: these options cannot start from words)."""
    load_fields: Mapping[str, Any] = field(default_factory=dict)
    """Config fields that build the module cheaply before a saved file's tensors replace its values (no words
    read, no file opened)."""
    from_tensors: Callable[[dict[str, torch.Tensor], Any], Any] | None = None
    """Build the module from a saved file's tensors alone (a form whose shapes only the file knows), given them and
    an instance of ``config`` (typed Any: each method takes its own config class, not the base)."""
    peft: PeftMapping | None = None
    """Its PEFT equivalent; None: PEFT has none (export refuses it)."""
    defaults_measured: bool = True
    """Whether ``train`` was chosen by a sweep here (``bench/results/lr_sweep-*.md``); False: taken from the
    method's paper or a sibling method, not yet swept (``softprompt methods`` says which)."""
    listed: bool = True
    """Chosen by name (``make_config``, ``--method``, ``softprompt methods``); False for the ejected form."""

    def __post_init__(self):
        for key in ("train", "train_with_head", "load_fields"):  # read-only, like the registry
            value = getattr(self, key)
            if value is not None:
                object.__setattr__(self, key, MappingProxyType(dict(value)))

    @property
    def name(self) -> str:
        default = next((f.default for f in fields(self.config) if f.name == "method"), "")
        return default if isinstance(default, str) else ""

    def train_defaults(self, trained_head: bool = False) -> dict[str, Any]:
        """The ``TrainConfig`` fields this method's training starts from."""
        return {**(self.train or {}), **(self.train_with_head if trained_head else {})}


_REGISTRY: dict[str, Method] = {}
METHODS: Mapping[str, Method] = MappingProxyType(_REGISTRY)
"""The registered methods, name -> :class:`Method` (read-only; :func:`register` adds one)."""


def register(method: Method) -> Method:
    """Add ``method`` to :data:`METHODS`; its name must be new. Returns it."""
    from softprompt.errors import ConfigError

    if not isinstance(method, Method):
        raise ConfigError(f"register() takes a softprompt.Method, not {type(method).__name__}")
    if not (
        isinstance(method.config, type)
        and issubclass(method.config, MethodConfig)
        and is_dataclass(method.config)
    ):
        raise ConfigError(f"Method.config={method.config!r}; accepted: a MethodConfig dataclass")
    name = method.name
    if not isinstance(name, str) or not name:
        raise ConfigError(
            f"{method.config.__name__}: the `method` field's default names the method; got {name!r}"
        )
    if name in _REGISTRY:
        raise ConfigError(
            f"method {name!r} is already registered ({_REGISTRY[name].module.__name__}); "
            "choose another name for the config's `method` field"
        )
    _REGISTRY[name] = method
    return method


def build(config: MethodConfig, ctx: InitContext) -> PromptModule:
    """Instantiate the module of ``config.method``."""
    from softprompt.errors import ConfigError

    if config.method not in METHODS:
        raise ConfigError(
            f"method {config.method!r} is not registered; known: {', '.join(METHODS) or 'none'}"
        )
    return METHODS[config.method].module(config, ctx)
