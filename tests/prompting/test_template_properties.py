"""Property tests of the template parser: any string parses, or raises TemplateError naming the position."""

import re

from hypothesis import given
from hypothesis import strategies as st

from softprompt.errors import TemplateError
from softprompt.prompting.syntax import parse_segments
from softprompt.prompting.templates import parse_template

# Mostly template characters, so the search reaches deep into placeholders, quotes and escapes.
PIECES = st.sampled_from(
    ["{", "}", "{{", "}}", '"', "\\", ":", "soft", "mask", "text", "soft:", "3", "0", "\n", " ", "é", "\t"]
)
TEMPLATES = st.one_of(st.text(), st.lists(st.one_of(PIECES, st.text(max_size=3)), max_size=20).map("".join))
WHERE = re.compile(r"at (line \d+, )?column \d+ of template")


def _rebuild(segments) -> str:
    """The source a list of segments came from, modulo escapes (literal braces doubled again)."""
    out = []
    for s in segments:
        if s.kind == "text":
            out.append(s.value.replace("{", "{{").replace("}", "}}"))
        elif s.kind == "field":
            out.append(f"{{{s.value}}}")
        elif s.kind == "mask":
            out.append("{mask}")
        elif s.init_text is not None:
            out.append('{soft:"' + s.init_text.replace("\\", "\\\\").replace('"', '\\"') + '"}')
        else:
            out.append(f"{{soft:{s.count}}}")
    return "".join(out)


@given(TEMPLATES)
def test_any_string_parses_or_names_the_position(source):
    try:
        segments = parse_segments(source)
    except TemplateError as e:
        assert WHERE.search(str(e)), str(e)
        assert repr(source) in str(e)
        return
    assert sum(s.kind == "mask" for s in segments) <= 1
    assert all(0 <= s.column < max(len(source), 1) for s in segments)
    again = parse_segments(_rebuild(segments))  # what parsed rebuilds to the same segments
    assert [(s.kind, s.value, s.count, s.init_text) for s in again] == [
        (s.kind, s.value, s.count, s.init_text) for s in segments
    ]


@given(TEMPLATES)
def test_parse_template_raises_only_template_errors(source):
    try:
        template = parse_template(source)
    except TemplateError:
        return
    assert template.source == source


@given(st.one_of(st.integers(), st.none(), st.binary(), st.lists(st.text())))
def test_a_non_string_template_is_refused_by_type(value):
    try:
        parse_segments(value)
    except TemplateError as e:
        assert type(value).__name__ in str(e)
    else:
        raise AssertionError(f"{value!r} parsed")
