"""Each user mistake gets a one-line error naming the value and what is accepted; nothing saved is lost."""

import json

import pytest
import torch
from torch import nn

from conftest import make_model
from softprompt.core.model import PromptedModel
from softprompt.errors import (
    BackboneMismatch,
    ConfigError,
    InputTooLong,
    PromptFileError,
    TemplateError,
    UnsupportedModel,
    VerbalizerError,
)
from softprompt.files.prompts import load_prompt, save_prompt
from softprompt.methods import make_config
from softprompt.prompting.templates import parse_template
from softprompt.prompting.verbalizer import Verbalizer
from softprompt.testing.models import tiny_model


def test_template_syntax_error_points_at_column():
    with pytest.raises(TemplateError) as e:
        parse_template("Review: {text} it was {mask")
    assert "^" in str(e.value) and "{mask" in str(e.value)


def test_label_missing_from_verbalizer_names_it():
    v = Verbalizer.from_spec({"positive": "great", "negative": "bad"})
    with pytest.raises(VerbalizerError, match="'neutral'.*positive"):
        v.index("neutral")


def test_unknown_method_lists_the_accepted_ones():
    with pytest.raises(ConfigError, match="unknown method 'lora'.*prompt-tuning"):
        make_config("lora")


@pytest.mark.parametrize(
    "method,field,value,accepted",
    [
        ("prompt-tuning", "num_virtual_tokens", 0, r"\[1, 4096\]"),
        ("prefix-tuning", "dropout", 1.5, r"\[0.0, 0.9\]"),
        ("p-tuning", "encoder", "gru", "lstm, mlp, none"),
        ("prompt-tuning", "init", "zeros", "random, vocab, text, labels, file"),
    ],
)
def test_out_of_range_config_names_field_and_range(method, field, value, accepted):
    with pytest.raises(ConfigError, match=f"{field}=.*{accepted}"):
        make_config(method, **{field: value})


def test_field_of_another_method_is_rejected_by_name():
    with pytest.raises(ConfigError, match="prefix-tuning: unknown field.*encoder"):
        make_config("prefix-tuning", encoder="lstm")


def test_label_init_without_label_words_says_what_it_needs():
    from softprompt.testing.tokenizer import tiny_tokenizer

    model = PromptedModel(tiny_model("llama"), tiny_tokenizer("causal"))
    with pytest.raises(ConfigError, match=r'init="labels" needs .*label words'):
        model.add_prompt("p", make_config("prompt-tuning", num_virtual_tokens=3, init="labels"))
    model.add_prompt(
        "p", make_config("prompt-tuning", num_virtual_tokens=3, init="labels"), label_words=["great"]
    )


def test_unsupported_model_is_named():
    with pytest.raises(UnsupportedModel, match="Linear"):
        PromptedModel(nn.Linear(2, 2))


def test_input_too_long_for_learned_positions_once_virtual_tokens_added():
    model = make_model("gpt2", ["prompt-tuning"], n=10)  # 96 learned positions
    ids = torch.randint(5, 200, (1, 90))
    model(ids)  # fits without the prompt
    with pytest.raises(
        InputTooLong, match="90 tokens \\+ 10 virtual tokens = 100 positions > the model's 96"
    ):
        model(ids, prompts="prompt_tuning")


def test_prompt_for_another_backbone_names_both(tmp_path):
    model = make_model("llama", ["prefix-tuning"])
    save_prompt(model, "prefix_tuning", tmp_path / "p")
    other = PromptedModel(tiny_model("gpt2"))
    with pytest.raises(BackboneMismatch, match="trained for llama.*model is gpt2"):
        load_prompt(other, tmp_path / "p")
    reseeded = PromptedModel(tiny_model("llama", seed=1))  # same shapes, other weights
    with pytest.raises(BackboneMismatch, match="fingerprint"):
        load_prompt(reseeded, tmp_path / "p")


def test_corrupt_or_truncated_prompt_file(tmp_path):
    model = make_model("llama", ["prompt-tuning"])
    path = save_prompt(model, "prompt_tuning", tmp_path / "p")
    data = (path / "prompt.safetensors").read_bytes()
    (path / "prompt.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(PromptFileError, match="corrupt or truncated"):
        load_prompt(make_model("llama"), path)
    (path / "prompt.json").write_text("{not json")
    with pytest.raises(PromptFileError, match="corrupt JSON"):
        load_prompt(make_model("llama"), path)
    with pytest.raises(PromptFileError, match="not a prompt folder"):
        load_prompt(make_model("llama"), tmp_path / "missing")


def test_failed_save_keeps_the_previous_prompt(tmp_path, monkeypatch):
    model = make_model("llama", ["prompt-tuning"])
    path = save_prompt(model, "prompt_tuning", tmp_path / "p")
    before = (path / "prompt.safetensors").read_bytes()
    import softprompt.files.prompts as io

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(io, "save_file", boom)
    with pytest.raises(OSError):
        save_prompt(model, "prompt_tuning", path)
    assert (path / "prompt.safetensors").read_bytes() == before
    assert json.loads((path / "prompt.json").read_text())["name"] == "prompt_tuning"
    assert [p.name for p in tmp_path.iterdir()] == ["p"]  # no temporary folder left behind


def test_saved_files_get_the_umask_mode_not_tempfile_0600(tmp_path):
    import os
    import stat

    from softprompt.io.atomic import atomic_write_text

    model = make_model("llama", ["prompt-tuning"])
    save_prompt(model, "prompt_tuning", tmp_path / "p")
    atomic_write_text(tmp_path / "r.md", "x")
    mask = os.umask(0)
    os.umask(mask)
    for f in (tmp_path / "p" / "prompt.json", tmp_path / "p" / "prompt.safetensors", tmp_path / "r.md"):
        assert stat.S_IMODE(f.stat().st_mode) == 0o666 & ~mask, f
    assert stat.S_IMODE((tmp_path / "p").stat().st_mode) == 0o777 & ~mask


def test_library_train_refuses_one_class(tmp_path):
    from types import SimpleNamespace

    from softprompt.errors import DataError
    from softprompt.training import TrainConfig, TrainJob, train

    model = make_model("llama", ["prompt-tuning"])
    task = SimpleNamespace(main_metric="accuracy", label_field="label")
    rows = [{"text": f"t{i}", "label": "positive"} for i in range(4)]
    with pytest.raises(DataError, match="job 'prompt_tuning': every training example has label 'positive'"):
        train(model, TrainJob("prompt_tuning", task, rows, rows), TrainConfig(steps=1), tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_run_folder_with_nothing_saved_is_reused_by_another_run(tmp_path):
    from softprompt.training.records import check_out_dir, write_run

    out = tmp_path / "run"
    out.mkdir()
    write_run(out, {"config": {"lr": 0.1}}, status="running")
    (out / "log.jsonl").write_text("")
    assert check_out_dir(out, {"config": {"lr": 0.2}}, resume=False) is False  # nothing to keep: reuse
    (out / "log.jsonl").write_text('{"step": 1, "loss": 0.5}\n')
    with pytest.raises(ConfigError, match=r"holds another run \(differs in config.lr: 0.1 -> 0.2\)"):
        check_out_dir(out, {"config": {"lr": 0.2}}, resume=False)
    (out / "log.jsonl").write_text("")
    (out / "final").mkdir()
    with pytest.raises(ConfigError, match="already holds this run"):
        check_out_dir(out, {"config": {"lr": 0.1}}, resume=False)
    (out / "final").rmdir()
    write_run(out, {"config": {"lr": 0.1}}, status="finished")  # a finished run is never reused
    with pytest.raises(ConfigError, match="holds another run"):
        check_out_dir(out, {"config": {"lr": 0.2}}, resume=False)
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="is a file, not a folder"):
        check_out_dir(tmp_path / "file", {}, resume=False)
