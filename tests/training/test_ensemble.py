"""Prompt ensembles in one forward: each member's probabilities equal its own ``predict``'s, the combination is
the mean (or the vote) of them, and the CLI's ``--prompt A --prompt B`` gives the same."""

import json

import pytest
import torch

import softprompt
from commands.test_cli import write_model_dir, write_reviews
from softprompt.cli import main
from softprompt.commands.predict import label_probabilities
from softprompt.errors import ConfigError
from softprompt.training.ensemble import predict_ensemble

METHODS = {"pt": ("prompt-tuning", 3), "prefix": ("prefix-tuning", 4), "ptuning": ("p-tuning", 5)}
WORDS = {"negative": "bad", "positive": "good"}
VERBALIZER = "negative=bad;positive=good"


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """Three prompts of different methods (and lengths) on one tiny backbone, saved as folders."""
    root = tmp_path_factory.mktemp("ensemble")
    model_dir = write_model_dir(root / "model")
    model = softprompt.load_model(str(model_dir))
    folders = {}
    for seed, (name, (method, n)) in enumerate(METHODS.items()):
        torch.manual_seed(seed)
        model.add_prompt(name, softprompt.make_config(method, num_virtual_tokens=n, init="random"), seed=seed)
        folders[name] = root / name
        softprompt.save_prompt(model, name, folders[name])
    rows = [json.loads(line) for line in write_reviews(root / "reviews.jsonl", n=10).read_text().splitlines()]
    return {"model": model_dir, "folders": folders, "data": root / "reviews.jsonl", "rows": rows}


def _members(saved, template="{text}\nAnswer: {mask}"):
    model = softprompt.load_model(str(saved["model"]))
    members = []
    for folder in saved["folders"].values():
        t = softprompt.load_trained(folder, model, verbalizer=WORDS, template=template)
        members.append((t.name, t.task))
    return model, members


def test_each_member_equals_its_own_predict_and_the_mean_combines_them(saved):
    model, members = _members(saved)
    inputs = [{"text": r["text"]} for r in saved["rows"]]
    result = predict_ensemble(model, members, inputs, batch_size=4)
    alone = {n: label_probabilities(model, task, inputs, n, 4) for n, task in members}
    for name, task in members:
        for got, want in zip(result.members[name], alone[name]):
            assert got == pytest.approx(want, abs=1e-5)
        own = softprompt.predict(model, task, inputs, name, batch_size=4)
        assert [max(p, key=p.get) for p in result.members[name]] == [task.verbalizer.labels[k] for k in own]
    assert len({json.dumps(result.members[n][0]) for n, _ in members}) == 3  # the members differ
    for i, combined in enumerate(result.probabilities):
        for label in WORDS:
            assert combined[label] == pytest.approx(sum(alone[n][i][label] for n, _ in members) / 3, abs=1e-5)
        assert result.predictions[i] == max(combined, key=combined.get)


def test_vote_takes_the_majority_label(saved):
    model, members = _members(saved)
    inputs = [{"text": r["text"]} for r in saved["rows"]]
    result = predict_ensemble(model, members, inputs, combine="vote")
    for i, votes in enumerate(result.votes):
        assert sum(votes.values()) == 3
        firsts = [max(result.members[n][i], key=result.members[n][i].get) for n, _ in members]
        assert votes == {label: firsts.count(label) for label in WORDS}
        assert result.predictions[i] == max(WORDS, key=lambda lab: (votes[lab], result.probabilities[i][lab]))


def test_members_with_their_own_template_score_in_their_own_forward(saved):
    model, members = _members(saved)
    other = softprompt.load_model(str(saved["model"]))
    folder = saved["folders"]["pt"]
    t = softprompt.load_trained(
        folder, model, name="pt-review", verbalizer=WORDS, template="Review: {text} {mask}"
    )
    inputs = [{"text": r["text"]} for r in saved["rows"][:4]]
    result = predict_ensemble(model, [members[0], (t.name, t.task)], inputs)
    alone = softprompt.load_trained(folder, other, verbalizer=WORDS, template="Review: {text} {mask}")
    want = label_probabilities(other, alone.task, inputs, alone.name, 16)
    for got, w in zip(result.members["pt-review"], want):
        assert got == pytest.approx(w, abs=1e-5)


def test_mistakes_are_named(saved):
    model, members = _members(saved)
    with pytest.raises(ConfigError, match="combine='max' is not accepted"):
        predict_ensemble(model, members, [{"text": "x"}], combine="max")
    with pytest.raises(ConfigError, match="distinct prompts"):
        predict_ensemble(model, [members[0], members[0]], [{"text": "x"}])
    flipped = softprompt.load_trained(
        saved["folders"]["pt"], model, name="flipped", verbalizer={"positive": "good", "negative": "bad"}
    )
    with pytest.raises(ConfigError, match="same labels, in the same order"):
        predict_ensemble(model, [members[0], (flipped.name, flipped.task)], [{"text": "x"}])


def test_cli_predict_and_eval_with_several_prompts(saved, capsys):
    folders = [str(f) for f in saved["folders"].values()]
    common = ["--model", str(saved["model"]), "--verbalizer", VERBALIZER, "--json"]
    singles = {}
    for name, folder in saved["folders"].items():
        assert main(["predict", "--prompt", str(folder), "--input", str(saved["data"]), *common]) == 0
        singles[name] = [row["scores"] for row in json.loads(capsys.readouterr().out)]
    argv = ["predict", *[a for f in folders for a in ("--prompt", f)], "--input", str(saved["data"]), *common]
    assert main(argv) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 10
    for i, row in enumerate(rows):
        for name in METHODS:
            assert row["members"][name] == pytest.approx(singles[name][i], abs=1e-5)
        assert row["scores"]["positive"] == pytest.approx(
            sum(singles[n][i]["positive"] for n in METHODS) / 3, abs=1e-5
        )
    argv = ["eval", *[a for f in folders for a in ("--prompt", f)], "--dataset", str(saved["data"])]
    assert main([*argv, "--split", "all", *common]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["prompt"] == list(METHODS) and out["examples"] == 10 and set(out["members"]) == set(METHODS)
    gold = [r["label"] for r in saved["rows"]]
    accuracy = sum(r["prediction"] == g for r, g in zip(rows, gold)) / len(gold)
    assert out["metrics"]["accuracy"] == pytest.approx(accuracy)
