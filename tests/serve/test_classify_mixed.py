"""/v1/classify across prompts: requests of several prompts (methods, templates, verbalizers, a head) queued
together are scored in one forward, and every row equals what `softprompt predict` computes for it alone."""

import pytest
import torch

from softprompt.core.loading import load_model
from softprompt.serve import Engine, EngineConfig, PromptStore

from .serving import texts, write_reviews

RUNS = {  # name -> (method, extra train flags): other methods, templates (soft slots too), verbalizers, a head
    "words": ("prompt-tuning", ["--verbalizer", "positive=good;negative=bad", "--num-virtual-tokens", 3]),
    "slots": (
        "p-tuning",
        ["--template", "{text} {soft:2} it was {mask}", "--num-virtual-tokens", 2, "--encoder-hidden", 8],
    ),
    "prefix": (
        "prefix-tuning",
        ["--template", "the movie : {text} {mask}", "--verbalizer", "positive=great;negative=awful"],
    ),
    "head": ("p-tuning-v2", ["--head", "last", "--num-virtual-tokens", 2]),
}


@pytest.fixture(scope="module")
def runs(serve_assets, tmp_path_factory):
    from softprompt.cli import main

    root = tmp_path_factory.mktemp("classify")
    data = write_reviews(root / "reviews.jsonl")
    for name, (method, flags) in RUNS.items():
        argv = ["train", "--model", serve_assets["model"], "--method", method, "--dataset", data]
        argv += ["--out", root / "prompts" / name, "--name", name, "--steps", 2, "--batch-size", 4]
        argv += ["--lr", 0.3, "--quiet", *flags]
        assert main([str(a) for a in argv]) == 0
    return root / "prompts"


def predict_scores(model_dir, folder, name, inputs) -> torch.Tensor:
    """What `softprompt predict` scores for ``inputs`` with this one prompt (softmax aside), on its own model."""
    from softprompt.commands.predict import text_example
    from softprompt.tasks.trained import load_trained

    trained = load_trained(folder, load_model(model_dir))
    task = trained.task
    score = getattr(task, "scores", None) or task.logits
    with torch.no_grad():
        batch = task.collate([text_example(trained.meta, t) for t in inputs])
        return score(trained.model, batch, [trained.name] * len(inputs)).float()


def test_one_forward_for_every_prompt_equals_predict(serve_assets, runs):
    model = load_model(serve_assets["model"])
    store = PromptStore(model, runs)
    assert sorted(store.load_all()) == sorted(RUNS)
    eng = Engine(store, EngineConfig(classify_rows=64))
    seen = []
    model.backbone.register_forward_pre_hook(
        lambda m, a, kw: seen.append(kw["inputs_embeds"].shape[0]), with_kwargs=True
    )
    jobs = [(name, texts(2 + i % 3, seed=10 + i)) for i, name in enumerate([*RUNS, *RUNS])]
    got = [[] for _ in jobs]
    for (name, inputs), out in zip(jobs, got):  # all queued before the first step
        eng.submit(eng.classification(inputs, name, sink=out.append))
    eng.start()
    try:
        for out in got:
            for _ in range(600):
                if out:
                    break
                torch.multiprocessing.Event().wait(0.05)
        assert all(out and out[-1]["type"] == "scores" for out in got), [o[-1:] for o in got]
    finally:
        eng.stop()
    assert seen == [sum(len(t) for _, t in jobs)]  # one forward, every prompt's rows in it
    for (name, inputs), out in zip(jobs, got):
        want = predict_scores(serve_assets["model"], runs / name, name, inputs)
        torch.testing.assert_close(torch.tensor(out[-1]["scores"]), want, atol=1e-5, rtol=1e-5)
    assert len({tuple(out[-1]["scores"][0]) for out in got[: len(RUNS)]}) == len(RUNS)  # the prompts differ


@pytest.mark.parametrize("family", ["llama", "bert"])
def test_shared_forward_equals_each_task_alone(family):
    """Causal and masked LMs: one-token words of two templates (one with soft slots) share a forward; a task with
    multi-token words is scored on its own path; each equals its task's own scores."""
    from types import SimpleNamespace

    from softprompt.core.model import PromptedModel
    from softprompt.methods import make_config
    from softprompt.prompting.verbalizer import Verbalizer
    from softprompt.serve.tasks import score_mixed
    from softprompt.tasks.classify import VerbalizerTask
    from softprompt.testing.models import tiny_model
    from softprompt.testing.tokenizer import tiny_tokenizer

    model = PromptedModel(tiny_model(family), tiny_tokenizer("causal" if family == "llama" else "masked"))
    model.add_prompt("pt", make_config("prompt-tuning", num_virtual_tokens=3), seed=0)
    model.add_prompt("prefix", make_config("prefix-tuning", num_virtual_tokens=2), seed=1)
    specs = [  # (prompt, template, words)
        ("pt", "{text} {soft:3} it was {mask}", {"pos": "good", "neg": "bad"}),
        ("prefix", "the movie : {text} {mask}", {"pos": "great", "neg": "awful", "meh": "fine"}),
        ("pt", "{text} {mask}", {"pos": "very good", "neg": "not good"}),
        (None, "{text} it was {mask}", {"pos": "good", "neg": "poor"}),
    ]
    jobs = []
    for i, (key, template, words) in enumerate(specs):
        virtual = 3 if key == "pt" else 0
        task = VerbalizerTask(model, template, Verbalizer.from_spec(words), virtual_tokens=virtual)
        entry = SimpleNamespace(
            task=task, key=key, virtual_tokens=virtual, meta={"spec": {"text_fields": ["text"]}}
        )
        jobs.append((entry, texts(3 + i, seed=20 + i)))
    assert [j[0].task.single for j in jobs] == [True, True, False, True]
    got = score_mixed(model, jobs, rows=5)  # 5 rows per forward: jobs split across forwards too
    for (entry, inputs), out in zip(jobs, got):
        with torch.no_grad():
            want = entry.task.scores(
                model, entry.task.collate([{"text": t} for t in inputs]), [entry.key] * len(inputs)
            )
        torch.testing.assert_close(out, want.float(), atol=1e-5, rtol=1e-5)
