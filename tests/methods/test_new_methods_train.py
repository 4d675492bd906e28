"""Multitask prompt tuning and the adaption prompt train with ``softprompt train`` (the one loop, their own
defaults and fields), save, and predict from the run folder with what the library gives."""

import json

import pytest

import softprompt
from commands.test_cli import write_model_dir, write_reviews
from softprompt.cli import main

CASES = {
    "multitask-prompt-tuning": ["--num-ranks", 2, "--trained", "factors"],
    "adaption-prompt": ["--adapter-layers", 1],
}


@pytest.mark.parametrize("method", list(CASES))
def test_trains_saves_and_predicts(method, tmp_path, capsys):
    model_dir, data = write_model_dir(tmp_path / "model"), write_reviews(tmp_path / "reviews.jsonl", n=16)
    argv = ["train", "--model", model_dir, "--method", method, "--dataset", data, "--out", tmp_path / "run"]
    argv += ["--num-virtual-tokens", 3, "--steps", 3, "--batch-size", 4, "--eval-every", 0, "--quiet"]
    argv += ["--verbalizer", "positive=good;negative=bad", *CASES[method]]
    assert main([str(a) for a in argv]) == 0
    capsys.readouterr()
    config = json.loads((tmp_path / "run" / "run.json").read_text())["run"]["config"]
    assert config["lr"] == softprompt.METHODS[method].train["lr"]
    trained = softprompt.load_trained(tmp_path / "run")
    module = trained.model.bank.get(trained.name)
    assert module.config.method == method
    if method == "adaption-prompt":
        assert module.gate.abs().sum() > 0  # the gate left zero: training reached it
    else:
        assert (
            module.config.trained == "factors"
            and module.cols.requires_grad
            and not module.shared.requires_grad
        )
    text = "the movie was good and great"
    assert main(["predict", "--prompt", str(tmp_path / "run"), "--text", text, "--json"]) == 0
    row = json.loads(capsys.readouterr().out)[0]
    want = softprompt.predict(trained.model, trained.task, [{"text": text}], trained.name)[0]
    assert row["prediction"] == trained.task.verbalizer.labels[want]
