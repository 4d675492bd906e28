"""``softprompt.load_trained``: a trained prompt folder with its task in one library call, equal to what the
CLI predicts; into a model already loaded (the server's way) under another name; checks before any model loads."""

import json

import pytest
import torch

import softprompt
from commands.test_cli import base_args, write_model_dir, write_reviews
from softprompt.cli import main


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("trained")
    assets = {
        "model": str(write_model_dir(root / "model")),
        "data": str(write_reviews(root / "reviews.jsonl", text="review", label="stars")),
    }
    assert main([str(a) for a in base_args(assets, root / "run")]) == 0
    return root / "run"


TEXTS = ["the movie was good and great", "the movie was dull and awful", ""]


def probabilities(trained, texts):
    field = trained.meta["spec"]["text_fields"][0]
    batch = trained.task.collate([{field: t} for t in texts])
    with torch.no_grad():
        return trained.task.scores(trained.model, batch, [trained.name] * len(texts)).softmax(-1)  # (B, C)


def test_load_trained_equals_the_cli_prediction(run_dir, capsys):
    trained = softprompt.load_trained(run_dir)
    assert isinstance(trained, softprompt.Trained) and trained.task is not None
    assert (
        trained.task.template.source
        == json.loads((run_dir / "run.json").read_text())["run"]["prompts"][0]["template"]
    )
    assert not trained.model.training  # loaded for use: eval mode, no dropout
    probs = probabilities(trained, TEXTS[:2])
    assert main(["predict", "--prompt", str(run_dir), "--text", TEXTS[0], "--json"]) == 0
    cli = json.loads(capsys.readouterr().out)[0]["scores"]
    labels = trained.task.verbalizer.labels
    assert {k: round(v, 5) for k, v in cli.items()} == {
        label: round(float(p), 5) for label, p in zip(labels, probs[0])
    }
    assert softprompt.predict(trained.model, trained.task, [{"text": TEXTS[1]}], trained.name) == [
        int(probs[1].argmax())
    ]


def test_load_into_a_loaded_model_under_another_name(run_dir):
    first = softprompt.load_trained(run_dir)
    again = softprompt.load_trained(run_dir, first.model, name="copy")
    assert (
        again.model is first.model
        and again.name == "copy"
        and {first.name, "copy"} <= set(first.model.bank.names())
    )
    assert torch.equal(probabilities(first, TEXTS), probabilities(again, TEXTS))


def test_read_trained_checks_before_any_model_loads(run_dir, tmp_path, monkeypatch):
    import shutil

    import softprompt.core.loading as loading

    monkeypatch.setattr(loading, "load_model", lambda *a, **k: pytest.fail("the model was loaded"))
    plan = softprompt.read_trained(run_dir, labels=["negative", "positive"])
    assert plan.recorded and plan.spec["labels"] == ["negative", "positive"] and plan.model_name
    folder = tmp_path / "p"
    shutil.copytree(plan.folder, folder)
    meta = json.loads((folder / "prompt.json").read_text())
    meta.pop("model")
    (folder / "prompt.json").write_text(json.dumps(meta))
    with pytest.raises(softprompt.ConfigError, match="does not record its model; pass model="):
        softprompt.load_trained(folder)
    meta.pop("spec")
    (folder / "prompt.json").write_text(json.dumps(meta))
    with pytest.raises(softprompt.PromptFileError, match="records no task"):
        softprompt.read_trained(folder)
    assert softprompt.read_trained(folder, need_task=False).spec is None
