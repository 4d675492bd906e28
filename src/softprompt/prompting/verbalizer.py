"""Verbalizers: map task labels to label words and turn word scores into label scores.

Scoring rules, shared by every prompt method:

- A label word may tokenize to several tokens. Its score is the SUM of its tokens' log-probabilities under
  teacher forcing (token ``t`` is scored given the prompt and tokens ``< t``). With ``normalize=True``
  (default) the sum is divided by the number of tokens (mean log-probability per token), so long words
  are not penalized for their length.
- A label with several words combines its word scores with ``aggregate``: ``"logsumexp"`` (default; the
  log of the total probability of the label's words), ``"mean"`` or ``"max"``.

:meth:`Verbalizer.flatten` packs all words of all labels into one padded :class:`LabelWordTable`, which model
code scores in one batch and reduces with :meth:`LabelWordTable.label_scores`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, cast

import torch

from softprompt.errors import VerbalizerError, check_value

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

Aggregate = Literal["mean", "max", "logsumexp"]


@dataclass(frozen=True)
class LabelWordTable:
    """All label words of a verbalizer as padded tensors (W words, T_max tokens in the longest word)."""

    token_ids: torch.Tensor
    """(W, T_max) long; padding positions hold the tokenizer's pad id (0 when it has none)."""
    token_mask: torch.Tensor
    """(W, T_max) bool; True on real tokens."""
    word_label: torch.Tensor
    """(W,) long; index of each word's label in :attr:`Verbalizer.labels`."""
    num_labels: int
    """Number of labels L."""
    words: tuple[str, ...]
    """The W words, in table order (labels in order, then their words in order)."""
    normalize: bool = True
    """Divide a word's summed log-probability by its token count."""
    aggregate: Aggregate = "logsumexp"
    """How a label combines the scores of its words."""

    def word_scores(self, token_logprobs: torch.Tensor) -> torch.Tensor:
        """Reduce per-token log-probs ``(..., W, T_max)`` to word scores ``(..., W)``; padding is ignored."""
        mask = self.token_mask.to(token_logprobs.device)
        total = token_logprobs.masked_fill(~mask, 0.0).sum(-1)  # (..., W)
        return total / mask.sum(-1).to(total.dtype) if self.normalize else total

    def label_scores(self, token_logprobs: torch.Tensor) -> torch.Tensor:
        """Reduce per-token log-probs ``(..., W, T_max)`` to label scores ``(..., L)``."""
        return aggregate_label_scores(
            self.word_scores(token_logprobs), self.word_label, self.num_labels, how=self.aggregate
        )


@dataclass(kw_only=True)
class Verbalizer:
    """Label -> label words, plus how word scores become label scores."""

    label_words: dict[str, list[str]]
    """Label -> one or more label words or phrases (a bare string is taken as a one-word list)."""
    normalize: bool = True
    """Score a multi-token word by its mean (True) or summed (False) token log-probability."""
    aggregate: Aggregate = "logsumexp"
    """How a label with several words combines their scores: logsumexp, mean or max."""

    def __post_init__(self) -> None:
        if not isinstance(self.label_words, Mapping) or not self.label_words:
            raise VerbalizerError(
                f"label_words must be a non-empty dict label -> words, got {self.label_words!r}"
            )
        check_value("aggregate", self.aggregate, Aggregate)
        owner: dict[str, str] = {}
        words: dict[str, list[str]] = {}
        for label, value in self.label_words.items():
            listed = [value] if isinstance(value, str) else list(value)
            if not listed:
                raise VerbalizerError(f"label {label!r} has no label words")
            for word in listed:
                if not isinstance(word, str) or not word.strip():
                    raise VerbalizerError(f"label {label!r} has an empty or non-string label word: {word!r}")
                if word in owner:
                    raise VerbalizerError(
                        f"label word {word!r} is used by both {owner[word]!r} and {label!r}"
                    )
                owner[word] = label
            words[label] = listed
        self.label_words = words

    @classmethod
    def from_spec(
        cls, spec: Verbalizer | Mapping[str, str | Sequence[str]] | Sequence[str], **kw: Any
    ) -> Verbalizer:
        """Build a verbalizer from a loose spec.

        Args:
            spec: ``{"pos": "great", "neg": ["bad", "awful"]}``, or a list of labels (each label is its own
                word), or a ``Verbalizer`` (returned as is).
            **kw: Other fields (``normalize``, ``aggregate``).

        Returns:
            The verbalizer.

        Raises:
            VerbalizerError: The spec is neither a mapping nor a list of labels, or a label has no words.
        """
        if isinstance(spec, Verbalizer):
            return spec
        if isinstance(spec, Mapping):
            return cls(
                label_words=cast("dict[str, list[str]]", dict(spec)), **kw
            )  # bare strings: see __post_init__
        if isinstance(spec, Sequence) and not isinstance(spec, str):
            return cls(label_words={label: [str(label)] for label in spec}, **kw)
        raise VerbalizerError(
            f"verbalizer spec must be a dict label -> words or a list of labels, got {spec!r}"
        )

    @property
    def labels(self) -> list[str]:
        """Labels in order; a label's index is its class id."""
        return list(self.label_words)

    def index(self, label: str) -> int:
        """Class id of ``label``; raises VerbalizerError naming it and the known labels when missing."""
        try:
            return self.labels.index(label)
        except ValueError:
            raise VerbalizerError(f"unknown label {label!r}; known labels: {self.labels}") from None

    def tokenize(
        self, tokenizer: PreTrainedTokenizerBase, *, leading_space: bool = True
    ) -> list[list[list[int]]]:
        """Token ids of every word, per label then per word, without special tokens.

        Args:
            tokenizer: A Hugging Face tokenizer.
            leading_space: Prepend ``" "`` to each word. Byte-level BPE tokenizers (GPT-2, Llama 3, Qwen)
                encode the space before a word inside the word's token (``"Ġgreat"``), and a label word
                follows a space in running text; word-level and WordPiece tokenizers ignore the space.
                Pass False for tokenizers that add their own word-boundary marker (SentencePiece ``▁``).

        Returns:
            ``ids[label][word]`` is the list of token ids of that word.

        Raises:
            VerbalizerError: A word tokenizes to nothing, or to the tokenizer's unknown token.
        """
        unk = getattr(tokenizer, "unk_token_id", None)
        out: list[list[list[int]]] = []
        for label, words in self.label_words.items():
            per_word = []
            for word in words:
                ids = list(
                    tokenizer.encode((" " + word) if leading_space else word, add_special_tokens=False)
                )
                if not ids:
                    raise VerbalizerError(f"label word {word!r} of label {label!r} tokenizes to no tokens")
                if unk is not None and unk in ids:
                    raise VerbalizerError(
                        f"label word {word!r} of label {label!r} contains unknown tokens: "
                        f"{tokenizer.convert_ids_to_tokens(ids)}"
                    )
                per_word.append(ids)
            out.append(per_word)
        return out

    def flatten(self, tokenizer: PreTrainedTokenizerBase, *, leading_space: bool = True) -> LabelWordTable:
        """Pack every word of every label into one padded :class:`LabelWordTable`."""
        per_label = self.tokenize(tokenizer, leading_space=leading_space)
        flat = [(k, ids) for k, words in enumerate(per_label) for ids in words]
        width = max(len(ids) for _, ids in flat)
        pad = getattr(tokenizer, "pad_token_id", None) or 0
        token_ids = torch.full((len(flat), width), pad, dtype=torch.long)  # (W, T_max)
        token_mask = torch.zeros((len(flat), width), dtype=torch.bool)  # (W, T_max)
        for w, (_, ids) in enumerate(flat):
            token_ids[w, : len(ids)] = torch.tensor(ids, dtype=torch.long)
            token_mask[w, : len(ids)] = True
        return LabelWordTable(
            token_ids=token_ids,
            token_mask=token_mask,
            word_label=torch.tensor([k for k, _ in flat], dtype=torch.long),
            num_labels=len(per_label),
            words=tuple(word for words in self.label_words.values() for word in words),
            normalize=self.normalize,
            aggregate=self.aggregate,
        )


def aggregate_label_scores(
    word_logprobs: torch.Tensor,
    word_to_label: torch.Tensor,
    num_labels: int,
    how: Aggregate = "logsumexp",
) -> torch.Tensor:
    """Combine word scores into label scores.

    Args:
        word_logprobs: ``(..., W)`` score of each word.
        word_to_label: ``(W,)`` label index of each word, in ``[0, num_labels)``.
        num_labels: Number of labels L; every label must own at least one word.
        how: ``"logsumexp"``, ``"mean"`` or ``"max"`` over each label's words.

    Returns:
        ``(..., L)`` label scores.

    Raises:
        VerbalizerError: Shapes disagree, a label index is out of range, or a label has no word.
        ConfigError: ``how`` is not accepted.
    """
    check_value("how", how, Aggregate)
    if word_to_label.dim() != 1 or word_logprobs.shape[-1] != word_to_label.numel():
        raise VerbalizerError(
            f"word_logprobs {tuple(word_logprobs.shape)} must end in W={word_to_label.numel()}, "
            f"the length of word_to_label {tuple(word_to_label.shape)}"
        )
    labels = torch.arange(num_labels, device=word_to_label.device)
    member = word_to_label.unsqueeze(0) == labels.unsqueeze(1)  # (L, W)
    if word_to_label.numel() and (word_to_label.min() < 0 or word_to_label.max() >= num_labels):
        raise VerbalizerError(f"word_to_label has values outside [0, {num_labels}): {word_to_label.tolist()}")
    empty = (~member.any(-1)).nonzero().flatten().tolist()
    if empty:
        raise VerbalizerError(f"labels {empty} have no words in word_to_label {word_to_label.tolist()}")
    member = member.to(word_logprobs.device)
    scores = word_logprobs.unsqueeze(-2)  # (..., 1, W)
    if how == "mean":
        return scores.masked_fill(~member, 0.0).sum(-1) / member.sum(-1).to(scores.dtype)  # (..., L)
    masked = scores.masked_fill(~member, float("-inf"))  # (..., L, W)
    return masked.logsumexp(-1) if how == "logsumexp" else masked.amax(-1)
