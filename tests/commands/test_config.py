"""``softprompt train``'s settings without a model: flag and YAML values typed by pydantic, help texts from the
fields' attribute docstrings, the YAML layout checked key by key, flags over YAML (``commands.fields`` and
``commands.runconfig``)."""

import dataclasses
from pathlib import Path
from typing import Literal

import pytest

from softprompt.cli import build_parser, main
from softprompt.commands.fields import coerce, field_docs, fields_of
from softprompt.commands.runconfig import TaskOptions, check_layout, method_fields, methods_with, resolve
from softprompt.errors import ConfigError
from softprompt.methods import METHODS, TRAINABLE
from softprompt.training.config import TrainConfig


@pytest.mark.parametrize(
    "value, hint, expected",
    [
        ("3", int, 3),
        (3.0, int, 3),
        ("3e-2", float, 0.03),
        (2, float, 2.0),
        ("no", bool, False),
        ("TRUE", bool, True),
        ("none", int | None, None),
        ("null", str | None, None),
        (2024, str, "2024"),
        ("bf16", Literal["no", "bf16"], "bf16"),
        ("text=review, label=stars", dict[str, str], {"text": "review", "label": "stars"}),
        ('{"text": "body"}', dict[str, str], {"text": "body"}),
        (
            "positive=good,great;negative=bad",
            dict[str, list[str]],
            {"positive": ["good", "great"], "negative": ["bad"]},
        ),
        (
            {"positive": ["good"], "negative": "bad"},
            dict[str, list[str] | str],
            {"positive": ["good"], "negative": "bad"},
        ),
    ],
)
def test_values_are_typed(value, hint, expected):
    out = coerce("--x", value, hint)
    assert out == expected and type(out) is type(expected)


@pytest.mark.parametrize(
    "value, hint, message",
    [
        ("ten", int, "--x='ten' is not a valid int"),
        (3.5, int, "--x=3.5 is not a valid int"),
        (True, int, "--x=True is not a valid int"),  # a bool is not a number
        (False, float, "--x=False is not a valid float"),
        ("maybe", bool, "--x='maybe' is not a valid bool"),
        ("none", int, "--x='none' is not a valid int"),  # only optional fields take none
        (None, int, "--x may not be empty"),
        (True, str, "--x=True is not a valid str"),
        ("fp8", Literal["no", "bf16"], "--x='fp8' is not accepted; choose one of: no, bf16"),
        ("text", dict[str, str], "--x: 'text' is not 'ours=theirs'"),
        ("a=x;b", dict[str, list[str]], "--x: 'b' is not 'key=value[,value...]'"),
        ('{"a": [1', dict[str, list[str]], "is not valid JSON"),
        ({"a": {"b": 1}}, dict[str, str], "--x={'a': {'b': 1}} is not a valid dict[str, str]"),
    ],
)
def test_bad_values_are_named_with_what_is_accepted(value, hint, message):
    with pytest.raises(ConfigError) as e:
        coerce("--x", value, hint)
    assert message in str(e.value)


def test_help_texts_are_the_attribute_docstrings_of_every_field_and_base():
    docs = field_docs(METHODS["p-tuning"].config)
    assert (
        docs["num_virtual_tokens"]
        == "Virtual tokens (input tokens or prefix positions) this prompt adds; 1..4096."
    )
    assert docs["encoder_layers"] == "LSTM layers; 1..8."
    assert field_docs(TrainConfig)["batch_size"].startswith("Global batch: examples per micro-step over all")
    assert "\n" not in field_docs(TrainConfig)["batch_size"]  # a docstring's lines joined into one
    for cls in [TrainConfig, TaskOptions] + [METHODS[m].config for m in TRAINABLE]:
        names = {f.name for f in dataclasses.fields(cls)} - {"method", "source_method"}
        assert names <= {name for name, doc in field_docs(cls).items() if doc}, cls


def test_method_flags_merge_the_methods_fields():
    fields = {f.name: f for f in method_fields()}
    init = fields["init"].hint  # prompt tuning's and prefix tuning's init choices, once each
    assert set(init.__args__) >= {"random", "vocab", "text", "labels", "file"}
    assert len(init.__args__) == len(set(init.__args__))
    assert methods_with("encoder") == ["p-tuning"]
    assert methods_with("num_virtual_tokens") == list(TRAINABLE)
    assert [f.name for f in fields_of(TrainConfig)][:3] == ["steps", "batch_size", "grad_accum"]


@pytest.mark.parametrize(
    "doc, message",
    [
        (
            {"epochs": 3, "seeds": 2},
            "f.yaml: unknown key(s) epochs, seeds; accepted: model, method, dataset, out",
        ),
        ({"train": {"stepz": 3}}, "unknown field train.stepz; accepted: steps, batch_size"),
        ({"task": {"tempalte": "x"}}, "unknown field task.tempalte; accepted: template, verbalizer, head"),
        ({"train": 5}, "'train' must be a mapping of field: value"),
        ({"method_args": [1]}, "'method_args' must be a mapping of field: value"),
        ({"train": {"steps": "ten"}}, "f.yaml: train.steps='ten' is not a valid int"),
        ({"train": {"steps": None}}, "train.steps may not be empty"),
        (
            {"train": {"scheduler": "cosin"}},
            "train.scheduler='cosin' is not accepted; choose one of: linear, cosine, constant",
        ),
        (
            {"task": {"head": "cls"}},
            "task.head='cls' is not accepted; choose one of: auto, lm, first, last, mean, max",
        ),
        ({"task": {"fields": {"text": ["a"]}}}, "task.fields={'text': ['a']} is not a valid dict[str, str]"),
        ({"model": ["a"]}, "model=['a'] is not a valid str"),
    ],
)
def test_layout_mistakes_are_named(doc, message):
    with pytest.raises(ConfigError) as e:
        check_layout(doc, "f.yaml")
    assert message in str(e.value)


def test_layout_returns_the_given_keys_typed():
    doc = {
        "model": "m",
        "name": 2024,
        "method_args": {"num_virtual_tokens": 4},
        "train": {"lr": "3e-2", "steps": "5", "patience": "none", "gradient_checkpointing": "yes"},
        "task": {"verbalizer": {"positive": ["good"], "negative": "bad"}, "fields": "text=review"},
    }
    assert check_layout(doc, "f.yaml") == {
        "model": "m",
        "name": "2024",
        "method_args": {"num_virtual_tokens": 4},
        "train": {"lr": 0.03, "steps": 5, "patience": None, "gradient_checkpointing": True},
        "task": {"verbalizer": {"positive": ["good"], "negative": "bad"}, "fields": {"text": "review"}},
    }
    assert check_layout({}, "f.yaml") == {}


def settings(tmp_path: Path, yaml_text: str, *flags):
    config = tmp_path / "run.yaml"
    config.write_text(yaml_text)
    return resolve(build_parser().parse_args(["train", "--config", str(config), *flags]))


YAML = """
model: tiny
method: p-tuning
dataset: reviews.jsonl
out: runs/a
method_args: {num_virtual_tokens: "4", encoder: mlp, residual: yes}
train: {steps: 6, lr: 3e-2, patience: 2}
task: {template: "{text} {mask}", limit: 10, fields: {text: review}}
"""


def test_flags_override_the_yaml_in_every_section(tmp_path):
    s = settings(tmp_path, YAML)
    assert (s.model, s.method, s.dataset, s.out, s.name) == (
        "tiny",
        "p-tuning",
        "reviews.jsonl",
        Path("runs/a"),
        None,
    )
    assert (s.method_config.num_virtual_tokens, s.method_config.encoder, s.method_config.residual) == (
        4,
        "mlp",
        True,
    )
    assert (s.train.steps, s.train.lr, s.train.patience, s.train.batch_size) == (6, 0.03, 2, 8)
    assert (s.task.template, s.task.limit, s.task.fields) == ("{text} {mask}", 10, {"text": "review"})

    s = settings(
        tmp_path, YAML,
        "--out", "runs/b", "--name", "mine", "--encoder", "lstm", "--no-residual",
        "--steps", "2", "--patience", "none", "--limit", "3", "--fields", "text=body,label=stars",
    )  # fmt: skip
    assert (s.out, s.name, s.method_config.encoder, s.method_config.residual) == (
        Path("runs/b"),
        "mine",
        "lstm",
        False,
    )
    assert (s.method_config.num_virtual_tokens, s.train.lr) == (4, 0.03)  # not given: the YAML's
    assert (s.train.steps, s.train.patience, s.task.limit) == (2, None, 3)
    assert s.task.fields == {"text": "body", "label": "stars"}
    assert s.method_args == {"num_virtual_tokens": 4, "encoder": "lstm", "residual": False}


def test_checks_of_the_dataclasses_run_on_the_merged_settings(tmp_path):
    with pytest.raises(ConfigError, match=r"warmup_ratio=2.0 is out of range"):
        settings(tmp_path, YAML + "\n", "--warmup-ratio", "2")
    with pytest.raises(ConfigError, match=r"method_args.num_virtual_tokens='many' is not a valid int"):
        settings(tmp_path, YAML.replace('"4"', "many"))
    with pytest.raises(ConfigError, match=r"p-tuning: unknown field\(s\) mlp_hidden"):
        settings(tmp_path, YAML.replace("encoder: mlp", "mlp_hidden: 8"))
    with pytest.raises(ConfigError, match=r"missing --dataset \(give the flags or set them in --config\)"):
        settings(tmp_path, YAML.replace("dataset: reviews.jsonl", ""))


def test_model_and_out_default_to_the_embedded_model_and_a_fresh_run_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)

    def train_args(*flags):
        return resolve(build_parser().parse_args(["train", "--method", "prefix-tuning", *flags]))

    s = train_args("--dataset", "rotten-tomatoes")
    assert (s.model, s.out) == ("smollm2-135m", Path("runs/rotten-tomatoes-prefix-tuning"))
    s.out.mkdir(parents=True)
    assert train_args("--dataset", "rotten-tomatoes").out == s.out  # an empty folder is still free
    (s.out / "run.json").write_text("{}")
    assert train_args("--dataset", "rotten-tomatoes").out == Path("runs/rotten-tomatoes-prefix-tuning-2")
    assert train_args("--dataset", "data/reviews.csv").out == Path("runs/reviews-prefix-tuning")
    assert train_args("--dataset", "x.jsonl", "--model", "m", "--out", "o").out == Path("o")
    with pytest.raises(ConfigError, match="--resume needs --out"):
        train_args("--dataset", "rotten-tomatoes", "--resume")
    monkeypatch.setenv("WORLD_SIZE", "2")  # every process of a multi-process launch picks the same folder
    assert train_args("--dataset", "rotten-tomatoes").out == s.out


@pytest.mark.parametrize(
    "flags, message",
    [
        (
            ["--scheduler", "cosin"],
            "argument --scheduler: --scheduler='cosin' is not accepted; choose one of: linear",
        ),
        (["--steps", "ten"], "argument --steps: --steps='ten' is not a valid int"),
        (["--lr", "true"], "argument --lr: --lr='true' is not a valid float"),
        (["--fields", "text"], "argument --fields: --fields: 'text' is not 'ours=theirs'"),
    ],
)
def test_bad_flag_values_exit_2_naming_the_flag(capsys, flags, message):
    with pytest.raises(SystemExit) as e:
        main(["train", *flags])
    err = capsys.readouterr().err
    assert e.value.code == 2 and message in err and "Traceback" not in err
