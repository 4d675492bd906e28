"""Hard-prompt templates: a small parser (never ``eval``) and the encoder that turns an example into ids.

Syntax::

    "{text} All in all, it was {mask}."
    "{soft:3} Premise: {text} Question: {text_b}? {soft} Answer: {mask}"
    '{soft:"it was"} {text} {mask}'

``{name}`` is a field of the example (any identifier), ``{mask}`` the answer slot (at most once),
``{soft}`` one virtual token, ``{soft:N}`` N virtual tokens, ``{soft:"words"}`` as many virtual tokens as
``"words"`` has tokens, initialized from those tokens' embeddings (``\\"`` and ``\\\\`` escape inside the
quotes). ``{{`` and ``}}`` are literal braces; all other text, whitespace and newlines included, is kept.

Encoding tokenizes every literal and field segment on its own and concatenates the ids, so virtual-token
boundaries are exact; the tokenizer's special tokens are added once around the whole. Whitespace right
before ``{mask}`` belongs to the answer (the verbalizer's ``leading_space`` adds it back), so the encoder
strips it from the literal that precedes ``{mask}``; parsed segments keep it.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import Field

from softprompt.errors import InputTooLong, TemplateError, check_value
from softprompt.prompting.syntax import Segment, _syntax_error, parse_segments

Answer = Literal["mask_token", "append", "none"]
Overflow = Literal["truncate", "error"]
Reserved = Annotated[int, Field(ge=0)]
MaxLength = Annotated[int, Field(ge=1)]
if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

_PROBES = ("x", "a", "the", "hello", "0")


@dataclass(frozen=True)
class EncodedPrompt:
    """One example encoded through a template.

    ``input_ids`` holds real tokens only. ``soft_positions[k]`` is the index in ``input_ids`` before which
    virtual token ``k`` goes (``len(input_ids)``: at the end); non-decreasing. ``answer_index`` is the
    index of the mask token (``answer="mask_token"``), ``len(input_ids)`` (``"append"``) or ``None``.
    """

    input_ids: list[int]
    soft_positions: list[int]
    answer_index: int | None


def parse_template(source: str) -> Template:
    """Parse a hard-prompt template (syntax in the module docstring).

    Raises:
        TemplateError: A syntax error; the message quotes the template and points a caret at the column.
    """
    return Template(source=source, segments=parse_segments(source))


def _tokenize(tokenizer, text: str) -> list[int]:
    return list(tokenizer.encode(text, add_special_tokens=False)) if text else []


def _space_joins_word(tokenizer) -> bool:
    """True when a leading space merges into the word's token (byte-level BPE: " the" is one token, "Ġthe");
    False for tokenizers that add their own word-start marker (SentencePiece), where it would add a token."""
    return len(_tokenize(tokenizer, " the")) <= len(_tokenize(tokenizer, "the"))


def _special_affixes(tokenizer) -> tuple[list[int], list[int]]:
    """Special ids the tokenizer puts before and after a single sequence."""
    build = getattr(tokenizer, "build_inputs_with_special_tokens", None)
    if build is not None:  # Python-backend tokenizers
        ids = list(build([-1]))
        return ids[: ids.index(-1)], ids[ids.index(-1) + 1 :]
    for probe in _PROBES:  # fast tokenizers: read where the content sits in a probe encoding
        enc = tokenizer(probe, add_special_tokens=True)
        content = [k for k, s in enumerate(enc.sequence_ids()) if s is not None]
        if content:
            ids = enc["input_ids"]
            return list(ids[: content[0]]), list(ids[content[-1] + 1 :])
    raise TemplateError(f"cannot tell where {type(tokenizer).__name__} puts its special tokens")


def _truncate(pieces: list[tuple[Segment, list[int]]], excess: int) -> list[str]:
    """Cut ``excess`` ids from the ends of the longest field pieces, in place; return the fields cut."""
    fields = [k for k, (seg, _) in enumerate(pieces) if seg.kind == "field"]
    cut: list[str] = []
    while excess > 0:
        fields.sort(key=lambda k: -len(pieces[k][1]))
        top = len(pieces[fields[0]][1])
        tied = [k for k in fields if len(pieces[k][1]) == top]
        below = max((len(pieces[k][1]) for k in fields if len(pieces[k][1]) < top), default=0)
        q, r = divmod(min(excess, (top - below) * len(tied)), len(tied))
        for n, k in enumerate(tied):
            seg, ids = pieces[k]
            take = q + (n < r)
            pieces[k] = (seg, ids[: len(ids) - take])
            excess -= take
            if take and seg.value not in cut:
                cut.append(seg.value)
    return cut


@dataclass(frozen=True)
class Template:
    """A parsed template; build one with :func:`parse_template`."""

    source: str
    segments: tuple[Segment, ...]

    @property
    def fields(self) -> tuple[str, ...]:
        """Distinct field names, in order of first use."""
        return tuple(dict.fromkeys(s.value for s in self.segments if s.kind == "field"))

    @property
    def has_mask(self) -> bool:
        """Whether the template has a ``{mask}`` slot."""
        return any(s.kind == "mask" for s in self.segments)

    @property
    def num_soft(self) -> int:
        """Total number of virtual tokens; needs :meth:`bind` first when ``{soft:"words"}`` is used."""
        if any(s.kind == "soft" and s.count == 0 for s in self.segments):
            raise TemplateError(
                f'template {self.source!r} sizes {{soft:"..."}} by a tokenizer; call template.bind(tokenizer) first'
            )
        return sum(s.count for s in self.segments if s.kind == "soft")

    def soft_init_texts(self) -> list[str | None]:
        """Init text of each ``{soft...}`` segment, ``None`` where it has none."""
        return [s.init_text for s in self.segments if s.kind == "soft"]

    def soft_init_ids(self, tokenizer: PreTrainedTokenizerBase) -> list[list[int] | None]:
        """Token ids (no special tokens) of each soft segment's init text, ``None`` where it has none."""
        out: list[list[int] | None] = []
        for seg in (s for s in self.segments if s.kind == "soft"):
            ids = None if seg.init_text is None else _tokenize(tokenizer, seg.init_text)
            if ids == []:
                raise _syntax_error(self.source, seg.column, f"init text {seg.init_text!r} has no tokens")
            out.append(ids)
        return out

    def init_token_ids(self, tokenizer: PreTrainedTokenizerBase) -> list[int | None]:
        """Per virtual token, the id its ``{soft:"words"}`` slot starts it from (None for plain ``{soft}``)."""
        bound = self.bind(tokenizer)
        counts = [s.count for s in bound.segments if s.kind == "soft"]
        out: list[int | None] = []
        for count, ids in zip(counts, bound.soft_init_ids(tokenizer)):
            out += list(ids) if ids is not None else [None] * count
        return out

    def bind(self, tokenizer: PreTrainedTokenizerBase) -> Template:
        """Return a copy whose ``{soft:"words"}`` segments count the tokens of their init text."""
        init_ids = iter(self.soft_init_ids(tokenizer))
        segs = []
        for seg in self.segments:
            ids = next(init_ids) if seg.kind == "soft" else None
            segs.append(seg if ids is None else replace(seg, count=len(ids)))
        return Template(source=self.source, segments=tuple(segs))

    def encode(
        self,
        example: Mapping[str, str],
        tokenizer: PreTrainedTokenizerBase,
        *,
        answer: Answer = "append",
        max_length: MaxLength | None = None,
        reserved: Reserved = 0,
        on_overflow: Overflow = "truncate",
    ) -> EncodedPrompt:
        """Encode one example.

        Args:
            example: Field name -> text; must hold every field of the template (extra keys are ignored).
            tokenizer: A Hugging Face tokenizer.
            answer: ``"mask_token"`` puts the tokenizer's mask token at ``{mask}``; ``"append"`` drops all
                after ``{mask}`` and leaves the answer to be scored as the continuation (special tokens are
                only added in front); ``"none"`` drops the ``{mask}`` slot and keeps the rest.
            max_length: Limit on real + virtual + ``reserved`` positions; ``None`` for no limit.
            reserved: Positions the caller adds later (e.g. appended label words).
            on_overflow: ``"truncate"`` cuts tokens from the end of the longest field (with a warning);
                ``"error"`` raises.

        Returns:
            The :class:`EncodedPrompt`.

        Raises:
            TemplateError: A field is missing, or the template/tokenizer cannot produce ``answer``.
            InputTooLong: The prompt does not fit ``max_length`` (always when emptying fields is not enough).
        """
        check_value("answer", answer, Answer)
        check_value("on_overflow", on_overflow, Overflow)
        check_value("reserved", reserved, Reserved)
        pieces = self._pieces(example, tokenizer, answer)
        prefix, suffix = _special_affixes(tokenizer)
        suffix = [] if answer == "append" else suffix
        if max_length is not None:
            check_value("max_length", max_length, MaxLength)
            self._fit(pieces, len(prefix) + len(suffix), max_length, reserved, on_overflow)
        ids, soft, answer_index = list(prefix), [], None
        for seg, piece in pieces:
            if seg.kind == "soft":
                soft += [len(ids)] * len(piece)
                continue
            if seg.kind == "mask":
                answer_index = len(ids)
            ids += piece
        if answer == "append":
            answer_index = len(ids)
        return EncodedPrompt(input_ids=ids + suffix, soft_positions=soft, answer_index=answer_index)

    def _pieces(self, example: Mapping[str, str], tokenizer, answer: str) -> list[tuple[Segment, list[int]]]:
        """(segment, ids) per segment that takes part; soft segments hold placeholder ids of their count."""
        segs = list(self.bind(tokenizer).segments)
        mask_at = next((k for k, s in enumerate(segs) if s.kind == "mask"), None)
        if answer == "mask_token" and mask_at is None:
            raise TemplateError(
                f"answer='mask_token' needs a {{mask}} slot; template {self.source!r} has none"
            )
        if answer == "mask_token" and tokenizer.mask_token_id is None:
            raise TemplateError(
                f"answer='mask_token': tokenizer {type(tokenizer).__name__} has no mask token"
            )
        if mask_at is not None and answer == "append":
            segs = segs[: mask_at + 1]
        space_joins = _space_joins_word(tokenizer)  # one probe per call, not per segment
        pieces = []
        for k, seg in enumerate(segs):
            if seg.kind == "text":
                before_mask = k + 1 == mask_at and answer != "none"
                joins = space_joins and k + 1 < len(segs) and segs[k + 1].kind == "field"
                text = seg.value.rstrip() if before_mask or joins else seg.value
                pieces.append((seg, _tokenize(tokenizer, text)))
            elif seg.kind == "field":
                # A literal's trailing space belongs to the field's first word ("Review: {text}" -> "Review:",
                # " great"), as the tokenizer splits running text: a lone space token is never seen in training.
                value = self._field(example, seg.value)
                prev = segs[k - 1].value if k and segs[k - 1].kind == "text" else ""
                space = prev[len(prev.rstrip()) :]
                if space and space_joins and not value[:1].isspace():
                    value = space + value
                pieces.append((seg, _tokenize(tokenizer, value)))
            elif seg.kind == "soft":
                pieces.append((seg, [-1] * seg.count))
            elif answer == "mask_token":
                pieces.append((seg, [tokenizer.mask_token_id]))
        return pieces

    def _field(self, example: Mapping[str, str], name: str) -> str:
        if name not in example:
            raise TemplateError(
                f"example has no field {name!r} used by template {self.source!r}; example keys: {sorted(example)}"
            )
        value = example[name]
        if not isinstance(value, str):
            raise TemplateError(f"field {name!r} must be a str, got {type(value).__name__}: {value!r}")
        return value

    def _fit(self, pieces, n_special: int, max_length: int, reserved: int, on_overflow: str) -> None:
        virtual = sum(len(p) for s, p in pieces if s.kind == "soft")
        real = n_special + sum(len(p) for s, p in pieces if s.kind != "soft")
        excess = real + virtual + reserved - max_length
        if excess <= 0:
            return
        total = real + virtual + reserved
        sizes = f"{real} real + {virtual} virtual + {reserved} reserved = {total} positions"
        room = sum(len(p) for s, p in pieces if s.kind == "field")
        if on_overflow == "error" or excess > room:
            hint = f"; even with every field emptied it needs {total - room}" if excess > room else ""
            raise InputTooLong(
                f"template {self.source!r} needs {sizes}, more than max_length={max_length}{hint}"
            )
        cut = _truncate(pieces, excess)
        warnings.warn(
            f"template {self.source!r} needs {sizes} > max_length={max_length}; "
            f"cut {excess} tokens from the end of field(s) {', '.join(cut)}",
            stacklevel=3,
        )


def encode_batch(
    template: Template, examples: Iterable[Mapping[str, str]], tokenizer: PreTrainedTokenizerBase, **kw: Any
) -> list[EncodedPrompt]:
    """Encode many examples with :meth:`Template.encode`; ``kw`` is passed on unchanged."""
    return [template.encode(example, tokenizer, **kw) for example in examples]
