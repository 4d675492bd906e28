"""Tiny random backbones of every supported family, built in memory (tests and examples; no downloads)."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import torch
from transformers import (
    AutoModel,
    AutoModelForCausalLM,
    AutoModelForMaskedLM,
    AutoModelForSeq2SeqLM,
    BartConfig,
    BertConfig,
    Gemma2Config,
    GPT2Config,
    LlamaConfig,
    MistralConfig,
    PreTrainedConfig,
    PreTrainedModel,
    Qwen2Config,
    RobertaConfig,
    T5Config,
)

VOCAB = 256
_DEC: dict[str, Any] = dict(
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    vocab_size=VOCAB,
    max_position_embeddings=128,
    pad_token_id=0,
)
_ENC: dict[str, Any] = dict(
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    vocab_size=VOCAB,
    max_position_embeddings=96,
    hidden_dropout_prob=0.0,
    attention_probs_dropout_prob=0.0,
    pad_token_id=0,
    initializer_range=0.2,
)

FAMILIES: dict[str, tuple[Any, Callable[..., PreTrainedConfig]]] = {
    "llama": (AutoModelForCausalLM, partial(LlamaConfig, **_DEC)),
    "qwen2": (AutoModelForCausalLM, partial(Qwen2Config, **_DEC)),
    "mistral": (AutoModelForCausalLM, partial(MistralConfig, **_DEC, sliding_window=6)),
    "gemma2": (
        AutoModelForCausalLM,
        partial(Gemma2Config, **{**_DEC, "head_dim": 8, "sliding_window": 6, "query_pre_attn_scalar": 8}),
    ),  # hybrid cache, softcap
    "gpt2": (
        AutoModelForCausalLM,
        partial(
            GPT2Config,
            n_embd=32,
            n_layer=2,
            n_head=4,
            vocab_size=VOCAB,
            n_positions=96,
            resid_pdrop=0.0,
            embd_pdrop=0.0,
            attn_pdrop=0.0,
            bos_token_id=1,
            eos_token_id=2,
            pad_token_id=0,
        ),
    ),
    "bert": (AutoModelForMaskedLM, partial(BertConfig, **_ENC)),
    "roberta": (
        AutoModelForMaskedLM,
        partial(RobertaConfig, **{**_ENC, "pad_token_id": 1, "max_position_embeddings": 98}),
    ),
    "t5": (
        AutoModelForSeq2SeqLM,
        partial(
            T5Config,
            d_model=32,
            d_ff=64,
            d_kv=8,
            num_layers=2,
            num_heads=4,
            vocab_size=VOCAB,
            dropout_rate=0.0,
            decoder_start_token_id=0,  # type: ignore[call-arg]  # accepted at runtime (PreTrainedConfig kwargs); @strict hides it
            pad_token_id=0,
            eos_token_id=1,
        ),
    ),
    "bart": (
        AutoModelForSeq2SeqLM,
        partial(
            BartConfig,
            d_model=32,
            encoder_ffn_dim=64,
            decoder_ffn_dim=64,
            encoder_layers=2,
            decoder_layers=2,
            encoder_attention_heads=4,
            decoder_attention_heads=4,
            vocab_size=VOCAB,
            max_position_embeddings=96,
            dropout=0.0,
            attention_dropout=0.0,
            activation_dropout=0.0,
            pad_token_id=1,
            bos_token_id=0,
            eos_token_id=2,
            decoder_start_token_id=2,
            forced_eos_token_id=None,
            init_std=0.2,
        ),
    ),
}


def tiny_model(family: str, *, seed: int = 0, head: str | None = None, **config: Any) -> PreTrainedModel:
    """A seeded tiny random model of ``family`` (see FAMILIES), in eval mode; ``head="base"`` gives the bare
    encoder. ``config`` replaces fields of the tiny config (``dtype``, ``attn_implementation``, or a real
    model's shape: a random stand-in of the size a benchmark measures, bench/device_checks.py)."""
    cls, make = FAMILIES[family]
    torch.manual_seed(seed)
    model = (AutoModel if head == "base" else cls).from_config(make(**config))
    return model.eval()


ST_FLAGS = ("pooling_mode_cls_token", "pooling_mode_mean_tokens", "pooling_mode_max_tokens")


def pooling_flags(*on: str) -> dict:
    """A sentence-transformers pooling config's ``pooling_mode_*`` flags with ``on`` true, the others false."""
    return {f: f in on for f in ST_FLAGS} | {"pooling_mode_mean_sqrt_len_tokens": False}


def save_encoder(path: str | Path, pooling: dict | None = None, pooling_dir: str = "1_Pooling") -> Path:
    """Save a tiny bare BERT encoder + tokenizer to the folder ``path``: laid out like a sentence-transformers
    checkpoint (modules.json, ``pooling_dir``/config.json holding ``pooling``) when ``pooling`` is given, like
    a plain transformers folder otherwise. Returns ``path``."""
    import json

    from softprompt.testing.tokenizer import tiny_tokenizer

    path = Path(path)
    tiny_model("bert", head="base").save_pretrained(path)
    tiny_tokenizer("masked").save_pretrained(path)
    if pooling is not None:
        modules = [
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": pooling_dir, "type": "sentence_transformers.models.Pooling"},
        ]
        (path / "modules.json").write_text(json.dumps(modules))
        (path / pooling_dir).mkdir()
        (path / pooling_dir / "config.json").write_text(
            json.dumps({"word_embedding_dimension": 32, **pooling})
        )
    return path
