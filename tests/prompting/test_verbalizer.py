import math

import pytest
import torch

from softprompt.errors import ConfigError, VerbalizerError
from softprompt.prompting.verbalizer import Verbalizer, aggregate_label_scores
from softprompt.testing.tokenizer import tiny_tokenizer


class CharTokenizer:
    """One id per character, so a leading space shows up as id 32."""

    unk_token_id = None
    pad_token_id = None

    def encode(self, text, add_special_tokens=False):
        return [ord(c) for c in text]


def test_from_spec_mapping_and_list():
    verbalizer = Verbalizer.from_spec({"pos": "great", "neg": ["bad", "awful"]})
    assert verbalizer.label_words == {"pos": ["great"], "neg": ["bad", "awful"]}
    assert verbalizer.labels == ["pos", "neg"]
    assert verbalizer.index("neg") == 1
    assert Verbalizer.from_spec(["positive", "negative"]).label_words == {
        "positive": ["positive"],
        "negative": ["negative"],
    }
    assert Verbalizer.from_spec(verbalizer) is verbalizer
    assert (
        Verbalizer.from_spec([0, 1]).index(1) == 1
    )  # integer labels stay integers; their words are "0", "1"


def test_verbalizer_errors_name_the_offending_value():
    with pytest.raises(VerbalizerError, match=r"label 'neg' has no label words"):
        Verbalizer(label_words={"pos": ["good"], "neg": []})
    with pytest.raises(VerbalizerError, match=r"label 'pos' has an empty"):
        Verbalizer(label_words={"pos": ["  "]})
    with pytest.raises(VerbalizerError, match=r"'good' is used by both 'pos' and 'neg'"):
        Verbalizer(label_words={"pos": ["good"], "neg": ["good"]})
    with pytest.raises(VerbalizerError, match="non-empty dict"):
        Verbalizer(label_words={})
    with pytest.raises(VerbalizerError, match="got 'pos'"):
        Verbalizer.from_spec("pos")
    with pytest.raises(VerbalizerError, match=r"unknown label 'neutral'; known labels: \['pos', 'neg'\]"):
        Verbalizer.from_spec({"pos": "good", "neg": "bad"}).index("neutral")
    with pytest.raises(ConfigError, match="aggregate='sum'"):
        Verbalizer(label_words={"pos": ["good"]}, aggregate="sum")


def test_tokenize_multi_token_phrases_and_unknown_words():
    tok = tiny_tokenizer()
    verbalizer = Verbalizer.from_spec({"pos": ["great", "very good"], "neg": "not bad at all"})
    vocab = tok.convert_tokens_to_ids
    assert verbalizer.tokenize(tok) == [
        [vocab(["great"]), vocab(["very", "good"])],
        [vocab(["not", "bad", "at", "all"])],
    ]
    with pytest.raises(
        VerbalizerError, match=r"'fantastic' of label 'pos' contains unknown tokens: \['\[UNK\]'\]"
    ):
        Verbalizer.from_spec({"pos": "fantastic"}).tokenize(tok)
    with pytest.raises(VerbalizerError, match=r"'fine' of label 'pos' tokenizes to no tokens"):
        Verbalizer.from_spec({"pos": "fine"}).tokenize(
            type("Empty", (), {"encode": lambda self, t, **k: []})()
        )


def test_leading_space_is_prepended():
    verbalizer = Verbalizer.from_spec({"a": "ok"})
    assert verbalizer.tokenize(CharTokenizer()) == [[[32, ord("o"), ord("k")]]]
    assert verbalizer.tokenize(CharTokenizer(), leading_space=False) == [[[ord("o"), ord("k")]]]


def test_flatten_pads_words_into_one_table():
    tok = tiny_tokenizer()
    verbalizer = Verbalizer.from_spec(
        {"pos": ["great", "very good"], "neg": ["bad"], "neu": ["not bad at all"]}
    )
    table = verbalizer.flatten(tok)
    vocab = tok.convert_tokens_to_ids
    pad = tok.pad_token_id
    assert table.token_ids.dtype == torch.long and table.token_ids.shape == (4, 4)
    assert table.token_ids.tolist() == [
        [*vocab(["great"]), pad, pad, pad],
        [*vocab(["very", "good"]), pad, pad],
        [*vocab(["bad"]), pad, pad, pad],
        vocab(["not", "bad", "at", "all"]),
    ]
    assert table.token_mask.dtype == torch.bool
    assert table.token_mask.sum(-1).tolist() == [1, 2, 1, 4]
    assert table.word_label.tolist() == [0, 0, 1, 2]
    assert table.num_labels == 3
    assert table.words == ("great", "very good", "bad", "not bad at all")


def test_table_scores_words_by_mean_or_sum_of_token_logprobs():
    table = Verbalizer.from_spec({"pos": ["great", "very good"], "neg": "bad"}).flatten(tiny_tokenizer())
    token_logprobs = torch.tensor([[[-1.0, -9.0], [-2.0, -4.0], [-0.5, -9.0]]])  # (B=1, W=3, T_max=2)
    assert table.word_scores(token_logprobs).tolist() == [[-1.0, -3.0, -0.5]]  # padding (-9) ignored
    summed = Verbalizer.from_spec({"pos": ["great", "very good"], "neg": "bad"}, normalize=False)
    assert summed.flatten(tiny_tokenizer()).word_scores(token_logprobs).tolist() == [[-1.0, -6.0, -0.5]]
    expected_pos = math.log(math.exp(-1.0) + math.exp(-3.0))
    assert table.label_scores(token_logprobs)[0].tolist() == pytest.approx([expected_pos, -0.5])


@pytest.mark.parametrize(
    "how, expected",
    [
        (
            "logsumexp",
            [[math.log(math.exp(-1) + math.exp(-2)), -3.0], [math.log(math.exp(-4) + math.exp(-0.5)), -1.0]],
        ),
        ("mean", [[-1.5, -3.0], [-2.25, -1.0]]),
        ("max", [[-1.0, -3.0], [-0.5, -1.0]]),
    ],
)
def test_aggregate_label_scores_against_hand_computation(how, expected):
    word_logprobs = torch.tensor([[-1.0, -3.0, -2.0], [-4.0, -1.0, -0.5]])  # (B=2, W=3)
    word_to_label = torch.tensor([0, 1, 0])
    out = aggregate_label_scores(word_logprobs, word_to_label, 2, how=how)
    assert out.shape == (2, 2)
    torch.testing.assert_close(out, torch.tensor(expected))


def test_aggregate_ignores_minus_inf_of_other_labels():
    out = aggregate_label_scores(torch.tensor([float("-inf"), -1.0]), torch.tensor([0, 1]), 2, how="mean")
    assert out.tolist() == [float("-inf"), -1.0]


def test_aggregate_errors():
    with pytest.raises(VerbalizerError, match=r"labels \[1\] have no words"):
        aggregate_label_scores(torch.zeros(2), torch.tensor([0, 2]), 3)
    with pytest.raises(VerbalizerError, match=r"must end in W=3"):
        aggregate_label_scores(torch.zeros(2, 2), torch.tensor([0, 1, 1]), 2)
    with pytest.raises(VerbalizerError, match=r"outside \[0, 2\)"):
        aggregate_label_scores(torch.zeros(2), torch.tensor([0, 2]), 2)
    with pytest.raises(ConfigError, match="how='sum'"):
        aggregate_label_scores(torch.zeros(2), torch.tensor([0, 1]), 2, how="sum")
