"""Without --template, `softprompt train` starts from the best of several candidate templates scored zero-shot
on the validation split, says so, and records the choice and the split sizes in run.json."""

import json

import test_cli
from test_cli import cli

from softprompt.training import TrainConfig

assets = test_cli.assets  # the tiny model folder and reviews data (a module-scoped fixture)


def test_train_without_template_chooses_the_zero_shot_best(assets, tmp_path, capsys):
    from softprompt.core.loading import load_model
    from softprompt.data import load_dataset
    from softprompt.tasks import make_task
    from softprompt.training import evaluate

    out = tmp_path / "run"
    argv = ["train", "--model", assets["model"], "--method", "prompt-tuning", "--dataset", assets["data"]]
    argv += ["--fields", "text=review,label=stars", "--out", out, "--steps", 2, "--batch-size", 4]
    code, stdout, err = cli(capsys, *argv)
    assert code == 0, err
    run = json.loads((out / "run.json").read_text())["run"]
    choice = run["template_choice"]
    assert run["splits"] == {"train": 48, "validation": 6, "test": 6}
    assert "data: 48 train / 6 validation / 6 test examples" in err
    assert f"template: {choice['full_template']!r} (zero-shot accuracy {choice['score']:.3f}" in err
    assert choice["split"] == "validation" and choice["examples"] == 6 and len(choice["candidates"]) >= 8
    assert choice["score"] == max(c["accuracy"] for c in choice["candidates"])
    assert {(c["template"], c["lead"]) for c in choice["candidates"]} >= {("{text}\nAnswer: {mask}", "")}
    assert any(
        c["lead"].startswith("Classify the text as negative or positive.") for c in choice["candidates"]
    )

    # the recorded score is what that template really scores zero-shot on the validation split
    model = load_model(assets["model"])
    data = load_dataset(assets["data"], fields={"text": "review", "label": "stars"})
    task = make_task(model, data.spec, template=choice["full_template"], verbalizer=choice["verbalizer"])
    assert evaluate(model, task, data.validation, None)["accuracy"] == choice["score"]

    # the prompt starts from the lead-in text: as many virtual tokens as its tokens, the body as template
    prompt = run["prompts"][0]
    lead_ids = model.tokenizer(choice["soft_lead"], add_special_tokens=False)["input_ids"]
    assert prompt["method"]["init"] == "text" and prompt["method"]["init_text"] == choice["soft_lead"]
    assert prompt["method"]["num_virtual_tokens"] == len(lead_ids)
    assert prompt["template"] == choice["template"] and prompt["template_choice"] == choice
    assert run["config"]["lr"] == 3e-3  # the lead-in start's learning rate (no --lr given)
    assert f"template: {choice['template']!r}" in stdout


def test_template_flag_wins(assets, tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["train", "--model", assets["model"], "--method", "prompt-tuning", "--dataset", assets["data"]]
    argv += ["--fields", "text=review,label=stars", "--out", out, "--steps", 1, "--batch-size", 4]
    code, _, err = cli(capsys, *argv, "--template", "{text} it was {mask}", "--quiet")
    assert code == 0, err
    run = json.loads((out / "run.json").read_text())["run"]
    assert "template_choice" not in run and run["prompts"][0]["template"] == "{text} it was {mask}"
    assert (
        run["config"]["lr"] == TrainConfig.for_method("prompt-tuning").lr
    )  # the method default, not the lead-in's
    assert run["prompts"][0]["method"]["init"] == "vocab"


def test_library_make_task_chooses_from_validation(assets):
    from softprompt.core.loading import load_model
    from softprompt.data import load_dataset
    from softprompt.tasks import make_task
    from softprompt.tasks.choose import choose_template
    from softprompt.training.jobs import describe_task

    model = load_model(assets["model"])
    data = load_dataset(assets["data"], fields={"text": "review", "label": "stars"})
    choice = choose_template(model, data.spec, data.validation)
    task = make_task(model, data.spec, choose_from=data.validation)
    assert task.template.source == choice.full_template and task.choice == choice
    assert describe_task(task)["template_choice"]["score"] == choice.score
    assert make_task(model, data.spec).template.source == "{text}\nAnswer: {mask}"  # no examples: as before
    template, fields, lr = choice.start("prefix-tuning", model.tokenizer)
    assert template == choice.full_template and fields == {} and lr is None
