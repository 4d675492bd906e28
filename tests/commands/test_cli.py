"""The ``softprompt`` CLI in-process, on a tiny model saved to a folder (the real from_pretrained path) and
tiny JSONL data: train -> eval -> predict, YAML configs, and one clear line for each user mistake."""

import json
import random
from pathlib import Path

import pytest
import torch

from softprompt.cli import main

POS = ["good", "great", "fine", "excellent", "amazing", "wonderful"]
NEG = ["bad", "awful", "boring", "terrible", "poor", "dull"]


def write_model_dir(path: Path) -> Path:
    """A tiny Llama + word-level tokenizer saved with save_pretrained (loaded back by from_pretrained)."""
    from softprompt.testing.models import tiny_model
    from softprompt.testing.tokenizer import tiny_tokenizer

    tiny_model("llama").save_pretrained(path)
    tiny_tokenizer("causal").save_pretrained(path)
    return path


def write_reviews(path: Path, n: int = 60, text: str = "text", label: str = "label") -> Path:
    """n sentiment rows (half positive) as JSONL with the given column names."""
    rng = random.Random(0)
    with open(path, "w") as f:
        for i in range(n):
            positive = i % 2 == 0
            word = rng.choice(POS if positive else NEG)
            row = {
                text: f"the movie was {word} and {rng.choice(POS + NEG)}",
                label: "positive" if positive else "negative",
            }
            f.write(json.dumps(row) + "\n")
    return path


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    return {
        "model": str(write_model_dir(root / "model")),
        "data": str(write_reviews(root / "reviews.jsonl", text="review", label="stars")),
    }


def cli(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def base_args(assets, out, **flags):
    args = [
        "train",
        "--model",
        assets["model"],
        "--method",
        "prompt-tuning",
        "--dataset",
        assets["data"],
        "--fields",
        "text=review,label=stars",
        "--out",
        out,
        "--steps",
        4,
        "--batch-size",
        4,
        "--eval-every",
        2,
        "--save-every",
        2,
        "--num-virtual-tokens",
        3,
        "--lr",
        0.1,
        "--quiet",
    ]
    for k, v in flags.items():
        args += [f"--{k.replace('_', '-')}", v]
    return args


def reference_continuation(model_dir: str, prompt_dir: Path, max_new_tokens: int) -> str:
    """The frozen backbone's own greedy generate, fed the prompt's embeddings before "the movie was"."""
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    backbone, tok = AutoModelForCausalLM.from_pretrained(model_dir), AutoTokenizer.from_pretrained(model_dir)
    ids = torch.tensor([tok("the movie was")["input_ids"]])
    prompt = load_file(str(prompt_dir / "prompt.safetensors"))["embedding"]  # (P, H)
    embeds = torch.cat([prompt[None], backbone.get_input_embeddings()(ids)], dim=1)  # (1, P + T, H)
    new = backbone.generate(
        inputs_embeds=embeds,
        attention_mask=torch.ones(embeds.shape[:2], dtype=torch.long),
        max_new_tokens=max_new_tokens,
        do_sample=False,
        pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id,
    )[0]
    return tok.decode(new, skip_special_tokens=True).strip()


def one_error_line(code, err, *fragments):
    """Exit code 2 and one line `softprompt: error: ...` holding every fragment; no traceback."""
    assert code == 2
    lines = [line for line in err.splitlines() if line.startswith("softprompt: error: ")]
    assert len(lines) == 1 and err.rstrip().endswith(lines[0]), err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert "Traceback" not in err


def test_train_eval_predict_round_trip(assets, tmp_path, capsys):
    out = tmp_path / "run"
    code, stdout, _ = cli(
        capsys, *base_args(assets, out), "--json", "--verbalizer", "positive=good;negative=bad"
    )
    assert code == 0
    summary = json.loads(stdout)
    assert summary["method"] == "prompt-tuning" and summary["trainable_params"] == 3 * 32
    assert summary["steps"] == 4 and set(summary["metrics"]) == {"accuracy", "macro_f1"}
    name = summary["prompt"]
    for f in (
        "run.json",
        "log.jsonl",
        "checkpoints/latest",
        f"best/{name}/prompt.json",
        f"final/{name}/prompt.json",
    ):
        assert (out / f).exists(), f
    assert json.loads((out / "run.json").read_text())["status"] == "finished"

    code, stdout, _ = cli(
        capsys, "eval", "--prompt", out, "--json"
    )  # model, dataset and fields from the prompt
    assert code == 0
    evaluated = json.loads(stdout)
    assert evaluated["split"] == "test" and evaluated["examples"] == 6

    # predict over the same test rows, in the data's own column names, agrees with eval's accuracy
    from softprompt.data import load_dataset

    test = load_dataset(assets["data"], fields={"text": "review", "label": "stars"}).test
    rows = tmp_path / "in.jsonl"
    rows.write_text("".join(json.dumps({"review": ex["text"]}) + "\n" for ex in test))
    code, stdout, _ = cli(capsys, "predict", "--prompt", out, "--input", rows, "--json")
    assert code == 0
    predictions = [p["prediction"] for p in json.loads(stdout)]
    accuracy = sum(p == ex["label"] for p, ex in zip(predictions, test)) / len(test)
    assert accuracy == pytest.approx(evaluated["metrics"]["accuracy"])

    code, stdout, _ = cli(
        capsys, "predict", "--prompt", out / "final" / name, "--text", "the movie was great"
    )
    assert code == 0 and stdout.split()[0] in ("positive", "negative")  # then each label's probability
    assert stdout.strip().endswith(")") and "positive 0." in stdout and "negative 0." in stdout
    one = tmp_path / "one.jsonl"
    one.write_text(json.dumps({"review": "the movie was great"}) + "\n")
    code, batch_out, _ = cli(capsys, "predict", "--prompt", out / "final" / name, "--input", one, "--json")
    assert code == 0 and stdout.split()[0] == json.loads(batch_out)[0]["prediction"]  # --text == a file's row
    code, stdout, _ = cli(
        capsys, "generate", "--prompt", out, "--text", "the movie was", "--max-new-tokens", 3, "--json"
    )
    assert code == 0 and isinstance(json.loads(stdout)["output"], str)
    assert json.loads(stdout)["output"] == reference_continuation(assets["model"], out / "best" / name, 3)

    code, _, _ = cli(capsys, "report", out, "--out", tmp_path / "report", "--title", "a | b")
    assert code == 0
    md = (tmp_path / "report" / "report.md").read_text()
    assert "# a | b" in md
    row = f"| run | prompt-tuning | reviews.jsonl | test | 6 | {evaluated['metrics']['accuracy']:.3f} | 96 |"
    assert row in md  # eval wrote eval-reviews-test.json
    assert (tmp_path / "report" / "report.html").exists()
    for png in ("curves.png", "comparison.png"):
        assert (tmp_path / "report" / png).read_bytes()[:4] == b"\x89PNG"


def test_yaml_config_with_flag_override(assets, tmp_path, capsys):
    config = tmp_path / "run.yaml"
    config.write_text(f"""
model: {assets["model"]}
method: p-tuning
dataset: {assets["data"]}
out: {tmp_path / "run"}
name: yaml-prompt
method_args: {{num_virtual_tokens: 2, encoder: mlp, encoder_hidden: 8}}
train: {{steps: 6, batch_size: 4, lr: 3e-2, eval_every: 0, save_every: 0}}
task: {{fields: {{text: review, label: stars}}, template: "{{soft:2}} {{text}} it was {{mask}}",
        verbalizer: {{positive: [good], negative: bad}}}}
""")
    code, stdout, _ = cli(capsys, "train", "--config", config, "--steps", 2, "--quiet", "--json")
    assert code == 0
    summary = json.loads(stdout)
    assert summary["steps"] == 2 and summary["prompt"] == "yaml-prompt"  # the flag won over the YAML's 6
    run = json.loads((tmp_path / "run" / "run.json").read_text())["run"]
    assert run["config"]["lr"] == 0.03  # PyYAML reads 3e-2 as a string; it is parsed as a float
    assert run["prompts"][0]["method"]["encoder"] == "mlp"
    assert run["prompts"][0]["template"] == "{soft:2} {text} it was {mask}"


@pytest.mark.parametrize(
    "yaml_text, fragments",
    [
        ("epochs: 3\n", ["unknown key(s) epochs", "accepted: model, method"]),
        ("train: {stepz: 3}\n", ["unknown field train.stepz", "accepted: steps"]),
        ("task: {templat: x}\n", ["unknown field task.templat"]),
        ("train: {warmup_ratio: 2}\n", ["warmup_ratio=2.0 is out of range", "[0, 1]"]),
        ("train: {steps: ten}\n", ["train.steps='ten' is not a valid int"]),
    ],
)
def test_yaml_mistakes_are_named(assets, tmp_path, capsys, yaml_text, fragments):
    config = tmp_path / "bad.yaml"
    config.write_text(yaml_text)
    code, _, err = cli(capsys, *base_args(assets, tmp_path / "run"), "--config", config)
    one_error_line(code, err, *fragments)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "flags, fragments",
    [
        ({"lr": 0}, ["lr=0.0 is out of range", "(0, 10]"]),
        ({"batch_size": 0}, ["batch_size=0 is out of range"]),
        ({"num_virtual_tokens": 0}, ["num_virtual_tokens=0 is out of range"]),
        ({"head": "lm", "max_length": 4}, ["max_length=4 is out of range"]),
        ({"mixed_precision": "fp16"}, ["fp16", "needs a GPU"]),
    ],
)
def test_out_of_range_values_are_named(assets, tmp_path, capsys, flags, fragments):
    if "fp16" in flags.values() and torch.cuda.is_available():
        pytest.skip("fp16 is allowed on a GPU")
    code, _, err = cli(capsys, *base_args(assets, tmp_path / "run", **flags))
    one_error_line(code, err, *fragments)


def test_user_mistakes_about_data_and_method(assets, tmp_path, capsys):
    out = tmp_path / "run"
    cases = [
        (
            base_args(assets, out, dataset=tmp_path / "missing.jsonl"),
            ["no such file or folder", "missing.jsonl"],
        ),
        (
            base_args(assets, out, fields="text=body,label=stars"),
            ["field 'text' is mapped to column 'body'", "columns: review, stars"],
        ),
        (base_args(assets, out, verbalizer="positive=good"), ["no words for label(s) 'negative'"]),
        (
            base_args(assets, out, method="prefix-tuning", encoder="lstm"),
            ["prefix-tuning", "unknown field(s) encoder"],
        ),
        (base_args(assets, out, method="lora"), ["unknown method 'lora'"]),
    ]
    for argv, fragments in cases:
        code, _, err = cli(capsys, *argv)
        one_error_line(code, err, *fragments)
    assert not out.exists()


def test_out_dir_holding_another_run_is_left_untouched(assets, tmp_path, capsys):
    out = tmp_path / "run"
    assert cli(capsys, *base_args(assets, out))[0] == 0
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    code, _, err = cli(capsys, *base_args(assets, out, lr=0.5))
    one_error_line(code, err, "holds another run", "config.lr: 0.1 -> 0.5")
    code, _, err = cli(capsys, *base_args(assets, out))
    one_error_line(code, err, "already holds this run", "--resume")
    code, _, err = cli(capsys, *base_args(assets, out, lr=0.5), "--resume")
    one_error_line(code, err, "holds another run")
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    code, _, err = cli(capsys, *base_args(assets, tmp_path / "other"))
    one_error_line(code, err, "not empty and holds no run.json")


def test_hard_method_only_evaluates_the_template(assets, tmp_path, capsys):
    out = tmp_path / "hard"
    code, stdout, _ = cli(
        capsys,
        *base_args(assets, out, method="hard"),
        "--template",
        "{text} it was {mask}",
        "--verbalizer",
        '{"positive": ["good"], "negative": ["bad"]}',
        "--json",
    )
    assert code == 0
    summary = json.loads(stdout)
    assert summary["trainable_params"] == 0 and summary["steps"] == 0
    assert 0.0 <= summary["metrics"]["accuracy"] <= 1.0
    from softprompt.data import load_dataset

    validation = load_dataset(assets["data"], fields={"text": "review", "label": "stars"}).validation
    rows = tmp_path / "validation.jsonl"
    rows.write_text("".join(json.dumps({"review": ex["text"]}) + "\n" for ex in validation))
    code, predicted, _ = cli(capsys, "predict", "--prompt", out, "--input", rows, "--json")
    hits = [p["prediction"] == ex["label"] for p, ex in zip(json.loads(predicted), validation, strict=True)]
    assert code == 0 and summary["metrics"]["accuracy"] == pytest.approx(sum(hits) / len(hits))
    assert not (out / "checkpoints").exists()
    code, stdout, _ = cli(capsys, "eval", "--prompt", out, "--split", "validation", "--json")
    assert code == 0 and json.loads(stdout)["metrics"] == summary["metrics"]


def test_help_teaches_with_examples(capsys):
    with pytest.raises(SystemExit) as e:
        main(["train", "--help"])
    out = capsys.readouterr().out
    assert e.value.code == 0
    assert "examples:" in out and "torchrun --nproc_per_node 2 -m softprompt train" in out
    for flag in ("--num-virtual-tokens", "--encoder", "--no-reparameterize", "--batch-size", "--verbalizer"):
        assert flag in out


def test_methods_and_datasets_listings(capsys):
    code, stdout, _ = cli(capsys, "methods", "--json")
    methods = json.loads(stdout)
    assert code == 0 and set(methods) == {
        "hard", "prompt-tuning", "p-tuning", "prefix-tuning", "p-tuning-v2", "multitask-prompt-tuning",
        "adaption-prompt",
    }  # fmt: skip
    assert methods["prompt-tuning"]["fields"]["num_virtual_tokens"]["default"] == 20
    assert methods["p-tuning"]["fields"]["encoder"]["doc"]
    assert methods["prompt-tuning"]["train_defaults_measured"]
    assert methods["adaption-prompt"]["train_defaults_measured"]  # bench/results/lr_sweep-smollm2.md
    assert methods["adaption-prompt"]["train_defaults"]["lr"] == 9e-3
    assert methods["multitask-prompt-tuning"]["train_defaults_measured"]
    assert methods["multitask-prompt-tuning"]["train_defaults"]["lr"] == 1e-1
    code, stdout, _ = cli(capsys, "datasets", "--json")
    datasets = {d["name"]: d for d in json.loads(stdout)}
    assert code == 0 and datasets["rotten-tomatoes"]["task"] == "classification"
    assert datasets["rotten-tomatoes"]["templates"]
