"""Generation for causal and seq2seq backbones with every method, on the KV cache.

Prefixes are applied at attention time (kv.py), so the cache only holds real tokens. Prompts that only
prepend virtual input tokens on a causal model are turned once into key/value prefixes (the prompt-KV cache):
the virtual tokens' keys/values do not depend on what follows them, so they are computed once per prompt and
reused by every call until the prompt's parameters change.
"""

from __future__ import annotations

import threading

import torch

from softprompt.core import compat, kv
from softprompt.core.prompt import Contribution


def _version(module) -> tuple:
    return tuple((id(p), p._version) for p in module.parameters())


_PROMPT_KV_LOCK = threading.Lock()


def prompt_kv(model, name: str) -> Contribution:
    """Keys/values of prompt ``name``'s prepended virtual tokens, as a prefix (cached per parameter version).

    The cache entry keeps the module it was computed from: a prompt removed and re-added under the same name
    is a new module and never gets the old keys/values (parameter ids alone can be reused after a free).
    """
    module = model.bank.get(name)
    with _PROMPT_KV_LOCK:
        ver = _version(module)
        hit = model._prompt_kv.get(name)
        if hit is not None and hit[0] is module and hit[1] == ver:
            return hit[2]
        out = prompt_kv_of(model, module)
        model._prompt_kv[name] = (module, ver, out)
        return out


def prompt_kv_of(model, module) -> Contribution:
    """Uncached: the key/value prefix equal to prompt ``module``'s prepended virtual tokens."""
    c = module.contribute()
    state = kv.KVPrefix(capture={})
    embeds = c.embeds.detach()[None].to(model.backbone.dtype)  # (1, P, H)
    pos = torch.arange(embeds.shape[1], device=embeds.device)[None] + model.info.position_base
    with torch.no_grad():
        model.backbone(inputs_embeds=embeds, position_ids=pos, use_cache=False, **{kv.KWARG: state})
    slots = [state.capture[s] for s in range(len(model.info.slots))]
    kvs = torch.stack([torch.stack([k[0], v[0]]) for k, v in slots])  # (S, 2, H_kv, P, D)
    return Contribution(kv=kvs)


def _pick(logits, do_sample, temperature, top_p, generator):
    if not do_sample:
        return logits.argmax(-1)
    probs = torch.softmax(logits.float() / max(temperature, 1e-5), -1)
    if top_p < 1.0:
        sp, si = probs.sort(-1, descending=True)
        keep = sp.cumsum(-1) - sp < top_p
        probs = torch.zeros_like(probs).scatter(-1, si, sp * keep)
    return torch.multinomial(probs, 1, generator=generator)[:, 0]


@torch.no_grad()
def generate(
    model,
    input_ids,
    attention_mask=None,
    prompts=None,
    *,
    insert_at=None,
    max_new_tokens: int = 20,
    do_sample: bool = False,
    temperature: float = 1.0,
    top_p: float = 1.0,
    eos_token_id=None,
    use_cache: bool = True,
    prompt_cache: bool = True,
    generator=None,
) -> torch.Tensor:
    """New tokens (B, max_new_tokens) for each row with its prompt; rows that ended are filled with EOS.

    ``use_cache=False`` recomputes the whole sequence at every step (the reference); ``prompt_cache`` turns
    prepended virtual tokens into a key/value prefix computed once per prompt version.
    """
    from softprompt.core.bank import rows_of

    if attention_mask is None:
        attention_mask = torch.ones_like(input_ids)
    rows = rows_of(prompts, input_ids.shape[0])
    overrides = {}
    # a sliding window hides old tokens, but a prefix stays visible: only exact without one
    if prompt_cache and model.info.kind == "causal" and insert_at is None and not model.info.sliding_window:
        for name in {r for r in rows if r is not None}:
            c = model.bank.get(name).contribute()
            if c.embeds is not None and c.kv is None:
                overrides[name] = prompt_kv(model, name)
    step = _seq2seq_steps if model.info.kind == "seq2seq" else _causal_steps
    eos = eos_token_id if eos_token_id is not None else model.backbone.config.eos_token_id
    eos = eos[0] if isinstance(eos, list) else eos
    out, done = [], torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
    for logits in step(model, input_ids, attention_mask, rows, insert_at, overrides, use_cache, out):
        tok = _pick(logits, do_sample, temperature, top_p, generator)
        if eos is not None:
            tok = torch.where(done, torch.full_like(tok, eos), tok)
            done |= tok == eos
        out.append(tok)
        if len(out) == max_new_tokens or bool(done.all()):
            break
    return torch.stack(out, 1)


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
    attn, pos = exp.mask, exp.position_ids[:, -1:]
    while True:
        yield res.logits[:, -1]
        attn = torch.cat([attn, attn.new_ones(attn.shape[0], 1)], 1)
        pos = pos + 1
        kw.update(
            inputs_embeds=model.backbone.get_input_embeddings()(out[-1][:, None]),
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
