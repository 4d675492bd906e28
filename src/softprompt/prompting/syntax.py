"""The template syntax: a hand-written scanner (never ``eval``) producing segments; see ``templates``."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from softprompt.errors import TemplateError

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_COUNT = re.compile(r"[0-9]+")


@dataclass(frozen=True)
class Segment:
    """One piece of a parsed template.

    ``kind="text"``: ``value`` is literal text. ``"field"``: ``value`` is the field name. ``"mask"`` and
    ``"soft"``: ``value`` is ``"mask"`` / ``"soft"``. ``count`` is the number of virtual tokens of a soft
    segment; it is 0 for ``{soft:"words"}`` until :meth:`Template.bind` sets it from a tokenizer.
    ``column`` is the 0-based offset of the segment in the template source.
    """

    kind: Literal["text", "field", "mask", "soft"]
    value: str
    count: int = 1
    init_text: str | None = None
    column: int = 0


def _syntax_error(source: str, pos: int, problem: str) -> TemplateError:
    start = source.rfind("\n", 0, pos) + 1
    end = source.find("\n", pos)
    line = source[start : len(source) if end < 0 else end].replace("\t", " ")
    col = pos - start
    where = (
        f"line {source.count(chr(10), 0, pos) + 1}, column {col + 1}"
        if "\n" in source
        else f"column {col + 1}"
    )
    return TemplateError(f"{problem} at {where} of template {source!r}:\n    {line}\n    {' ' * col}^")


def _placeholder_end(source: str, start: int) -> int:
    """Index of the ``}`` closing the ``{`` at ``start``; quotes may hide braces."""
    quote, j = -1, start + 1
    while j < len(source):
        ch = source[j]
        if quote >= 0 and ch == "\\":
            j += 2
            continue
        if ch == '"':
            quote = j if quote < 0 else -1
        elif quote < 0 and ch == "}":
            return j
        elif quote < 0 and ch in "{\n":
            break
        j += 1
    if quote >= 0:
        raise _syntax_error(source, quote, "unterminated quote")
    raise _syntax_error(source, start, "unclosed '{' (write '{{' for a literal brace)")


def _unquote(source: str, pos: int, arg: str) -> str:
    """Init text of ``soft:"..."``; ``arg`` starts with the opening quote found at ``pos``."""
    out, j = [], 1
    while arg[j] != '"':
        if arg[j] == "\\" and arg[j + 1] in '"\\':
            j += 1
        out.append(arg[j])
        j += 1
    if j != len(arg) - 1:
        raise _syntax_error(source, pos + j + 1, f"unexpected {arg[j + 1 :]!r} after the quoted init text")
    if not out:
        raise _syntax_error(source, pos, 'empty init text in {soft:""}')
    return "".join(out)


def _placeholder(source: str, start: int, content: str) -> Segment:
    if content == "":
        raise _syntax_error(source, start, "empty placeholder '{}'")
    if content in ("mask", "soft"):
        return Segment(kind="mask" if content == "mask" else "soft", value=content, column=start)
    if content.startswith("soft:"):
        arg, pos = content[5:], start + 6
        if arg.startswith('"'):
            return Segment(
                kind="soft", value="soft", count=0, init_text=_unquote(source, pos, arg), column=start
            )
        if not _COUNT.fullmatch(arg) or int(arg) < 1:
            raise _syntax_error(
                source, pos, f"soft token count must be an integer >= 1 or a quoted string, got {arg!r}"
            )
        return Segment(kind="soft", value="soft", count=int(arg), column=start)
    if not _IDENT.fullmatch(content):
        raise _syntax_error(
            source,
            start + 1,
            f"bad placeholder {{{content}}}: expected a field name (identifier), "
            'mask, soft, soft:N or soft:"words"',
        )
    return Segment(kind="field", value=content, column=start)


def parse_segments(source: str) -> tuple[Segment, ...]:
    """Parse a hard-prompt template.

    Args:
        source: Template text, e.g. ``"{soft:3} {text} It was {mask}."``.

    Returns:
        The template's segments, in order.

    Raises:
        TemplateError: A syntax error; the message quotes the template and points a caret at the column.
    """
    if not isinstance(source, str):
        raise TemplateError(f"template must be a str, got {type(source).__name__}: {source!r}")
    segments: list[Segment] = []
    text: list[str] = []
    text_start = i = 0
    while i < len(source):
        two = source[i : i + 2]
        if source[i] == "{" and two != "{{":
            if text:
                segments.append(Segment(kind="text", value="".join(text), column=text_start))
                text = []
            end = _placeholder_end(source, i)
            segments.append(_placeholder(source, i, source[i + 1 : end]))
            i = end + 1
            continue
        if source[i] == "}" and two != "}}":
            raise _syntax_error(source, i, "stray '}' (write '}}' for a literal brace)")
        if not text:
            text_start = i
        text.append(source[i])
        i += 2 if two in ("{{", "}}") else 1
    if text:
        segments.append(Segment(kind="text", value="".join(text), column=text_start))
    masks = [s for s in segments if s.kind == "mask"]
    if len(masks) > 1:
        raise _syntax_error(source, masks[1].column, "second {mask}; a template has at most one answer slot")
    return tuple(segments)
