"""``PromptedModel``: a frozen backbone, a bank of prompts, and one forward for every method.

``forward`` never asks which method a prompt is: each prompt contributes virtual input embeddings and/or
key/value prefixes (``methods.Contribution``); ``inject`` places the embeddings, ``kv`` applies the prefixes.
Outputs come back aligned with the caller's tokens (virtual positions never appear in them).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from softprompt.core import compat, inject, kv, kv_capture, scoring
from softprompt.core.arch import BackboneInfo, describe_backbone, input_embeddings
from softprompt.core.bank import BatchPrompt, PromptBank, rows_of
from softprompt.core.prompt import METHODS, Contribution, InitContext, MethodConfig, build

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from softprompt.core.bank import PromptModule


@dataclass
class PromptOutput:
    logits: torch.Tensor | None  # (B, L, V) caller-aligned; seq2seq: decoder-aligned
    hidden: torch.Tensor | None  # (B, L, H) caller-aligned last hidden state (encoder side for seq2seq)
    loss: torch.Tensor | None  # mean negative log-likelihood of the labels
    label_logprobs: torch.Tensor | None  # (B, L) log p(label_j | what precedes it); 0 where label = -100
    next_logits: torch.Tensor | None  # (B, V) causal: the distribution after each row's last element
    expanded: inject.Expanded


class PromptedModel(nn.Module):
    """Wraps a transformers model; the backbone's weights are frozen and never change.

    Modes: a new ``PromptedModel`` starts in eval mode (inference: every dropout off). ``train()`` puts the
    *prompts* in training mode (their dropout on); the frozen backbone always stays in eval mode (its dropout
    never fires; gradient checkpointing works regardless). A prompt added or loaded takes the model's current
    mode. ``with model.inference():`` runs a block in eval mode under ``no_grad`` and restores the previous
    mode afterwards.

    Attention: the backbone keeps the implementation it was loaded with (``attn_implementation``) as long as
    no key/value prefix is used — input-embedding methods (prompt tuning, P-tuning, hard prompts) run on any,
    flash attention included. The first prefix (a prefix-tuning / P-tuning v2 prompt, or generation's
    prompt-KV cache) switches it to softprompt's function, which is SDPA (or eager's math) plus per-row
    prefixes and calls SDPA exactly as transformers does for batches without one. An implementation it
    cannot stand in for (``kv.WRAPS``) is never replaced: a prefix then raises ``UnsupportedModel``.
    """

    def __init__(self, backbone: PreTrainedModel, tokenizer: PreTrainedTokenizerBase | None = None) -> None:
        super().__init__()
        self.attn_implementation: str | None = compat.attn_implementation(backbone)
        """The attention implementation the backbone was loaded with (kept until a prefix needs ours)."""
        kv.install(backbone)
        backbone.requires_grad_(False)
        self.backbone = backbone
        self.tokenizer = tokenizer
        self.info: BackboneInfo = describe_backbone(backbone)
        if self.attn_implementation not in (None, kv.ATTN_IMPLEMENTATION):
            compat.set_attn_implementation(backbone, self.attn_implementation)  # the probe is done: restore
        self.bank = PromptBank()
        self._prompt_kv: dict[str, tuple[nn.Module, tuple, Contribution]] = {}  # kv_capture.prompt_kv
        self.eval()

    # ----- prompts -------------------------------------------------------------------------------------
    def init_context(
        self,
        *,
        label_words: Sequence[str] = (),
        init_token_ids: Sequence[int | None] = (),
        seed: int = 0,
    ) -> InitContext:
        return InitContext(
            info=self.info,
            embeddings=input_embeddings(self.backbone).weight,
            tokenizer=self.tokenizer,
            label_words=list(label_words),
            init_token_ids=list(init_token_ids),
            seed=seed,
            token_kv=self.token_kv,
            project_kv=functools.partial(kv.project_kv, self.backbone, self.info),
            embed_tokens=self.embed_tokens,
        )

    @torch.no_grad()
    def embed_tokens(self, ids: Sequence[int]) -> torch.Tensor:
        """(n, H) float32: the embedding module's output for ``ids`` (scaled embeddings included), detached."""
        module = input_embeddings(self.backbone)
        x = torch.as_tensor(list(ids), dtype=torch.long, device=module.weight.device)
        return module(x[None])[0].float().clone()

    @property
    def takes_prefixes(self) -> bool:
        """Whether key/value prefixes can run on this backbone's attention implementation."""
        return self.attn_implementation is None or self.attn_implementation in kv.WRAPS

    def enable_prefixes(self, what: str = "key/value prefixes") -> None:
        """Switch the backbone to softprompt's attention function (once); UnsupportedModel if it cannot be."""
        if compat.attn_implementation(self.backbone) == kv.ATTN_IMPLEMENTATION:
            return
        if not self.takes_prefixes:
            raise kv.prefix_error(self.attn_implementation, what)
        kv.install(self.backbone)

    @torch.no_grad()
    def token_kv(self, ids: Sequence[int]) -> torch.Tensor:
        """The frozen model's own keys/values for ``ids`` at positions 0.., as a prefix (S, 2, H_kv, P, D)."""
        self.enable_prefixes("capturing the model's own keys/values (init='text')")
        return kv_capture.token_kv(self.backbone, self.info, ids)

    def add_prompt(self, name: str, config: MethodConfig, **init: Any) -> PromptModule:
        """Create a prompt of ``config.method`` (initialized per its config) and put it in the bank."""
        return self.put_prompt(name, build(config, self.init_context(**init)))

    def put_prompt(self, name: str, module: PromptModule) -> PromptModule:
        """Put a built prompt module in the bank: on the embedding's device (float32 kept), in the model's mode."""
        module.eval()  # (no dropout draw while asking what the prompt contributes)
        with torch.no_grad():
            c = module.contribute()
        if c.kv is not None or c.adapter is not None:
            self.enable_prefixes(f"prompt {name!r} ({module.config.method}) adds key/value prefixes, which")
        self.bank.add(name, module.to(input_embeddings(self.backbone).weight.device).train(self.training))
        return module

    def trainable_parameters(self, names: Sequence[str] | None = None) -> list[nn.Parameter]:
        names = self.bank.names() if names is None else names
        return [p for n in names for p in self.bank.get(n).parameters() if p.requires_grad]

    # ----- forward -------------------------------------------------------------------------------------
    def prepare(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        prompts: str | Sequence[str | None] | None = None,
        *,
        insert_at: torch.Tensor | None = None,
        left_pad: bool = False,
        overrides: dict[str, Contribution] | None = None,
    ) -> tuple[inject.Expanded, BatchPrompt]:
        """Embed the caller's tokens, insert each row's virtual tokens, and build its prefix."""
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        rows = rows_of(prompts, input_ids.shape[0])
        batch = self.bank.batch(rows, overrides)
        embeds = input_embeddings(self.backbone)(input_ids)  # (B, L, H)
        offset = batch.offset if self.info.accepts_position_ids and batch.offset is not None else None
        if insert_at is not None and batch.embeds is not None:
            insert_at = insert_at[:, : batch.embeds.shape[1]].to(embeds.device)
        exp = inject.expand(
            embeds,
            attention_mask.to(embeds.device),
            batch.embeds,
            batch.embeds_mask,
            insert_at,
            offset if offset is not None else attention_mask.new_zeros(input_ids.shape[0]).to(embeds.device),
            left_pad=left_pad and self.info.accepts_position_ids,
            position_base=self.info.position_base,
            max_positions=self.info.context_length or self.info.max_positions,
        )
        return exp, batch

    def backbone_kwargs(self, exp: inject.Expanded, batch: BatchPrompt) -> dict[str, Any]:
        kw: dict[str, Any] = {"inputs_embeds": exp.embeds, "attention_mask": exp.mask}
        if self.info.accepts_position_ids:
            kw["position_ids"] = exp.position_ids
        if batch.kv is not None or batch.adapter is not None:
            self.enable_prefixes()
            kw[kv.KWARG] = kv.KVPrefix(
                batch.kv, batch.kv_mask, adapter=batch.adapter, adapter_mask=batch.adapter_mask
            )
        return kw

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        prompts: str | Sequence[str | None] | None = None,
        *,
        insert_at: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        decoder_input_ids: torch.Tensor | None = None,
        decoder_attention_mask: torch.Tensor | None = None,
        left_pad: bool = False,
        hidden: bool = False,
        last_only: bool = False,
    ) -> PromptOutput:
        """Run the backbone with each row's prompt (a name per row, one name for all, or None).

        Args:
            input_ids: (B, L) the caller's tokens, left or right padded.
            attention_mask: (B, L) 1 for real tokens.
            prompts: prompt name(s) from the bank.
            insert_at: (B, P) where each virtual input token goes (content index); default: prepended.
            labels: caller-aligned (B, L) targets (-100 = ignore); causal LMs are scored in the expanded
                sequence, so a label is predicted from whatever precedes it there, virtual tokens included.
                Seq2seq: decoder targets.
            hidden: return the last hidden state even for LM backbones (which then keep every layer's
                output); encoder-only backbones always return it.
            last_only: causal LMs compute vocabulary logits only after each row's last element
                (``next_logits``; ``logits`` is then None) — what label-word scoring and generation need.
        """
        exp, batch = self.prepare(input_ids, attention_mask, prompts, insert_at=insert_at, left_pad=left_pad)
        kw = self.backbone_kwargs(exp, batch)
        seq2seq = self.info.kind == "seq2seq"
        if seq2seq:
            if decoder_input_ids is None and labels is not None:
                decoder_input_ids = self.backbone.prepare_decoder_input_ids_from_labels(labels=labels)  # type: ignore[operator]  # seq2seq classes define it, no base class does; torch types the lookup Tensor | Module
            kw.update(decoder_input_ids=decoder_input_ids, decoder_attention_mask=decoder_attention_mask)
        keep = scored = None  # keep: the expanded positions whose vocabulary logits are computed (None = all)
        if self.info.kind == "causal" and self._takes_logits_to_keep:
            head = compat.device_of(self.backbone.get_output_embeddings() or self.backbone)
            keep, scored = scoring.logits_to_keep(exp, labels, last_only, head)
            kw.update({} if keep is None else {"logits_to_keep": keep})
        out = self.backbone(**kw, output_hidden_states=hidden, use_cache=False)
        h = out.encoder_last_hidden_state if seq2seq else getattr(out, "last_hidden_state", None)
        h = out.hidden_states[-1] if h is None and hidden else h  # (B, T, H)
        logits = getattr(out, "logits", None)  # (B, T or len(keep), V); seq2seq: (B, L_dec, V)
        next_logits = lp = loss = None
        if logits is not None and labels is not None:
            scored = None if scored is None else scored.to(logits.device)
            lp = scoring.label_logprobs(self.info.kind, logits, labels.to(logits.device), exp, scored, keep)
            loss = -lp.sum() / (labels != -100).sum().clamp(min=1)
        if logits is not None and not seq2seq:
            next_logits, logits = scoring.next_and_caller_logits(
                logits, exp, keep, labels is not None, last_only
            )
        return PromptOutput(
            logits=logits,
            hidden=None if h is None else exp.gather(h),
            loss=loss,
            label_logprobs=lp,
            next_logits=next_logits,
            expanded=exp,
        )

    @property
    def _takes_logits_to_keep(self) -> bool:
        return compat.takes_logits_to_keep(self.backbone)

    # ----- inference form ---------------------------------------------------------------------------------
    def eject(self, name: str) -> PromptModule:
        """Replace prompt ``name`` by its inference form (plain tensors); returns the new module."""
        static = METHODS["static"]  # the inference form every method ejects to (methods/static.py)

        old = self.bank.get(name)
        # static.config is StaticConfig (methods/static.py, a layer above core), typed here as the base config
        fields: dict[str, Any] = {
            "num_virtual_tokens": old.config.num_virtual_tokens,
            "source_method": old.config.method,
        }
        module = static.module(static.config(**fields), contribution=old.eject())
        self.bank.remove(name)
        return self.put_prompt(name, module)

    def gradient_checkpointing_enable(self) -> None:
        """Checkpoint the backbone's layers (non-reentrant, so prefix gradients flow through recompute).

        Works with the backbone in eval mode (see ``compat.checkpoint_layers``): no backbone dropout fires.
        """
        if not compat.checkpoint_layers(self.backbone):
            from softprompt.errors import UnsupportedModel

            raise UnsupportedModel(
                f"{type(self.backbone).__name__} has no transformers checkpointing layers; "
                "gradient checkpointing is not available for it"
            )

    def train(self, mode: bool = True) -> PromptedModel:
        """Prompts (and anything else added to this module) to ``mode``; the frozen backbone stays in eval."""
        super().train(mode)
        self.backbone.eval()
        return self

    @contextlib.contextmanager
    def inference(self) -> Iterator[PromptedModel]:
        """Eval mode (no dropout anywhere) and ``no_grad`` inside the block; the previous mode afterwards."""
        was = self.training
        self.eval()
        try:
            with torch.no_grad():
                yield self
        finally:
            self.train(was)
