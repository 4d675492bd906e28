"""Generation for causal and seq2seq backbones with every method, on the KV cache.

Prefixes are applied at attention time (kv.py), so the cache only holds real tokens. Prompts that only
prepend virtual input tokens on a causal model run as key/value prefixes computed once per prompt version (the
prompt-KV cache, kv_capture.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch

from softprompt.core import compat, inject, kv
from softprompt.core.decoding import DEFAULTS, StopText, cut_at_stop, eos_ids, make_sampler, pick, stop_list
from softprompt.core.kv_capture import prompt_kv, virtual_tokens_as_prefix
from softprompt.core.kv_capture import (
    prompt_kv_of as prompt_kv_of,
)  # (re-exported: its home before kv_capture)
from softprompt.errors import ConfigError, InputTooLong

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from softprompt.core.model import PromptedModel


@torch.no_grad()
def generate(
    model: PromptedModel,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    prompts: str | Sequence[str | None] | None = None,
    *,
    insert_at: torch.Tensor | None = None,
    max_new_tokens: int = DEFAULTS.max_tokens,
    do_sample: bool = False,
    temperature: float = DEFAULTS.temperature,
    top_p: float = DEFAULTS.top_p,
    eos_token_id: int | Sequence[int] | None = None,
    use_cache: bool = True,
    prompt_cache: bool = True,
    generator: torch.Generator | None = None,
    stop: str | Sequence[str] | None = None,
    tokenizer: PreTrainedTokenizerBase | None = None,
    truncate: bool = False,
) -> torch.Tensor:
    """New tokens (B, N <= max_new_tokens) for each row with its prompt; rows that ended are filled with EOS.

    A row ends at any of its EOS ids (``eos_token_id``: an id or a list; default: every EOS id of the model's
    generation config) or once its new text contains a ``stop`` string (decoded with ``tokenizer``, default
    ``model.tokenizer``); the token that completed the stop text is kept — :func:`generate_text` cuts the text.
    Sampling (``do_sample``) uses transformers' temperature and top-p warpers; ``temperature <= 0`` is greedy.
    Input + virtual tokens + ``max_new_tokens`` past the backbone's context raise ``InputTooLong``, or with
    ``truncate`` drop each long row's oldest tokens (with a warning); a row without any token is a
    ``ConfigError``. ``use_cache=False`` recomputes the whole sequence at every step (the reference);
    ``prompt_cache`` turns prepended virtual tokens into a key/value prefix computed once per prompt version.
    Runs in eval mode (every prompt's dropout off) and restores the model's mode afterwards.
    """
    stops = StopText(stop, tokenizer if tokenizer is not None else model.tokenizer)
    with model.inference():
        attention_mask, insert_at = _fit(
            model, input_ids, attention_mask, prompts, insert_at, max_new_tokens, truncate
        )
        return _generate(
            model,
            input_ids,
            attention_mask,
            prompts,
            insert_at=insert_at,
            max_new_tokens=max_new_tokens,
            sampler=make_sampler(do_sample, temperature, top_p),
            eos=eos_ids(model, eos_token_id),
            stops=stops,
            cache=(use_cache, prompt_cache),
            generator=generator,
        )


def _fit(model, input_ids, attention_mask, prompts, insert_at, max_new_tokens: int, truncate: bool):
    """The attention mask (and template positions) that fit the context, or InputTooLong (see ``generate``)."""
    from softprompt.core.bank import rows_of

    limit = model.info.context_length or model.info.max_positions
    if attention_mask is None:
        attention_mask = torch.ones_like(input_ids)
    empty = (attention_mask.sum(1) == 0).nonzero().flatten().tolist() if input_ids.numel() else [0]
    if empty or input_ids.shape[0] == 0:
        raise ConfigError(
            f"row {empty[0] if empty else 0} of input_ids has no tokens; generation continues from at least "
            "one (for an empty text, pass the tokenizer's BOS token)"
        )
    if limit is None:
        return attention_mask, insert_at
    new = max_new_tokens
    if model.info.kind == "seq2seq":  # the decoder counts its own positions: start token + new tokens
        if max_new_tokens + 1 > limit:
            raise InputTooLong(
                f"max_new_tokens={max_new_tokens} + 1 start token > the decoder's context of {limit}"
            )
        new = 0
    rows = rows_of(prompts, input_ids.shape[0])
    sizes: dict[str | None, int] = {}
    for name in {r for r in rows if r is not None}:
        c = model.bank.get(name).contribute()
        sizes[name] = c.num_embeds + c.num_kv
    extra = torch.tensor([sizes.get(r, 0) for r in rows], device=attention_mask.device)
    fitted = inject.fit_context(
        attention_mask,
        extra,
        limit,
        truncate=truncate,
        new_tokens=new,
        truncate_hint=", or pass truncate=True (drops each long row's oldest tokens)",
    )
    if insert_at is not None and fitted is not attention_mask:  # template slots keep their place in the text
        dropped = (attention_mask.bool().sum(1) - fitted.bool().sum(1)).to(insert_at.device)
        insert_at = (insert_at - dropped[:, None]).clamp(min=0)
    return fitted, insert_at


def _generate(
    model,
    input_ids,
    attention_mask,
    prompts,
    *,
    insert_at,
    max_new_tokens,
    sampler,
    eos,
    stops,
    cache,
    generator,
) -> torch.Tensor:
    from softprompt.core.bank import rows_of

    use_cache, prompt_cache = cache
    if attention_mask is None:
        attention_mask = torch.ones_like(input_ids)
    rows = rows_of(prompts, input_ids.shape[0])
    overrides = {}
    if prompt_cache and insert_at is None and virtual_tokens_as_prefix(model):
        for name in {r for r in rows if r is not None}:
            c = model.bank.get(name).contribute()
            if c.embeds is not None and c.kv is None:
                overrides[name] = prompt_kv(model, name)
    step = _seq2seq_steps if model.info.kind == "seq2seq" else _causal_steps
    eos_t = torch.tensor(eos, dtype=torch.long, device=input_ids.device)
    fill = eos[0] if eos else getattr(model.backbone.config, "pad_token_id", None) or 0
    out: list[torch.Tensor]
    out, done = [], torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
    for logits in step(model, input_ids, attention_mask, rows, insert_at, overrides, use_cache, out):
        so_far = torch.stack(out, 1) if out else input_ids[:, :0]
        tok = pick(logits, sampler, so_far.to(logits.device), generator).to(input_ids.device)
        tok = torch.where(done, torch.full_like(tok, fill), tok)
        done = done | torch.isin(tok, eos_t)
        out.append(tok)
        done = done | stops(out, done)
        if len(out) == max_new_tokens or bool(done.all()):
            break
    return torch.stack(out, 1)


def generate_text(
    model: PromptedModel,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    prompts: str | Sequence[str | None] | None = None,
    *,
    stop: str | Sequence[str] | None = None,
    tokenizer: PreTrainedTokenizerBase | None = None,
    **options: Any,
) -> list[str]:
    """:func:`generate`, decoded: each row's new text up to its first EOS, cut before the first ``stop`` string."""
    tok = tokenizer if tokenizer is not None else model.tokenizer
    if tok is None:
        raise ConfigError("generate_text needs a tokenizer: load the model with one or pass tokenizer=")
    out = generate(model, input_ids, attention_mask, prompts, stop=stop, tokenizer=tok, **options)
    eos = set(eos_ids(model, options.get("eos_token_id")))
    texts = []
    for row in out.tolist():
        end = next((i for i, t in enumerate(row) if t in eos), len(row))
        text: str = tok.decode(row[:end], skip_special_tokens=True)  # type: ignore[assignment]  # one row: a str (annotated str | list[str])
        texts.append(text[: cut_at_stop(text, stop_list(stop))])
    return texts


def _causal_steps(model, ids, mask, rows, insert_at, overrides, use_cache, out):
    """Yields next-token logits; reads the tokens chosen so far from ``out``."""
    last = (
        {"logits_to_keep": 1} if compat.takes_logits_to_keep(model.backbone) else {}
    )  # rows are left-padded: last column
    if not use_cache:
        while True:  # recompute everything each step (the reference the cache must match)
            new = torch.stack(out, 1) if out else ids[:, :0]
            full = torch.cat([ids, new], 1)
            m = torch.cat([mask, torch.ones_like(new)], 1)
            exp, batch = model.prepare(
                _left(full, m), _left(m, m), rows, insert_at=insert_at, left_pad=True, overrides=overrides
            )
            yield model.backbone(**model.backbone_kwargs(exp, batch), use_cache=False, **last).logits[:, -1]
    exp, batch = model.prepare(ids, mask, rows, insert_at=insert_at, left_pad=True, overrides=overrides)
    kw = {**model.backbone_kwargs(exp, batch), **last}
    cache = compat.new_cache(model.backbone)
    res = model.backbone(**kw, **compat.cache_kwargs(model.backbone, cache), use_cache=True)
    attn, pos, embed = exp.mask, exp.position_ids[:, -1:], model.backbone.get_input_embeddings()
    while True:
        yield res.logits[:, -1]
        attn = torch.cat([attn, attn.new_ones(attn.shape[0], 1)], 1)
        pos = pos + 1
        kw.update(
            inputs_embeds=embed(out[-1][:, None].to(attn.device)),
            attention_mask=attn,
            position_ids=pos,
        )
        res = model.backbone(
            **kw, **compat.cache_kwargs(model.backbone, compat.cache_of(res)), use_cache=True
        )


def _left(x, mask):
    """Re-pad rows to the left (content last), so appended tokens follow each row's content."""
    order = torch.sort(mask, dim=1, stable=True).indices  # zeros (pads) first, content order kept
    return x.gather(1, order)


def _seq2seq_steps(model, ids, mask, rows, insert_at, overrides, use_cache, out):
    exp, batch = model.prepare(ids, mask, rows, insert_at=insert_at, overrides=overrides)
    kw = model.backbone_kwargs(exp, batch)
    enc = model.backbone.get_encoder()(**kw)
    start = model.backbone.config.decoder_start_token_id
    dec = torch.full((ids.shape[0], 1), start, dtype=torch.long, device=ids.device)
    extra = {k: v for k, v in kw.items() if k == kv.KWARG}
    cache = compat.new_cache(model.backbone, seq2seq=True) if use_cache else None
    while True:
        full = torch.cat([dec, torch.stack(out, 1)], 1) if out else dec
        step_ids = full[:, -1:] if use_cache and out else full
        res = model.backbone(
            encoder_outputs=enc,
            attention_mask=exp.mask,
            decoder_input_ids=step_ids,
            **compat.cache_kwargs(model.backbone, cache),
            use_cache=use_cache,
            **extra,
        )
        cache = compat.cache_of(res) if use_cache else None
        yield res.logits[:, -1]
