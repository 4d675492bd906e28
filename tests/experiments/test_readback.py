"""Prompts read back as words: a prompt started from label words shows them (cosine 1) before training; a prefix
started from the model's own keys for words shows its first word through the first layer's keys; the CLI prints
the same as a table and as JSON."""

import json

import torch

import softprompt
from commands.test_cli import write_model_dir
from softprompt.cli import main
from softprompt.experiments.readback import read_back, vocabulary_keys


def _model(tmp_path):
    return softprompt.load_model(str(write_model_dir(tmp_path / "model")))


def _ids(model, word):
    return model.tokenizer(" " + word, add_special_tokens=False)["input_ids"]


def test_label_word_init_reads_back_as_the_label_words(tmp_path):
    model = _model(tmp_path)
    cfg = softprompt.make_config("prompt-tuning", num_virtual_tokens=4, init="labels")
    model.add_prompt("pt", cfg, label_words=["good", "bad"])
    out = read_back(model, "pt", k=3)
    want = _ids(model, "good") + _ids(model, "bad")
    for row, tid in zip(out["embeds"], want):
        assert row["nearest"][0]["id"] == tid and abs(row["nearest"][0]["cosine"] - 1.0) < 1e-4
    assert out["layer0_keys"] is None and out["method"] == "prompt-tuning"


def test_prefix_from_words_reads_back_its_first_word_through_the_first_layer(tmp_path):
    model = _model(tmp_path)
    ids = _ids(model, "great")
    model.add_prompt("px", softprompt.make_config("prefix-tuning", num_virtual_tokens=2, init="text",
                                                  init_text="great", dropout=0.0))  # fmt: skip
    out = read_back(model, "px", k=2)
    assert out["layer0_keys"][0]["nearest"][0]["id"] == ids[0]
    assert out["layer0_keys"][0]["nearest"][0]["cosine"] > 0.999
    assert out["not_read"] and out["embeds"] is None
    keys = vocabulary_keys(model, chunk=50)  # chunking does not change the keys
    assert torch.allclose(keys, vocabulary_keys(model), atol=1e-6)


def test_cli_table_and_json(tmp_path, capsys):
    model = _model(tmp_path)
    model.add_prompt("pt", softprompt.make_config("prompt-tuning", num_virtual_tokens=2, init="text",
                                                  init_text="wonderful"))  # fmt: skip
    softprompt.save_prompt(model, "pt", tmp_path / "pt")
    argv = ["inspect", "--prompt", str(tmp_path / "pt"), "--model", str(tmp_path / "model")]
    assert main([*argv, "-k", "2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [len(r["nearest"]) for r in out["embeds"]] == [2, 2]
    assert out["embeds"][0]["nearest"][0]["id"] == _ids(model, "wonderful")[0]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "virtual input tokens:" in text and "wonderful" in text
