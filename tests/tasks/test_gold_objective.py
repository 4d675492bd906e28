"""Probing's default training objective: the gold word's own LM loss, one row per example (not one per
candidate), equal to the candidate scorer's gold-word score; classification keeps the candidate cross-entropy."""

import pytest
import torch

from softprompt.core.model import PromptedModel
from softprompt.errors import ConfigError
from softprompt.methods import make_config
from softprompt.prompting.verbalizer import Verbalizer
from softprompt.tasks import VerbalizerTask
from softprompt.testing.models import tiny_model
from softprompt.testing.tokenizer import tiny_tokenizer

EXAMPLES = [
    {"text": "the movie was great", "label": "a"},
    {"text": "it was bad", "label": "b"},
    {"text": "good", "label": "c"},
]
WORDS = {"a": ["very good"], "b": ["not bad at all"], "c": ["bad"]}  # one word per label, 1..4 tokens


def _task(family, kind, **kw):
    torch.manual_seed(0)
    m = PromptedModel(tiny_model(family), tokenizer=tiny_tokenizer(kind))
    m.add_prompt("pt", make_config("prompt-tuning", num_virtual_tokens=2, init="random"))
    m.add_prompt("v2", make_config("p-tuning-v2", num_virtual_tokens=2, dropout=0.0))
    return m, VerbalizerTask(m, "{text} it was {mask} .", Verbalizer.from_spec(WORDS), **kw)


@pytest.mark.parametrize(("family", "kind"), [("llama", "causal"), ("gpt2", "causal"), ("bert", "masked")])
def test_gold_loss_is_the_gold_words_score(family, kind):
    m, task = _task(family, kind, probing=True)
    assert task.objective == "gold"
    batch, rows = task.collate(EXAMPLES), ["pt", "v2", None]
    loss = task.loss(m, batch, rows)
    with torch.no_grad():
        scores = task.scores(m, batch, rows)  # (B, labels): each label's one word, mean token log-prob
    expected = -scores[torch.arange(3), batch["labels"]].mean()
    torch.testing.assert_close(loss.detach(), expected, atol=1e-5, rtol=0)
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in m.trainable_parameters(["pt", "v2"]))


def test_classification_keeps_candidate_cross_entropy():
    m, task = _task("llama", "causal")
    assert task.objective == "candidates"
    batch, rows = task.collate(EXAMPLES), ["pt", "pt", None]
    ce = torch.nn.functional.cross_entropy(task.scores(m, batch, rows), batch["labels"])
    torch.testing.assert_close(task.loss(m, batch, rows), ce)
    gold = VerbalizerTask(m, "{text} it was {mask} .", Verbalizer.from_spec(WORDS), objective="gold")
    assert not torch.allclose(gold.loss(m, batch, rows), ce)


def test_unknown_objective_is_named():
    with pytest.raises(ConfigError, match="objective"):
        _task("llama", "causal", objective="contrastive")
