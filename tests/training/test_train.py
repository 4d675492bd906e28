"""The training loop: config checks, determinism, accumulation, multi-task batching, early stopping, heads."""

import dataclasses
import json
import random

import pytest
import torch

from softprompt.core.model import PromptedModel
from softprompt.data import TaskSpec
from softprompt.errors import ConfigError
from softprompt.methods import make_config
from softprompt.tasks import make_task
from softprompt.testing.models import tiny_model
from softprompt.testing.tokenizer import tiny_tokenizer
from softprompt.training import TrainConfig, TrainJob, evaluate, read_log, train
from softprompt.training.batches import Plan, permutation

SPEC = TaskSpec(
    name="toy",
    task="classification",
    text_fields=("text",),
    label_field="label",
    labels=("negative", "positive"),
    default_templates=("{text} it was {mask}",),
    default_verbalizer={"positive": ["good"], "negative": ["bad"]},
)
POS, NEG = ["good", "great", "fine", "excellent"], ["bad", "awful", "boring", "terrible"]


def examples(n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    return [
        {
            "text": f"the movie was {rng.choice(POS if i % 2 else NEG)}",
            "label": "positive" if i % 2 else "negative",
        }
        for i in range(n)
    ]


TRAIN, VALID = examples(24), examples(8, seed=1)


def setup(method="prompt-tuning", family="llama", head=None, n=3, **fields):
    torch.manual_seed(0)
    kind = "masked" if family == "bert" else "causal"
    model = PromptedModel(tiny_model(family), tokenizer=tiny_tokenizer(kind))
    model.add_prompt("p", make_config(method, num_virtual_tokens=n, **fields), seed=0)
    return model, make_task(model, SPEC, head=head, virtual_tokens=n)


def config(**kw) -> TrainConfig:
    base = {"steps": 6, "batch_size": 4, "lr": 0.1, "eval_every": 3, "save_every": 3, "log_every": 1}
    return TrainConfig(**{**base, **kw})


# ----- config -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "field, value, message",
    [
        ("steps", 0, "steps=0 is out of range; accepted: [1, 10000000]"),
        ("lr", 0.0, "lr=0.0 is out of range; accepted: (0, 10]"),
        ("warmup_ratio", 1.5, "warmup_ratio=1.5 is out of range"),
        ("scheduler", "step", "scheduler='step' is not accepted; choose one of: linear, cosine, constant"),
        ("mixed_precision", "fp8", "mixed_precision='fp8' is not accepted"),
        ("patience", 0, "patience=0 is out of range"),
        ("eval_examples", 0, "eval_examples=0 is out of range"),
        ("steps", "10", "steps='10' has type str; expected int"),
        ("gradient_checkpointing", 1, "gradient_checkpointing=1 has type int; expected bool"),
    ],
)
def test_config_fields_are_checked_by_name(field, value, message):
    with pytest.raises(ConfigError) as e:
        TrainConfig(**{field: value})
    assert message in str(e.value)


def test_config_fields_all_documented():
    from softprompt.commands.fields import field_docs

    docs = field_docs(TrainConfig)
    assert {f.name for f in dataclasses.fields(TrainConfig)} == set(docs) and all(docs.values())
    assert TrainConfig(lr=1).lr == 1.0 and isinstance(TrainConfig(lr=1).lr, float)


# ----- data order -------------------------------------------------------------------------------------------
def test_data_order_is_seeded_per_epoch_and_split_across_ranks():
    assert permutation(10, 0, 0, 1) == permutation(10, 0, 0, 1) != permutation(10, 0, 0, 2)
    jobs = [TrainJob("p", None, list(range(10)), [])]
    one = Plan(jobs, batch_size=4, seed=0)
    two = Plan(jobs, batch_size=4, seed=0, world=2)
    for k in range(6):  # process r of 2 takes rows [2r, 2r+2) of the global batch
        assert (
            two.micro_batch(k, 0)[0].examples + two.micro_batch(k, 1)[0].examples
            == one.micro_batch(k)[0].examples
        )
    seen = [x for k in range(5) for x in one.micro_batch(k)[0].examples]  # 20 positions = 2 epochs
    assert sorted(seen[:10]) == sorted(seen[10:]) == list(range(10)) and seen[:10] != seen[10:]


def test_mixed_plan_shows_every_prompt_every_example_once_per_epoch():
    task, data = object(), list(range(6))
    plan = Plan([TrainJob("a", task, data, []), TrainJob("b", task, data, [])], batch_size=4, seed=0)
    assert plan.mode == "mixed"
    groups = [plan.micro_batch(k)[0] for k in range(3)]  # 12 rows = one epoch of 6 examples x 2 prompts
    pairs = sorted((p, x) for g in groups for p, x in zip(g.prompts, g.examples))
    assert pairs == sorted((p, x) for p in "ab" for x in data)
    assert Plan([TrainJob("a", task, data, []), TrainJob("b", object(), data, [])], 4, 0).mode == "separate"


# ----- the loop ---------------------------------------------------------------------------------------------
def test_seeded_runs_are_bit_identical_and_the_loss_falls(tmp_path):
    runs = []
    for name in ("a", "b"):
        model, task = setup()
        train(
            model, TrainJob("p", task, TRAIN, VALID), config(steps=8, lr=0.3), tmp_path / name, progress=False
        )
        runs.append((model.bank.get("p").embedding.detach().clone(), read_log(tmp_path / name)))
    (w1, log1), (w2, log2) = runs
    assert torch.equal(w1, w2)
    losses = [r["loss"] for r in log1 if "loss" in r]
    assert losses == [r["loss"] for r in log2 if "loss" in r] and len(losses) == 8
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3


def test_run_folder_layout_and_saved_prompts(tmp_path):
    model, task = setup()
    result = train(
        model,
        TrainJob("p", task, TRAIN, VALID, info={"dataset": "toy"}),
        config(),
        tmp_path,
        progress=False,
        run_info={"model": "tiny"},
    )
    assert (
        result.steps == 6 and result.trainable_params == 3 * 32 and set(result.metrics["p"]) >= {"accuracy"}
    )
    run = json.loads((tmp_path / "run.json").read_text())
    assert (
        run["status"] == "finished" and run["run"]["model"] == "tiny" and run["run"]["config"]["steps"] == 6
    )
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["latest", "step-3", "step-6"]
    best = json.loads((tmp_path / "best" / "p" / "prompt.json").read_text())
    assert best["step"] == result.best_step["p"] and best["metrics"] == result.metrics["p"]
    assert best["template"] == "{text} it was {mask}" and best["dataset"] == "toy"
    assert best["verbalizer"] == {"positive": ["good"], "negative": ["bad"]}
    from safetensors.torch import load_file

    final = load_file(str(tmp_path / "final" / "p" / "prompt.safetensors"))
    assert torch.equal(final["embedding"], model.bank.get("p").embedding.detach())
    evals = [r for r in read_log(tmp_path) if "eval" in r]
    assert [r["step"] for r in evals] == [3, 6]
    assert evals[-1]["eval"]["p"] == evaluate(model, task, VALID, "p")  # the public evaluate scores the same


def test_gradient_accumulation_matches_a_bigger_batch(tmp_path):
    weights = []
    for i, (batch, accum) in enumerate([(8, 1), (4, 2), (2, 4)]):
        model, task = setup()
        train(
            model,
            TrainJob("p", task, TRAIN, []),
            config(batch_size=batch, grad_accum=accum),
            tmp_path / str(i),
            progress=False,
        )
        weights.append(model.bank.get("p").embedding.detach().clone())
    torch.testing.assert_close(weights[1], weights[0], atol=1e-6, rtol=0)
    torch.testing.assert_close(weights[2], weights[0], atol=1e-6, rtol=0)


def test_jobs_sharing_a_task_train_in_mixed_batches(tmp_path):
    model, task = setup()
    model.add_prompt("q", make_config("prefix-tuning", num_virtual_tokens=2, mlp_hidden=8), seed=1)
    before = {n: [p.detach().clone() for p in model.bank.get(n).parameters()] for n in ("p", "q")}
    result = train(
        model,
        [TrainJob("p", task, TRAIN, VALID), TrainJob("q", task, TRAIN, VALID)],
        config(),
        tmp_path,
        progress=False,
    )
    assert result.mode == "mixed" and set(result.metrics) == {"p", "q"}
    for n in ("p", "q"):
        after = list(model.bank.get(n).parameters())
        assert all(not torch.equal(a, b) for a, b in zip(after, before[n]))
        assert (tmp_path / "final" / n / "prompt.safetensors").exists()


def test_early_stopping_after_patience_evaluations_without_improvement(tmp_path):
    model, task = setup()
    cfg = config(
        steps=40, lr=1e-9, eval_every=2, save_every=0, patience=2
    )  # lr ~0: the metric never improves
    result = train(model, TrainJob("p", task, TRAIN, VALID), cfg, tmp_path, progress=False)
    assert result.stopped_early and result.steps == 6 and result.best_step == {"p": 2}
    assert (tmp_path / "checkpoints" / "step-6").is_dir()  # the stopping step is checkpointed


def test_pooled_head_is_trained_and_saved_with_the_prompt(tmp_path):
    model, task = setup("p-tuning-v2", family="bert", head="mean", dropout=0.0)
    head_before = task.head.classifier.weight.detach().clone()
    result = train(model, TrainJob("p", task, TRAIN, VALID), config(), tmp_path, progress=False)
    assert result.trainable_params == sum(p.numel() for p in model.trainable_parameters()) + sum(
        p.numel() for p in task.head.parameters()
    )
    assert not torch.equal(task.head.classifier.weight, head_before)
    from safetensors.torch import load_file

    saved = load_file(str(tmp_path / "final" / "p" / "prompt.safetensors"))
    assert torch.equal(saved["head.classifier.weight"], task.head.classifier.weight.detach())


def test_prompt_without_parameters_is_only_evaluated(tmp_path):
    model, task = setup("hard")
    result = train(model, TrainJob("p", task, TRAIN, VALID), config(), tmp_path, progress=False)
    assert result.steps == 0 and result.trainable_params == 0
    assert result.metrics["p"] == evaluate(model, task, VALID, "p")
    assert (tmp_path / "final" / "p" / "prompt.json").exists() and not (tmp_path / "checkpoints").exists()


def test_bf16_autocast_trains_on_cpu(tmp_path):
    losses = {}
    for precision in ("no", "bf16"):
        model, task = setup()
        before = model.bank.get("p").embedding.detach().clone()
        result = train(
            model,
            TrainJob("p", task, TRAIN, []),
            config(steps=2, mixed_precision=precision),
            tmp_path / precision,
            progress=False,
        )
        assert not torch.equal(model.bank.get("p").embedding, before)
        assert model.bank.get("p").embedding.dtype == torch.float32  # parameters stay float32
        assert result.final_loss == read_log(tmp_path / precision)[-1]["loss"]  # the last step's loss
        losses[precision] = result.final_loss
    # the same two steps in bf16: close to float32 (bf16 keeps ~3 digits), yet not float32 itself
    assert losses["bf16"] == pytest.approx(losses["no"], rel=2e-2) and losses["bf16"] != losses["no"]


def test_jobs_are_checked(tmp_path):
    model, task = setup()
    with pytest.raises(ConfigError, match="no prompt named 'x'"):
        train(model, TrainJob("x", task, TRAIN, []), config(), tmp_path / "a", progress=False)
    with pytest.raises(ConfigError, match="each job needs its own prompt"):
        train(model, [TrainJob("p", task, TRAIN, [])] * 2, config(), tmp_path / "b", progress=False)
