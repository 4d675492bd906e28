"""``softprompt train --method multitask-prompt-tuning --dataset A --dataset B``: one run over two source tasks
(task ids in --dataset order, mixed batches, one shared prompt), then transfer of the shared prompt to a target
task with ``--init file``; and the refusals of a repeated --dataset that cannot be honoured (other methods keep
argparse's rule: the last --dataset wins, tests/commands/test_cli.py relies on it)."""

import json

import pytest
import torch
from safetensors.torch import load_file

from commands.test_cli import NEG, POS, cli, one_error_line, write_model_dir, write_reviews
from softprompt.cli import main


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("mpt")
    with open(root / "yesno.jsonl", "w") as f:  # a second task: other texts, another label set
        for i in range(24):
            word = (POS if i % 2 else NEG)[i % 6]
            f.write(json.dumps({"text": f"is it {word}", "label": "yes" if i % 2 else "no"}) + "\n")
    return {
        "model": str(write_model_dir(root / "model")),
        "reviews": str(write_reviews(root / "reviews.jsonl", n=24)),
        "yesno": str(root / "yesno.jsonl"),
        "root": root,
    }


def _train(files, out, *extra):
    argv = ["train", "--model", files["model"], "--out", out, "--steps", 4, "--batch-size", 4]
    argv += ["--eval-every", 2, "--save-every", 4, "--num-virtual-tokens", 3, "--lr", 0.1, *extra]
    return main([str(a) for a in argv])


def test_two_source_datasets_train_one_shared_prompt_then_transfer(files, capsys):
    out = files["root"] / "mpt"
    code = _train(
        files,
        out,
        "--method",
        "multitask-prompt-tuning",
        "--dataset",
        files["reviews"],
        "--dataset",
        files["yesno"],
        "--template",
        "{text} ? {mask}",
        "--num-ranks",
        2,
        "--json",
    )  # fmt: skip  (--template / --fields apply to every dataset)
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert [(p["prompt"], p["task_id"]) for p in summary["prompts"]] == [("reviews", 0), ("yesno", 1)]
    assert all("accuracy" in p["metrics"] for p in summary["prompts"])
    run = json.loads((out / "run.json").read_text())
    assert [d.rsplit("/", 1)[-1] for d in run["run"]["datasets"]] == ["reviews.jsonl", "yesno.jsonl"]
    a, b = (load_file(str(out / "final" / n / "prompt.safetensors")) for n in ("reviews", "yesno"))
    assert torch.equal(a["shared"], b["shared"])  # one shared prompt ...
    assert a["cols"].shape[0] == 2 and torch.equal(a["cols"], b["cols"])  # ... and both tasks' factors
    meta = json.loads((out / "final" / "yesno" / "prompt.json").read_text())
    assert meta["config"]["num_tasks"] == 2 and meta["config"]["task_id"] == 1
    # transfer: a prompt-tuning prompt on the target starts from the shared prompt (step 0 = the file's values)
    target = files["root"] / "target"
    code = _train(files, target, "--method", "prompt-tuning", "--dataset", files["reviews"], "--init", "file",
                  "--init-file", out / "final" / "reviews", "--steps", 1, "--lr", 1e-9, "--quiet")  # fmt: skip
    assert code == 0
    moved = load_file(str(target / "final" / "reviews" / "prompt.safetensors"))["embedding"]
    torch.testing.assert_close(moved, a["shared"], atol=1e-6, rtol=0)
    # and a multitask prompt on the target from the shared part, training only its factors
    code = _train(files, files["root"] / "target-mpt", "--method", "multitask-prompt-tuning", "--dataset",
                  files["reviews"], "--init", "file", "--init-file", out / "final" / "reviews",
                  "--trained", "factors", "--quiet")  # fmt: skip
    assert code == 0
    t = load_file(str(files["root"] / "target-mpt" / "final" / "reviews" / "prompt.safetensors"))
    assert torch.equal(t["shared"], a["shared"])  # frozen shared part, transferred exactly


@pytest.mark.parametrize(
    ("extra", "fragments"),
    [
        (["--method", "multitask-prompt-tuning", "--num-tasks", 3], ["--num-tasks 3", "given 2 times"]),
        (["--method", "multitask-prompt-tuning", "--task-id", 1], ["--task-id", "--dataset order"]),
        (["--method", "multitask-prompt-tuning", "--name", "x"], ["--name", "named after its dataset"]),
    ],
)
def test_a_repeated_dataset_that_cannot_be_honoured_is_one_clear_line(files, capsys, extra, fragments):
    argv = ["train", "--model", files["model"], "--dataset", files["reviews"], "--dataset", files["yesno"]]
    code, _, err = cli(capsys, *argv, "--out", files["root"] / "never", *extra)
    one_error_line(code, err, *fragments)
    assert not (files["root"] / "never").exists()


@pytest.mark.parametrize("family", ["t5", "bart"])
def test_seq2seq_families_train_several_sources(tmp_path, family, capsys):
    """Multitask prompt tuning is not refused on encoder-decoders: the shared prompt enters the encoder."""
    from softprompt.testing.models import tiny_model
    from softprompt.testing.tokenizer import tiny_tokenizer

    tiny_model(family).save_pretrained(tmp_path / "m")
    tiny_tokenizer("seq2seq").save_pretrained(tmp_path / "m")
    for name, labels in (("a", ["positive", "negative"]), ("b", ["yes", "no"])):
        with open(tmp_path / f"{name}.jsonl", "w") as f:
            for i in range(12):
                f.write(
                    json.dumps({"text": f"the movie was {(POS, NEG)[i % 2][i % 6]}", "label": labels[i % 2]})
                )
                f.write("\n")
    files = {"model": str(tmp_path / "m")}
    code = _train(files, tmp_path / "run", "--method", "multitask-prompt-tuning", "--dataset", tmp_path / "a.jsonl",
                  "--dataset", tmp_path / "b.jsonl", "--template", "{text} it was {mask}", "--quiet")  # fmt: skip
    assert code == 0
    a, b = (load_file(str(tmp_path / "run" / "final" / n / "prompt.safetensors")) for n in ("a", "b"))
    assert torch.equal(a["shared"], b["shared"]) and a["rows"].shape[0] == 2
