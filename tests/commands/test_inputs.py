"""Bad input to the CLI, tried as a new user would: each gives one line naming the value and what is accepted.
Also --device / --dtype on every command that loads a model, and the model's context limit."""

import json
from pathlib import Path

import pytest
import torch
from test_cli import base_args, cli, one_error_line, write_model_dir, write_reviews

from softprompt.cli import main

MODEL_COMMANDS = [
    ["train"],
    ["eval"],
    ["predict"],
    ["generate"],
    ["sensitivity"],
    ["peft", "import"],
    ["peft", "export"],
    ["demo"],
]


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    root = tmp_path_factory.mktemp("inputs")
    return {
        "root": root,
        "model": str(write_model_dir(root / "model")),
        "data": str(write_reviews(root / "reviews.jsonl", text="review", label="stars")),
    }


@pytest.fixture(scope="module")
def run_dir(assets):
    out = assets["root"] / "run"
    assert main([str(a) for a in base_args(assets, out)]) == 0
    return out


@pytest.mark.parametrize("command", MODEL_COMMANDS, ids=" ".join)
def test_every_model_command_has_device_and_dtype(capsys, command):
    with pytest.raises(SystemExit) as e:
        main([*command, "--help"])
    out = " ".join(capsys.readouterr().out.split())  # help wraps lines
    assert e.value.code == 0
    assert "--device DEVICE" in out and "auto, cpu, cuda, cuda:N or mps" in out
    assert "--dtype {float32,bfloat16,float16}" in out


def test_train_and_predict_on_cpu_in_bfloat16(assets, tmp_path, capsys):
    out_dir = tmp_path / "bf16"
    code, out, err = cli(capsys, *base_args(assets, out_dir), "--dtype", "bfloat16", "--json")
    assert code == 0, err
    assert json.loads((out_dir / "run.json").read_text())["run"]["dtype"] == "bfloat16"
    run_dir = out_dir
    code, out, err = cli(
        capsys, "predict", "--prompt", run_dir, "--text", "the movie was great", "--device", "cpu",
        "--dtype", "bfloat16", "--json",
    )  # fmt: skip
    assert code == 0, err
    (row,) = json.loads(out)
    assert row["prediction"] in ("positive", "negative")


@pytest.mark.parametrize(
    "device, fragments",
    [
        ("tpu", ["--device='tpu' is not accepted", "auto, cpu, cuda, cuda:N or mps"]),
        ("cpu:1", ["--device='cpu:1' is not accepted"]),
        ("cuda:64", ["--device='cuda:64'", "CUDA"]),
    ],
)
def test_bad_device_is_named_before_loading(run_dir, capsys, device, fragments):
    code, _, err = cli(capsys, "predict", "--prompt", run_dir, "--text", "good", "--device", device)
    one_error_line(code, err, *fragments)


def test_train_refuses_a_device_accelerate_would_not_use(assets, tmp_path, capsys):
    other = "cpu" if torch.cuda.is_available() else "cuda"
    code, _, err = cli(capsys, *base_args(assets, tmp_path / "run"), "--device", other)
    one_error_line(code, err, f"--device='{other}'")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("command", ["predict", "generate"])
def test_empty_text_is_refused(run_dir, capsys, command):
    code, _, err = cli(capsys, command, "--prompt", run_dir, "--text", "  ")
    one_error_line(code, err, "--text is empty")


def test_generate_past_the_context_errors_or_truncates(run_dir, capsys):
    long_text = " ".join(["good"] * 200)  # the tiny Llama has 128 positions (a RoPE model: from its config)
    args = ["generate", "--prompt", run_dir, "--text", long_text, "--max-new-tokens", 5, "--raw"]
    code, _, err = cli(capsys, *args)
    one_error_line(code, err, "200 input tokens + 3 virtual tokens + 5 new tokens = 208 positions",
                   "the model's context of 128", "--truncate")  # fmt: skip
    code, out, err = cli(capsys, *args, "--truncate", "--json")
    assert code == 0 and "kept the last 120 input tokens" in err
    assert isinstance(json.loads(out)["output"], str)
    code, _, err = cli(capsys, *args[:5], "--max-new-tokens", 126, "--raw", "--truncate")
    one_error_line(code, err, "lower --max-new-tokens")


def test_predict_file_in_another_encoding_names_line_and_byte(run_dir, tmp_path, capsys):
    src = tmp_path / "in.jsonl"
    src.write_bytes('{"review": "good"}\n{"review": "caf\xe9"}\n'.encode("cp1252"))
    code, _, err = cli(capsys, "predict", "--prompt", run_dir, "--input", src)
    one_error_line(code, err, "in.jsonl: line 2, byte 16 (0xe9) is not valid UTF-8", "accepted encodings")


def test_bom_csv_trains(assets, tmp_path, capsys):
    rows = [json.loads(line) for line in Path(assets["data"]).read_text().splitlines()]
    src = tmp_path / "excel.csv"
    src.write_bytes(
        b"\xef\xbb\xbfreview,stars\r\n" + "".join(f"{r['review']},{r['stars']}\r\n" for r in rows).encode()
    )
    code, out, err = cli(capsys, *base_args(assets, tmp_path / "run", dataset=src), "--json")
    assert code == 0, err
    assert json.loads(out)["steps"] == 4


def test_one_class_training_set_is_refused(assets, tmp_path, capsys):
    src = tmp_path / "one.jsonl"
    src.write_text(
        "".join(json.dumps({"review": f"movie {i}", "stars": "positive"}) + "\n" for i in range(20))
    )
    code, _, err = cli(capsys, *base_args(assets, tmp_path / "run", dataset=src))
    one_error_line(code, err, "every training example has label 'positive' (column 'stars')")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "template, fragments",
    [
        ("{review} it was {mask}", ["uses field 'review'", "its fields: text", "--fields"]),
        ("{text} it was {mask", ["{mask", "^"]),
        ("it was {mask}", ["uses no field", "put {text} where the input goes"]),
    ],
)
def test_template_mistakes_fail_before_anything_is_written(assets, tmp_path, capsys, template, fragments):
    code, _, err = cli(capsys, *base_args(assets, tmp_path / "run"), "--template", template)
    one_error_line(code, err, *fragments)
    assert not (tmp_path / "run").exists()


def test_masked_lm_template_without_mask_fails_before_the_model_loads(tmp_path, capsys, monkeypatch):
    from softprompt.testing.models import tiny_model
    from softprompt.testing.tokenizer import tiny_tokenizer

    tiny_model("bert").save_pretrained(tmp_path / "bert")
    tiny_tokenizer("masked").save_pretrained(tmp_path / "bert")
    data = write_reviews(tmp_path / "r.jsonl")
    import softprompt.core.loading as loading

    monkeypatch.setattr(loading, "load_model", lambda *a, **k: pytest.fail("the model was loaded"))
    argv = base_args(
        {"model": tmp_path / "bert", "data": data}, tmp_path / "run", fields="text=text,label=label"
    )
    code, _, err = cli(capsys, *argv, "--template", "{text} it was good")
    one_error_line(code, err, "has no {mask} slot", "masked LM")
    assert not (tmp_path / "run").exists()


def test_run_that_failed_before_its_first_step_does_not_block_the_rerun(
    assets, tmp_path, capsys, monkeypatch
):
    """A run that fails on its first batch leaves run.json at "failed" (naming the error) and nothing else: the
    corrected rerun (other settings) reuses the folder; a folder holding a checkpoint is still protected."""
    import softprompt.tasks.classify as classify

    out = tmp_path / "run"
    real_loss = classify.VerbalizerTask.loss

    def boom(*a, **k):
        raise RuntimeError("first batch fails")

    monkeypatch.setattr(classify.VerbalizerTask, "loss", boom)
    with pytest.raises(RuntimeError, match="first batch fails"):
        main([str(a) for a in base_args(assets, out)])
    doc = json.loads((out / "run.json").read_text())
    assert (doc["status"], doc["error"]) == ("failed", "RuntimeError: first batch fails")
    monkeypatch.setattr(classify.VerbalizerTask, "loss", real_loss)
    code, _, err = cli(capsys, *base_args(assets, out, lr=0.2), "--json")
    assert code == 0, err
    assert json.loads((out / "run.json").read_text())["status"] == "finished"
    code, _, err = cli(capsys, *base_args(assets, out, lr=0.3))
    one_error_line(code, err, "holds another run")


@pytest.mark.parametrize(
    "flags, extra, fragments",
    [
        ({"out": "FILE"}, [], ["is a file, not a folder"]),
        (
            {},
            ["--verbalizer", "positive=good;negative=bad;neutral=meh"],
            ["label(s) 'neutral'", "its labels"],
        ),
        ({}, ["--template", "{soft:2} {text} it was {mask}"], ["2 soft tokens", "provides 3 virtual"]),
        ({"model": "./no-such-model"}, [], ["model folder ./no-such-model does not exist"]),
        ({"model": "EMPTY"}, [], ["has no config.json", "save_pretrained"]),
        (
            {},
            ["--verbalizer", '{"positive": [], "negative": "bad"}'],
            ["label 'positive': [] is not accepted"],
        ),
    ],
)
def test_train_input_catalogue(assets, tmp_path, capsys, flags, extra, fragments):
    (tmp_path / "file").write_text("x")
    (tmp_path / "empty").mkdir()
    subst = {"FILE": tmp_path / "file", "EMPTY": tmp_path / "empty"}
    flags = {k: subst.get(v, v) for k, v in flags.items()}
    out = flags.pop("out", tmp_path / "run")
    code, _, err = cli(capsys, *base_args(assets, out, **flags), *extra)
    one_error_line(code, err, *fragments)
    assert not (tmp_path / "run").exists()


def test_use_input_catalogue(run_dir, assets, tmp_path, capsys):
    (tmp_path / "in.jsonl").write_text('{"body": "x"}\n')
    (tmp_path / "in2.jsonl").write_text('{"review": 5}\n{"review": ["a"]}\n')
    plain = write_reviews(tmp_path / "plain.jsonl")  # text, label: no --fields needed
    cases = [
        (["eval", "--prompt", run_dir, "--limit", 0], ["limit=0 is out of range"]),
        (["predict", "--prompt", run_dir, "--input", tmp_path / "in.jsonl"],
         ["in.jsonl: row 1 (line 1) has no 'text' (or column 'review') value", "this row has: body"]),
        (["predict", "--prompt", run_dir, "--input", tmp_path / "in2.jsonl"],
         ["in2.jsonl: row 2 (line 2): 'text' is a JSON list; accepted: a string"]),
        (["sensitivity", "--model", assets["model"], "--dataset", plain, "--template", "{txt} {mask}",
          "--out", tmp_path / "s"], ["uses field 'txt'", "its fields"]),
        (["predict", "--prompt", tmp_path, "--text", "x"], ["neither a prompt folder", "nor a run folder"]),
        (["report", run_dir, "--out", tmp_path / "in.jsonl"], ["--out", "is a file; give a folder"]),
        (["sensitivity", "--model", assets["model"], "--dataset", plain, "--out", tmp_path / "in.jsonl"],
         ["is a file; give a folder"]),
        (["demo", "--model", assets["model"], "--out", tmp_path / "in.jsonl"], ["is a file; give a folder"]),
        (["predict", "--prompt", run_dir, "--input", tmp_path], ["is a folder; give one .jsonl"]),
    ]  # fmt: skip
    for argv, fragments in cases:
        code, _, err = cli(capsys, *argv)
        one_error_line(code, err, *fragments)


def test_prompt_json_with_a_broken_spec_fails_before_the_model_loads(run_dir, tmp_path, capsys, monkeypatch):
    import shutil

    import softprompt.core.loading as loading

    folder = tmp_path / "p"
    shutil.copytree(next((run_dir / "best").iterdir()), folder)
    meta = json.loads((folder / "prompt.json").read_text())
    del meta["spec"]["text_fields"]
    (folder / "prompt.json").write_text(json.dumps(meta))
    monkeypatch.setattr(loading, "load_model", lambda *a, **k: pytest.fail("the model was loaded"))
    code, _, err = cli(capsys, "predict", "--prompt", folder, "--text", "good")
    one_error_line(code, err, "prompt.json: 'spec' lacks 'text_fields'")
    meta["backbone"]["extra"] = 1
    (folder / "prompt.json").write_text(json.dumps(meta))
    code, _, err = cli(capsys, "eval", "--prompt", folder)
    one_error_line(code, err, "backbone: unknown key(s) 'extra'")


def test_peft_out_folder_holding_other_files_is_not_replaced(run_dir, assets, tmp_path, capsys):
    code, _, err = cli(capsys, "peft", "export", "--prompt", run_dir, "--out", tmp_path / "adapter")
    assert code == 0, err
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    for argv in (
        ["peft", "export", "--prompt", run_dir, "--out", mine],
        ["peft", "import", "--model", assets["model"], "--peft", tmp_path / "adapter", "--out", run_dir],
    ):
        code, _, err = cli(capsys, *argv)
        one_error_line(code, err, "holds other files", "would be replaced as a whole")
    assert (mine / "notes.txt").read_text() == "keep me" and (run_dir / "run.json").is_file()
    code, _, err = cli(capsys, "peft", "export", "--prompt", run_dir, "--out", tmp_path / "adapter")
    assert code == 0, err  # an existing PEFT folder is replaced


def test_predict_cuts_long_inputs_to_the_rope_context_with_a_warning(run_dir, capsys):
    """RoPE models report no learned-position limit; the CLI takes config.max_position_embeddings (128)."""
    with pytest.warns(UserWarning, match=r"> max_length=125; cut \d+ tokens"):  # 128 positions - 3 virtual
        code, out, err = cli(capsys, "predict", "--prompt", run_dir, "--text", " ".join(["good"] * 300))
    assert code == 0, err
    assert out.split()[0] in ("positive", "negative")


def test_generation_prompt_past_the_context(assets, tmp_path, capsys):
    src = tmp_path / "gen.jsonl"
    src.write_text(
        "".join(json.dumps({"text": f"story {i} good", "target": "fine"}) + "\n" for i in range(20))
    )
    out = tmp_path / "gen"
    argv = base_args(assets, out, dataset=src, fields="text=text,target=target")
    code, _, err = cli(capsys, *argv)
    assert code == 0, err
    args = ["generate", "--prompt", out, "--text", " ".join(["good"] * 200), "--max-new-tokens", 4]
    code, _, err = cli(capsys, *args)
    one_error_line(code, err, "+ 3 virtual tokens + 4 new tokens", "the model's context of 128", "--truncate")
    code, stdout, err = cli(capsys, *args, "--truncate", "--json")
    assert code == 0, err
    assert "kept the last 121 input tokens" in err and isinstance(json.loads(stdout)["output"], str)


@pytest.mark.parametrize(
    "change, fragments",
    [
        (lambda d: (d / "adapter_model.safetensors").unlink(), ["no adapter_model.safetensors"]),
        (lambda d: (d / "adapter_config.json").write_text("{bad"), ["adapter_config.json: corrupt JSON"]),
        (lambda d: _edit_json(d / "adapter_config.json", peft_type="LORA"), ["peft_type='LORA' is not supported"]),
        (lambda d: _edit_json(d / "adapter_config.json", num_virtual_tokens=None),
         ["num_virtual_tokens=None; expected an int >= 1"]),
        (lambda d: _edit_json(d / "adapter_config.json", num_virtual_tokens=7), ["this backbone needs (7, 32)"]),
    ],
)  # fmt: skip
def test_peft_adapter_folder_catalogue(run_dir, assets, tmp_path, capsys, change, fragments):
    adapter = tmp_path / "adapter"
    assert cli(capsys, "peft", "export", "--prompt", run_dir, "--out", adapter)[0] == 0
    change(adapter)
    code, _, err = cli(
        capsys, "peft", "import", "--model", assets["model"], "--peft", adapter, "--out", tmp_path / "p"
    )
    one_error_line(code, err, *fragments)
    assert not (tmp_path / "p").exists()


def _edit_json(path, **changes):
    doc = json.loads(path.read_text())
    doc.update(changes)
    path.write_text(json.dumps(doc))


def test_float32_prompt_predicts_on_a_bfloat16_backbone(run_dir, capsys):
    code, out, err = cli(capsys, "predict", "--prompt", run_dir, "--text", "good", "--dtype", "bfloat16")
    assert code == 0, err
    assert out.split()[0] in ("positive", "negative")


def test_eval_on_a_one_class_file_is_allowed(run_dir, tmp_path, capsys):
    src = tmp_path / "all-positive.jsonl"
    src.write_text(
        "".join(json.dumps({"review": f"good {i}", "stars": "positive"}) + "\n" for i in range(20))
    )
    code, out, err = cli(capsys, "eval", "--prompt", run_dir, "--dataset", src, "--fields", "text=review,label=stars",
                         "--split", "train", "--json")  # fmt: skip
    assert code == 0, err
    assert json.loads(out)["examples"] == 16
