"""Multi-token label words on causal LMs: each context runs once on the KV cache, the words' tokens batched
after it; the same log-probabilities (and gradients) as one full row per (example, word)."""

import pytest
import torch

from softprompt.core.model import PromptedModel
from softprompt.methods import make_config
from softprompt.prompting.verbalizer import Verbalizer
from softprompt.tasks import VerbalizerTask
from softprompt.testing.models import tiny_model
from softprompt.testing.tokenizer import tiny_tokenizer

CAUSAL = ["llama", "qwen2", "mistral", "gemma2", "gpt2"]
EXAMPLES = [
    {"text": "the movie was great", "label": "positive"},
    {"text": "it was bad", "label": "negative"},
    {"text": "good", "label": "positive"},
    {"text": "the film was not good at all", "label": "negative"},
]
WORDS = {"positive": ["very good", "great"], "negative": ["not bad at all", "bad"]}


def _setup(family, template):
    torch.manual_seed(0)
    m = PromptedModel(tiny_model(family), tokenizer=tiny_tokenizer("causal"))
    m.add_prompt("pt", make_config("prompt-tuning", num_virtual_tokens=2, init="random"))
    m.add_prompt("prefix", make_config("prefix-tuning", num_virtual_tokens=2, init="random", mlp_hidden=8))
    m.add_prompt("v2", make_config("p-tuning-v2", num_virtual_tokens=2, dropout=0.0))
    task = VerbalizerTask(m, template, Verbalizer.from_spec(WORDS))
    assert not task.single and task.table.token_ids.shape == (4, 4)
    return m, task


@pytest.mark.parametrize("family", CAUSAL)
@pytest.mark.parametrize("template", ["{text} it was {mask} .", "{soft:2} {text} it was {mask}"])
def test_cached_words_equal_one_row_per_word(family, template):
    m, task = _setup(family, template)
    rows = ["pt", "prefix", "v2", None] if "soft" not in template else ["pt", "pt", None, "pt"]
    enc = task.collate(EXAMPLES)["encoded"]
    ref = task._per_word(m, enc, rows)  # (B, W, T)
    ours = task._cached_words(m, enc, rows)
    mask = task.table.token_mask.expand_as(ref)
    torch.testing.assert_close(ours[mask], ref[mask], atol=1e-5, rtol=0)
    assert ref[mask].abs().min() > 0  # every scored token has a real log-probability


@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_cached_words_give_the_same_gradients(family):
    m, task = _setup(family, "{text} it was {mask} .")
    batch, rows = task.collate(EXAMPLES), ["v2", "prefix", "v2", "prefix"]
    grads = []
    for cached in (False, True):
        task_scores = task._cached_words if cached else task._per_word
        lp = task.table.label_scores(task_scores(m, batch["encoded"], rows))
        torch.nn.functional.cross_entropy(lp, batch["labels"]).backward()
        grads.append([p.grad.clone() for p in m.trainable_parameters(["v2", "prefix"])])
        m.zero_grad()
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)
    assert all(g.abs().sum() > 0 for g in grads[1])


def test_each_context_runs_once(monkeypatch):
    """The full-length context is run for B rows, never for B x W; only the words' tokens run per word."""
    m, task = _setup("llama", "{text} it was {mask} .")
    seen = []
    forward = m.backbone.forward

    def spy(*a, **kw):
        seen.append(tuple(kw["inputs_embeds"].shape[:2]))
        return forward(*a, **kw)

    monkeypatch.setattr(m.backbone, "forward", spy)
    batch = task.collate(EXAMPLES)
    task.scores(m, batch, ["v2"] * 4)
    longest = max(len(e.input_ids) for e in batch["encoded"])
    assert seen == [(4, longest), (4 * 4, 3)]  # the contexts, then 4 words x 3 remaining tokens each
