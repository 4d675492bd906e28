"""A tiny, offline, word-level tokenizer for tests (its vocabulary: ``softprompt.testing.vocab``).

Every word of :data:`~softprompt.testing.vocab.WORDS` is one token; text is lower-cased and split on whitespace
and punctuation (each punctuation character is its own token). Out-of-vocabulary words become ``[UNK]``. The
whole vocabulary, special tokens included, has fewer than 256 entries, so a tiny test model with
``vocab_size=256`` can embed every id.

A word-level tokenizer cannot split one word into sub-words, so multi-token label words are tested with
phrases: ``"very good"`` tokenizes to 2 tokens, ``"not bad at all"`` to 4.
"""

from __future__ import annotations

from typing import Literal

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast

from softprompt.errors import check_value
from softprompt.testing.vocab import SPECIAL_TOKENS, vocab


def _backend() -> Tokenizer:
    tok = Tokenizer(models.WordLevel(vocab=vocab(), unk_token="[UNK]"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation(behavior="isolated")]
    )
    tok.decoder = decoders.WordPiece(prefix="##", cleanup=True)
    return tok


def tiny_tokenizer(kind: Literal["causal", "masked", "seq2seq"] = "causal") -> PreTrainedTokenizerFast:
    """Build the in-memory word-level test tokenizer.

    Args:
        kind: Special-token conventions to mimic. ``"causal"`` (GPT-2 style): bos ``<s>``, eos ``</s>``,
            pad ``[PAD]``, no mask token, nothing added around a sequence. ``"masked"`` (BERT style): cls,
            sep, mask and pad tokens; every sequence becomes ``[CLS] ... [SEP]``. ``"seq2seq"`` (T5 style):
            eos ``</s>``, pad ``[PAD]``, mask ``<extra_id_0>``; every sequence gets ``</s>`` appended.

    Returns:
        A fast tokenizer whose vocabulary (special tokens included) has fewer than 256 entries.

    Raises:
        ConfigError: ``kind`` is not one of the three accepted values.
    """
    check_value("kind", kind, Literal["causal", "masked", "seq2seq"])
    backend = _backend()
    common = {"tokenizer_object": backend, "unk_token": "[UNK]", "pad_token": "[PAD]"}
    if kind == "causal":
        return PreTrainedTokenizerFast(**common, bos_token="<s>", eos_token="</s>")
    if kind == "masked":
        post = processors.TemplateProcessing(
            single="[CLS] $A [SEP]",
            pair="[CLS] $A [SEP] $B:1 [SEP]:1",
            special_tokens=[
                ("[CLS]", SPECIAL_TOKENS.index("[CLS]")),
                ("[SEP]", SPECIAL_TOKENS.index("[SEP]")),
            ],
        )
        return PreTrainedTokenizerFast(
            **common, cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]", post_processor=post
        )
    # seq2seq
    post = processors.TemplateProcessing(
        single="$A </s>", pair="$A </s> $B:1 </s>:1", special_tokens=[("</s>", SPECIAL_TOKENS.index("</s>"))]
    )
    return PreTrainedTokenizerFast(
        **common,
        eos_token="</s>",
        mask_token="<extra_id_0>",
        extra_special_tokens=["<extra_id_0>"],
        post_processor=post,
    )
