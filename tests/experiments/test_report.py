"""`softprompt report` over two runs on two datasets: one row per (run, dataset, split) with its own score and
example count, a real HTML table with inline plots, and evals of another dataset never overwrite a run's own."""

import json
import random

import pytest

from softprompt.cli import main
from softprompt.experiments.plots import run_label
from softprompt.experiments.report import _labels, read_run, run_rows


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    from softprompt.testing.models import tiny_model
    from softprompt.testing.tokenizer import tiny_tokenizer

    root = tmp_path_factory.mktemp("report")
    tiny_model("llama").save_pretrained(root / "model")
    tiny_tokenizer("causal").save_pretrained(root / "model")
    rng = random.Random(0)
    for name, n, column in (("reviews", 60, "review"), ("quotes", 40, "quote")):
        with open(root / f"{name}.jsonl", "w") as f:
            for i in range(n):
                word = rng.choice(["good", "great"] if i % 2 else ["bad", "awful"])
                f.write(
                    json.dumps({column: f"the movie was {word}", "y": "positive" if i % 2 else "negative"})
                )
                f.write("\n")
    common = ["--model", root / "model", "--method", "prompt-tuning", "--steps", 2, "--batch-size", 4]
    common += ["--template", "{text} it was {mask}", "--num-virtual-tokens", 2, "--quiet"]
    runs = {}
    for run, data, column in (("a", "reviews", "review"), ("b", "quotes", "quote")):
        fields = f"text={column},label=y"
        out = root / "runs" / run / "pt"  # both runs' folders are called "pt"
        argv = ["train", *common, "--dataset", root / f"{data}.jsonl", "--fields", fields, "--out", out]
        assert main([str(a) for a in argv]) == 0
        assert main(["eval", "--prompt", str(out), "--json"]) == 0
        runs[run] = out
    other = ["--dataset", str(root / "quotes.jsonl"), "--fields", "text=quote,label=y", "--split", "all"]
    assert main(["eval", "--prompt", str(runs["a"]), *other, "--json"]) == 0  # run a, scored on b's data too
    return root, runs


def test_each_eval_keeps_its_own_file(two_runs, capsys):
    _, runs = two_runs
    capsys.readouterr()
    names = sorted(p.name for p in runs["a"].glob("eval-*.json"))
    assert names == ["eval-quotes-all.json", "eval-reviews-test.json", "eval-test.json"]
    own = json.loads((runs["a"] / "eval-test.json").read_text())
    assert own["dataset"].endswith("reviews.jsonl") and own["examples"] == 6  # not overwritten by quotes
    assert json.loads((runs["a"] / "eval-quotes-all.json").read_text())["examples"] == 40


def test_report_of_two_runs_on_two_datasets(two_runs, capsys):
    root, runs = two_runs
    assert main(["report", str(runs["a"]), str(runs["b"]), "--out", str(root / "report")]) == 0
    capsys.readouterr()
    md = (root / "report" / "report.md").read_text()
    scores = {
        (run, p.name): json.loads(p.read_text()) for run in runs for p in runs[run].glob("eval-*-*.json")
    }
    assert len(scores) == 3
    for (run, _), e in scores.items():
        dataset = e["dataset"].rsplit("/", 1)[-1]
        row = f"| {run}/pt | prompt-tuning | {dataset} | {e['split']} | {e['examples']} | {e['metrics']['accuracy']:.3f} | 64 |"
        assert row in md, (row, md)
    assert md.count("| a/pt |") == 2 and md.count("| b/pt |") == 1  # eval-test.json is not a second row

    page = (root / "report" / "report.html").read_text()
    assert "<table>" in page and "<th>run</th>" in page and "<th>examples</th>" in page
    assert "<pre>| " not in page and page.count("data:image/png;base64,") == 2
    assert page.count("<td><pre>a/pt</pre></td>") == 2 and "<td><pre>quotes.jsonl</pre></td>" in page


def test_legend_and_rows_tell_runs_apart(two_runs):
    _, runs = two_runs
    labels = _labels([runs["a"], runs["b"]])
    assert labels == ["a/pt", "b/pt"]
    data = [read_run(p, label) for p, label in zip(runs.values(), labels)]
    assert [run_label(d) for d in data] == ["a/pt (prompt-tuning)", "b/pt (prompt-tuning)"]
    fresh = read_run(runs["b"], "b/pt") | {"evals": []}  # a run nobody evaluated: its best validation score
    (row,) = run_rows(fresh)
    assert row["split"] == "validation (best)" and row["examples"] == 4 and "accuracy" in row
