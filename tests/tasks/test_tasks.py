"""Tasks over tiny models: label-word scoring paths agree, heads never see virtual tokens, generation runs."""

import pytest
import torch

from softprompt.core.model import PromptedModel
from softprompt.errors import TemplateError
from softprompt.methods import make_config
from softprompt.prompting.verbalizer import Verbalizer
from softprompt.tasks import GenerationTask, HeadClassificationTask, LabelingTask, VerbalizerTask
from softprompt.testing.models import tiny_model
from softprompt.testing.tokenizer import tiny_tokenizer

KINDS = {
    "llama": "causal",
    "gpt2": "causal",
    "bert": "masked",
    "roberta": "masked",
    "t5": "seq2seq",
    "bart": "seq2seq",
}
EXAMPLES = [
    {"text": "the movie was great", "label": "positive"},
    {"text": "it was bad", "label": "negative"},
    {"text": "good", "label": "positive"},
]


def _model(family, *methods):
    m = PromptedModel(tiny_model(family), tokenizer=tiny_tokenizer(KINDS[family]))
    for meth, n in methods:
        m.add_prompt(meth.replace("-", "_"), make_config(meth, num_virtual_tokens=n))
    return m


@pytest.mark.parametrize("family", ["llama", "gpt2", "bert", "roberta"])
def test_single_token_fast_path_equals_per_word_scoring(family):
    m = _model(family, ("prompt-tuning", 3), ("prefix-tuning", 2))
    task = VerbalizerTask(
        m, "{text} it was {mask} .", Verbalizer.from_spec({"positive": "good", "negative": "bad"})
    )
    assert task.single
    batch, rows = task.collate(EXAMPLES), ["prompt_tuning", "prefix_tuning", None]
    fast = task.scores(m, batch, rows)
    task.single = False
    torch.testing.assert_close(task.scores(m, batch, rows), fast, atol=1e-5, rtol=0)


@pytest.mark.parametrize("family", list(KINDS))
def test_verbalizer_loss_trains_p_tuning_with_soft_tokens_inside_template(family):
    m = _model(family, ("p-tuning", 3))
    task = VerbalizerTask(
        m,
        "{soft:2} {text} it was {soft} {mask} .",
        Verbalizer.from_spec({"positive": ["very good"], "negative": "bad"}),
    )
    # a prompt is the same for every input: on a random tiny model it can at least learn to answer "bad"
    # (how far the loss can fall is bounded by the tiny model's small, layer-normed logits)
    batch = task.collate([{**ex, "label": "negative"} for ex in EXAMPLES])
    opt = torch.optim.Adam(m.trainable_parameters(), lr=0.1)
    first = task.loss(m, batch, ["p_tuning"] * 3).item()
    for _ in range(40):
        loss = task.loss(m, batch, ["p_tuning"] * 3)
        opt.zero_grad(), loss.backward(), opt.step()
    assert loss.item() < first - 1e-3
    assert task.predict(m, batch, ["p_tuning"] * 3) == [1, 1, 1]


def test_template_soft_count_must_match_prompt():
    m = _model("llama", ("p-tuning", 3))
    task = VerbalizerTask(
        m, "{soft:2} {text} {mask}", Verbalizer.from_spec({"positive": "good", "negative": "bad"})
    )
    with pytest.raises(TemplateError, match="2 soft tokens but prompt 'p_tuning' provides 3"):
        task.scores(m, task.collate(EXAMPLES), ["p_tuning"] * 3)


@pytest.mark.parametrize("method", ["prompt-tuning", "p-tuning-v2"])
@pytest.mark.parametrize("family", ["bert", "llama"])
def test_token_classification_never_sees_virtual_positions(family, method):
    m = _model(family, (method, 4))
    task = LabelingTask(m, ["O", "PERIOD", "CAP"])
    exs = [
        {"tokens": ["the", "movie", "was", "great"], "tags": ["CAP", "O", "O", "PERIOD"]},
        {"tokens": ["bad"], "tags": ["CAP"]},
    ]
    batch = task.collate(exs)
    logits = task.logits(m, batch, [method.replace("-", "_")] * 2)
    assert logits.shape[:2] == batch["input_ids"].shape  # caller-aligned: no virtual positions
    preds = task.predict(m, batch, [method.replace("-", "_")] * 2)
    assert [len(p) for p in preds] == [4, 1]
    assert {t for p in preds for t in p} <= {"O", "PERIOD", "CAP"}
    # gold CAP O O PERIOD | CAP, predicted CAP O PERIOD PERIOD | O: 3 of 5 tags right; over the non-O tags
    # 2 true positives (CAP@0, PERIOD@3), 1 false positive (PERIOD@2), 1 false negative (CAP@4): F1 = 2/3
    scores = task.metrics([["CAP", "O", "PERIOD", "PERIOD"], ["O"]], task.gold(exs))
    assert scores == pytest.approx({"token_f1": 2 / 3, "token_accuracy": 3 / 5})


def test_pooled_head_classification_learns():
    m = _model("bert", ("p-tuning-v2", 4))
    task = HeadClassificationTask(m, ["positive", "negative"], dropout=0.0, pool="mean")
    batch = task.collate(EXAMPLES)
    params = m.trainable_parameters() + list(task.head.parameters())
    opt = torch.optim.Adam(params, lr=0.05)
    for _ in range(30):
        loss = task.loss(m, batch, ["p_tuning_v2"] * 3)
        opt.zero_grad(), loss.backward(), opt.step()
    assert task.predict(m, batch, ["p_tuning_v2"] * 3) == [0, 1, 0]


@pytest.mark.parametrize("family", ["llama", "t5"])
def test_generation_task_loss_and_predict(family):
    m = _model(family, ("prefix-tuning", 3))
    task = GenerationTask(m, "{text} :", max_new_tokens=4)
    exs = [{"text": "the movie was great", "target": "good"}, {"text": "bad", "target": "it was bad"}]
    batch = task.collate(exs)
    assert torch.isfinite(task.loss(m, batch, ["prefix_tuning"] * 2))
    rows = ["prefix_tuning", None]
    preds = task.predict(m, batch, rows)
    alone = [task.predict(m, task.collate([ex]), [row])[0] for ex, row in zip(exs, rows)]
    assert preds == alone  # a mixed, left-padded batch generates what each row generates alone
    assert all(len(task.tok(p, add_special_tokens=False)["input_ids"]) <= 4 for p in preds)  # max_new_tokens
    ids = torch.tensor([batch["encoded"][1].input_ids])  # the row without a prompt: the backbone's own greedy
    ref = m.backbone.generate(
        ids, attention_mask=torch.ones_like(ids), max_new_tokens=4, do_sample=False,
        eos_token_id=task.eos, pad_token_id=task.tok.pad_token_id,
    )[0].tolist()  # fmt: skip
    new = ref[ids.shape[1] :] if family == "llama" else ref[1:]  # after the input / the decoder start
    new = new[: new.index(task.eos)] if task.eos in new else new
    assert preds[1] == task.tok.decode(new, skip_special_tokens=True).strip()
    assert family != "llama" or len(preds[0].split()) == 4  # the tiny llama never says EOS in 4 tokens
    # ROUGE-L F1 per row, averaged: exact = 1; "it was" vs "it was bad": P 1, R 2/3 -> F 0.8
    assert task.metrics(["good", "it was"], task.gold(exs))["rougeL"] == pytest.approx((1 + 0.8) / 2)
    assert task.metrics(["bad", "great"], task.gold(exs))["rougeL"] == 0.0


@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_last_only_logits_equal_full_logits(family):
    m = _model(family, ("prompt-tuning", 3), ("prefix-tuning", 2))
    ids = torch.randint(5, 200, (3, 6))
    mask = torch.ones_like(ids)
    mask[1, 4:] = 0
    rows = ["prompt_tuning", "prefix_tuning", None]
    full = m(ids, mask, rows)
    last = m(ids, mask, rows, last_only=True, hidden=False)
    assert last.logits is None and last.hidden is None
    torch.testing.assert_close(last.next_logits, full.next_logits, atol=1e-5, rtol=0)
