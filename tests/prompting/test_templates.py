import warnings

import pytest

from softprompt.errors import ConfigError, InputTooLong, TemplateError
from softprompt.prompting.templates import EncodedPrompt, Segment, encode_batch, parse_template
from softprompt.testing.tokenizer import tiny_tokenizer


def ids(tok, words: str) -> list[int]:
    """Vocabulary lookup of space-separated tokens: the hand-checked expectation."""
    out = tok.convert_tokens_to_ids(words.split())
    assert tok.unk_token_id not in out, words
    return out


class CharTokenizer:
    """Python-backend style stub: one id per character; wraps sequences as [1] ... [2]; mask id 3."""

    mask_token_id = 3
    unk_token_id = None

    def encode(self, text, add_special_tokens=False):
        assert not add_special_tokens
        return [ord(c) for c in text]

    def build_inputs_with_special_tokens(self, token_ids_0, token_ids_1=None):
        return [1, *token_ids_0, 2]


def chars(text: str) -> list[int]:
    return [ord(c) for c in text]


# --- parsing -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "source, expected",
    [
        (
            "{text} All in all, it was {mask}.",
            [
                ("field", "text", 1, None, 0),
                ("text", " All in all, it was ", 1, None, 6),
                ("mask", "mask", 1, None, 26),
                ("text", ".", 1, None, 32),
            ],
        ),
        (
            "{soft:3} Premise: {text} Question: {text_b}? {soft} Answer: {mask}",
            [
                ("soft", "soft", 3, None, 0),
                ("text", " Premise: ", 1, None, 8),
                ("field", "text", 1, None, 18),
                ("text", " Question: ", 1, None, 24),
                ("field", "text_b", 1, None, 35),
                ("text", "? ", 1, None, 43),
                ("soft", "soft", 1, None, 45),
                ("text", " Answer: ", 1, None, 51),
                ("mask", "mask", 1, None, 60),
            ],
        ),
        (
            '{soft:"it was"} {text} {mask}',
            [
                ("soft", "soft", 0, "it was", 0),
                ("text", " ", 1, None, 15),
                ("field", "text", 1, None, 16),
                ("text", " ", 1, None, 22),
                ("mask", "mask", 1, None, 23),
            ],
        ),
        (
            "{{x}} {q}\n\tend}}",
            [("text", "{x} ", 1, None, 0), ("field", "q", 1, None, 6), ("text", "\n\tend}", 1, None, 9)],
        ),
        ("{{{q}}}", [("text", "{", 1, None, 0), ("field", "q", 1, None, 2), ("text", "}", 1, None, 5)]),
        ('{soft:"say \\"hi\\" {x}"}', [("soft", "soft", 0, 'say "hi" {x}', 0)]),
        ("plain text", [("text", "plain text", 1, None, 0)]),
        ("", []),
    ],
)
def test_parse_forms(source, expected):
    template = parse_template(source)
    assert template.source == source
    assert template.segments == tuple(
        Segment(kind=k, value=v, count=c, init_text=i, column=col) for k, v, c, i, col in expected
    )


def test_template_properties():
    template = parse_template("{soft:3} {a} {b} {a} {soft} {mask}")
    assert template.fields == ("a", "b")
    assert template.has_mask and not parse_template("{a}").has_mask
    assert template.num_soft == 4
    assert template.soft_init_texts() == [None, None]


def test_init_text_soft_is_sized_by_tokenizer():
    tok = tiny_tokenizer()
    template = parse_template('{soft:"it was"} {text} {soft:2}')
    assert template.soft_init_texts() == ["it was", None]
    with pytest.raises(TemplateError, match=r"bind\(tokenizer\)"):
        template.num_soft
    assert template.bind(tok).num_soft == 4
    assert template.soft_init_ids(tok) == [ids(tok, "it was"), None]


@pytest.mark.parametrize(
    "source, problem, column",
    [
        ("ab {text", "unclosed '{'", 3),
        ("ab {text {mask}", "unclosed '{'", 3),
        ("a} b", "stray '}'", 1),
        ("x {} y", "empty placeholder", 2),
        ("{soft:0}", "got '0'", 6),
        ("{soft:abc}", "got 'abc'", 6),
        ("{soft:-2}", "got '-2'", 6),
        ('{soft:"it was}', "unterminated quote", 6),
        ('{soft:"it"x}', "unexpected 'x'", 10),
        ('{soft:""}', "empty init text", 6),
        ("{mask} and {mask}", "second {mask}", 11),
        ("{1abc}", "bad placeholder {1abc}", 1),
        ("{te xt}", "bad placeholder {te xt}", 1),
        ("{mask:2}", "bad placeholder {mask:2}", 1),
    ],
)
def test_syntax_errors_quote_template_and_point_at_column(source, problem, column):
    with pytest.raises(TemplateError) as info:
        parse_template(source)
    message = str(info.value)
    assert problem in message
    assert repr(source) in message
    shown, caret = message.splitlines()[-2:]
    assert shown == "    " + source
    assert caret == " " * (4 + column) + "^"
    assert f"column {column + 1}" in message


def test_syntax_error_in_multiline_template_names_line():
    with pytest.raises(TemplateError) as info:
        parse_template("first {a}\nsecond } here")
    assert "line 2, column 8" in str(info.value)
    assert str(info.value).splitlines()[-2:] == ["    second } here", "           ^"]


# --- encoding ------------------------------------------------------------------------------------------

EXAMPLE = {"text": "the movie was great", "text_b": "was it good", "unused": "x"}


def test_encode_causal_append_drops_text_after_mask():
    tok = tiny_tokenizer("causal")
    enc = parse_template("{soft:2} {text} It was {mask}. Bye {text_b}").encode(EXAMPLE, tok, answer="append")
    assert enc == EncodedPrompt(
        input_ids=ids(tok, "the movie was great it was"), soft_positions=[0, 0], answer_index=6
    )


def test_encode_soft_positions_inside_and_at_end():
    tok = tiny_tokenizer("causal")
    template = parse_template("{soft} Premise: {text} Question: {text_b}? {soft:2}{text_b}{soft}")
    enc = template.encode(EXAMPLE, tok, answer="none")
    assert enc.input_ids == ids(tok, "premise : the movie was great question : was it good ? was it good")
    assert enc.soft_positions == [0, 12, 12, 15]
    assert enc.answer_index is None


def test_encode_masked_tokenizer_shifts_positions_by_cls():
    tok = tiny_tokenizer("masked")
    template = parse_template("{soft:2} {text} {soft} it was {mask} .")
    enc = template.encode(EXAMPLE, tok, answer="mask_token")
    assert enc.input_ids == ids(tok, "[CLS] the movie was great it was [MASK] . [SEP]")
    assert enc.soft_positions == [1, 1, 5]
    assert enc.answer_index == 7 and enc.input_ids[7] == tok.mask_token_id
    appended = template.encode(EXAMPLE, tok, answer="append")  # no [SEP] between prompt and answer
    assert appended.input_ids == ids(tok, "[CLS] the movie was great it was")
    assert appended.answer_index == 7 and appended.soft_positions == [1, 1, 5]
    none = template.encode(EXAMPLE, tok, answer="none")
    assert (
        none.input_ids == ids(tok, "[CLS] the movie was great it was . [SEP]") and none.answer_index is None
    )


def test_encode_seq2seq_mask_token_is_sentinel():
    tok = tiny_tokenizer("seq2seq")
    enc = parse_template("{text} it was {mask} .").encode(EXAMPLE, tok, answer="mask_token")
    assert enc.input_ids == ids(tok, "the movie was great it was <extra_id_0> . </s>")
    assert enc.answer_index == 6


def test_encode_python_backend_tokenizer_keeps_whitespace_and_strips_it_before_mask():
    template = parse_template("{soft}[{text}]\n {soft} x {mask} y")
    enc = template.encode({"text": "ab"}, CharTokenizer(), answer="mask_token")
    # the literal " x " before {mask} loses its trailing space; everything else is kept byte for byte
    assert enc.input_ids == [1, *chars("[ab]\n  x"), 3, *chars(" y"), 2]
    assert enc.soft_positions == [1, 7]
    assert enc.answer_index == 9
    assert template.encode({"text": "ab"}, CharTokenizer(), answer="none").input_ids == [
        1,
        *chars("[ab]\n  x  y"),
        2,
    ]


def test_encode_errors():
    causal, masked = tiny_tokenizer("causal"), tiny_tokenizer("masked")
    with pytest.raises(TemplateError, match="has no mask token"):
        parse_template("{text} {mask}").encode(EXAMPLE, causal, answer="mask_token")
    with pytest.raises(TemplateError, match="needs a {mask} slot"):
        parse_template("{text}").encode(EXAMPLE, masked, answer="mask_token")
    with pytest.raises(TemplateError, match=r"no field 'question'.*keys: \['text', 'text_b', 'unused'\]"):
        parse_template("{question} {mask}").encode(EXAMPLE, causal)
    with pytest.raises(TemplateError, match="field 'text' must be a str, got int"):
        parse_template("{text}").encode({"text": 3}, causal)
    with pytest.raises(ConfigError, match="answer='mask'"):
        parse_template("{text}").encode(EXAMPLE, causal, answer="mask")


def test_empty_field_is_allowed():
    tok = tiny_tokenizer()
    enc = parse_template("{soft} {text} it was {mask}").encode({"text": ""}, tok)
    assert enc == EncodedPrompt(input_ids=ids(tok, "it was"), soft_positions=[0], answer_index=2)


def test_truncate_cuts_from_end_of_longest_field_and_warns():
    tok = tiny_tokenizer()
    template = parse_template("{soft:2} premise : {text} question : {text_b} {mask}")
    example = {"text": "the movie was great and the acting was good", "text_b": "was it good"}
    # real = 2 + 9 + 2 + 3 = 16, virtual = 2, reserved = 2 -> 20; max 15 cuts 5 tokens, all from `text`
    with pytest.warns(UserWarning, match=r"cut 5 tokens from the end of field\(s\) text") as record:
        enc = template.encode(example, tok, max_length=15, reserved=2)
    assert len(record) == 1
    assert enc.input_ids == ids(tok, "premise : the movie was great question : was it good")
    assert len(enc.input_ids) + len(enc.soft_positions) + 2 == 15


def test_truncate_shares_cut_between_fields_once_equal():
    tok = tiny_tokenizer()
    template = parse_template("{text} : {text_b}")
    example = {"text": "one two three four five", "text_b": "it was good"}
    with pytest.warns(UserWarning, match=r"cut 5 tokens .* text, text_b"):
        enc = template.encode(example, tok, max_length=4)
    # text 5 -> 3 (equal to text_b), then 3 more split 2 / 1 between the tied fields, earlier field first
    assert enc.input_ids == ids(tok, "one : it was")


def test_fits_exactly_without_warning():
    tok = tiny_tokenizer()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        enc = parse_template("{soft:2} {text}").encode(EXAMPLE, tok, max_length=7, reserved=1)
    assert enc.input_ids == ids(tok, "the movie was great")


def test_overflow_error_mode_names_lengths():
    tok = tiny_tokenizer("masked")
    template = parse_template("{soft:3} {text} it was {mask}")
    with pytest.raises(
        InputTooLong, match=r"9 real \+ 3 virtual \+ 1 reserved = 13 positions.*max_length=10"
    ):
        template.encode(EXAMPLE, tok, answer="mask_token", max_length=10, reserved=1, on_overflow="error")


@pytest.mark.parametrize("on_overflow", ["truncate", "error"])
def test_overflow_that_fields_cannot_absorb_raises_in_both_modes(on_overflow):
    tok = tiny_tokenizer()
    template = parse_template("{soft:3} it was the movie {text}")
    with pytest.raises(InputTooLong, match="even with every field emptied it needs 7"):
        template.encode(EXAMPLE, tok, max_length=6, on_overflow=on_overflow)


def test_encode_batch_matches_single():
    tok = tiny_tokenizer("masked")
    template = parse_template("{soft} {text} {mask}")
    examples = [{"text": "good movie"}, {"text": ""}, {"text": "the plot was bad"}]
    batch = encode_batch(template, examples, tok, answer="mask_token")
    assert batch == [template.encode(e, tok, answer="mask_token") for e in examples]
    assert [e.answer_index for e in batch] == [3, 1, 5]


def byte_level_bpe():
    """A tiny byte-level BPE (GPT-2 / SmolLM2 style: a leading space is part of the word's token)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    corpus = [
        "Review: the movie was great. Sentiment: positive",
        "Review: a dull film. Sentiment: negative",
    ] * 20
    backend.train_from_iterator(
        corpus,
        trainers.BpeTrainer(
            vocab_size=300, show_progress=False, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
        ),
    )
    return PreTrainedTokenizerFast(tokenizer_object=backend)


@pytest.mark.parametrize(
    "source, rendered",
    [
        ("Review: {text}\nSentiment: {mask}", "Review: the movie was great\nSentiment:"),
        ("{text} Sentiment:{mask}", "the movie was great Sentiment:"),
        ("Review:\n{text}", "Review:\nthe movie was great"),
    ],
)
def test_byte_level_bpe_encodes_like_the_running_text(source, rendered):
    """A literal's trailing space joins the field's first word, as when the whole line is tokenized at once."""
    tok = byte_level_bpe()
    enc = parse_template(source).encode(EXAMPLE, tok, answer="append")
    assert enc.input_ids == tok.encode(rendered, add_special_tokens=False)
    assert tok.convert_ids_to_tokens(enc.input_ids).count("Ġ") == 0
