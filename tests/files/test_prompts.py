"""A prompt.json edited by hand or written by another version: every bad key is a PromptFileError naming the
file, the section and the key (never a KeyError or TypeError)."""

import json

import pytest

from conftest import make_model
from softprompt.errors import PromptFileError
from softprompt.files.prompts import load_prompt, save_prompt


@pytest.fixture
def saved(tmp_path):
    model = make_model("llama", ["prompt-tuning"])
    return model, save_prompt(model, "prompt_tuning", tmp_path / "p")


@pytest.fixture
def inference(tmp_path):
    model = make_model("llama", ["prefix-tuning"])
    return model, save_prompt(model, "prefix_tuning", tmp_path / "q", form="inference")


def edit(path, change) -> None:
    meta = json.loads((path / "prompt.json").read_text())
    change(meta)
    (path / "prompt.json").write_text(json.dumps(meta))


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda m: m["backbone"].pop("hidden_size"), r"backbone: missing key\(s\) 'hidden_size'"),
        (
            lambda m: m["backbone"].update(dtype="bf16"),
            r"backbone: unknown key\(s\) 'dtype'; accepted: family",
        ),
        (lambda m: m["config"].update(depth=3), r"config: unknown key\(s\) 'depth'; accepted: .*init"),
        (lambda m: m["config"].pop("method"), r"config: missing key 'method' \(one of: .*prompt-tuning"),
        (
            lambda m: m["config"].update(method="lora"),
            r"config: unknown method 'lora'; known: .*prefix-tuning",
        ),
        (lambda m: m["config"].update(num_virtual_tokens=0), r"config: num_virtual_tokens=0 is out of range"),
        (lambda m: m.pop("backbone"), r"'backbone' is missing or not a JSON object"),
        (lambda m: m.update(config=[1]), r"'config' is missing or not a JSON object"),
        (
            lambda m: m["backbone"].update(slots=[["self"]]),
            r"'slots' must be a list of \[role, layer\] pairs",
        ),
    ],
)
def test_bad_keys_in_prompt_json_are_named(saved, change, message):
    model, path = saved
    edit(path, change)
    with pytest.raises(PromptFileError, match=message) as e:
        load_prompt(model, path)
    assert "prompt.json" in str(e.value)


def test_inference_form_with_extra_config_key_is_named(inference):
    model, path = inference
    edit(path, lambda m: m["config"].update(encoder="lstm"))
    with pytest.raises(
        PromptFileError, match=r"config: unknown key\(s\) 'encoder'; accepted: .*source_method"
    ):
        load_prompt(model, path)


def test_config_key_with_a_default_may_be_absent(saved):
    """A file written before a config field existed still loads, with that field's default."""
    model, path = saved
    edit(path, lambda m: m["config"].pop("init"))
    name, _ = load_prompt(model, path, "again")
    assert name == "again" and model.bank.get("again").config.init == "vocab"
