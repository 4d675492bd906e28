"""A prompt without a recorded task (a PEFT import, or the library's save_prompt) works in eval / predict
(given --labels / --verbalizer / --template), in generate as is, and in peft export; exports name a base model
PEFT can load."""

import json
import math

import pytest
import test_cli
import torch
from test_cli import cli, one_error_line

assets = test_cli.assets  # the tiny model folder and reviews data (a module-scoped fixture)

peft = pytest.importorskip("peft")

TEMPLATE = "{text} it was {mask}"
FIELDS = "text=review,label=stars"


@pytest.fixture(scope="module")
def imported(assets, tmp_path_factory):
    """A PEFT prompt-tuning checkpoint of the tiny model (values moved off their init), imported by the CLI."""
    from peft import PromptTuningConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    root = tmp_path_factory.mktemp("peft")
    base = AutoModelForCausalLM.from_pretrained(assets["model"])
    model = get_peft_model(base, PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=3))
    with torch.no_grad():
        for p in model.prompt_encoder.parameters():
            p.add_(torch.randn(p.shape, generator=torch.Generator().manual_seed(1)))
    model.save_pretrained(root / "adapter")
    assert main_ok(
        "peft", "import", "--model", assets["model"], "--peft", root / "adapter", "--out", root / "p"
    )
    return root / "p"


def main_ok(*argv) -> bool:
    from softprompt.cli import main

    return main([str(a) for a in argv]) == 0


def test_peft_import_runs_through_eval_predict_generate(assets, imported, capsys):
    from softprompt.core.loading import load_model
    from softprompt.data import load_dataset
    from softprompt.files.prompts import load_prompt
    from softprompt.tasks import make_task
    from softprompt.training import evaluate

    flags = ["--dataset", assets["data"], "--fields", FIELDS, "--template", TEMPLATE]
    code, out, err = cli(
        capsys, "eval", "--prompt", imported, *flags, "--labels", "negative,positive", "--json"
    )
    assert code == 0, err
    result = json.loads(out)
    model = load_model(assets["model"])
    name, _ = load_prompt(model, imported)
    data = load_dataset(assets["data"], fields={"text": "review", "label": "stars"})
    task = make_task(model, data.spec, template=TEMPLATE, verbalizer=["negative", "positive"])
    assert result["examples"] == len(data.test) == 6
    assert result["metrics"] == evaluate(model, task, data.test, name)

    code, out, err = cli(
        capsys, "predict", "--prompt", imported, "--text", "the movie was good", "--template", TEMPLATE,
        "--verbalizer", "negative=bad;positive=good", "--json",
    )  # fmt: skip
    assert code == 0, err
    (row,) = json.loads(out)
    assert set(row["scores"]) == {"negative", "positive"} and math.isclose(
        sum(row["scores"].values()), 1.0, rel_tol=1e-6
    )
    assert row["prediction"] == max(row["scores"], key=row["scores"].get)
    code, out, _ = cli(
        capsys, "predict", "--prompt", imported, "--text", "bad", "--labels", "negative,positive"
    )
    label, scores = out.strip().split("  ", 1)
    assert code == 0 and label in ("negative", "positive") and scores.startswith("(") and " 0." in scores

    code, out, err = cli(capsys, "generate", "--prompt", imported, "--text", "the movie was", "--json")
    assert code == 0, err and isinstance(json.loads(out)["output"], str)


def test_a_prompt_without_task_says_which_flags_it_needs(assets, imported, capsys):
    code, _, err = cli(capsys, "predict", "--prompt", imported, "--text", "good")
    one_error_line(code, err, "records no task", "--labels", "--template")
    code, _, err = cli(capsys, "eval", "--prompt", imported)
    one_error_line(code, err, "pass --dataset")


def test_library_saved_prompt_and_peft_export_base(assets, tmp_path, capsys):
    from peft import AutoPeftModelForCausalLM

    from softprompt.core.loading import load_model
    from softprompt.files.prompts import save_prompt
    from softprompt.methods import make_config

    model = load_model(assets["model"])
    model.add_prompt("mine", make_config("prompt-tuning", num_virtual_tokens=2))
    save_prompt(model, "mine", tmp_path / "mine")  # records neither a task nor a model
    code, _, err = cli(capsys, "predict", "--prompt", tmp_path / "mine", "--text", "good", "--labels", "a,b")
    one_error_line(code, err, "does not record its model", "--model")
    code, out, err = cli(
        capsys, "predict", "--prompt", tmp_path / "mine", "--model", assets["model"], "--text", "good",
        "--labels", "negative,positive",
    )  # fmt: skip
    assert code == 0, err and out.split()[0] in ("negative", "positive")

    code, _, err = cli(
        capsys,
        "peft",
        "export",
        "--prompt",
        tmp_path / "mine",
        "--model",
        assets["model"],
        "--out",
        tmp_path / "e",
    )
    assert code == 0, err
    config = json.loads((tmp_path / "e" / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == assets["model"]  # a folder PEFT's auto classes load
    loaded = AutoPeftModelForCausalLM.from_pretrained(tmp_path / "e")
    assert torch.equal(
        loaded.prompt_encoder["default"].embedding.weight.detach(), model.bank.get("mine").embedding.detach()
    )
