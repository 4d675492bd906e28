"""``--quantize`` on every command that loads a backbone: train on an int8 backbone, then use the prompt on the
full-precision and the 4-bit one; a scheme that does not exist is refused naming the accepted ones."""

import json

import pytest
from test_cli import base_args, cli, write_model_dir, write_reviews
from test_inputs import MODEL_COMMANDS

from softprompt.cli import main

pytest.importorskip("bitsandbytes")


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    root = tmp_path_factory.mktemp("quantize")
    return {
        "model": str(write_model_dir(root / "model")),
        "data": str(write_reviews(root / "reviews.jsonl", text="review", label="stars")),
    }


@pytest.mark.parametrize("command", [*MODEL_COMMANDS, ["serve"]], ids=" ".join)
def test_every_model_command_has_quantize(capsys, command):
    with pytest.raises(SystemExit) as e:
        main([*command, "--help"])
    out = " ".join(capsys.readouterr().out.split())  # help wraps lines
    assert e.value.code == 0 and "--quantize {int8,nf4,fp4}" in out


def test_train_on_int8_then_use_the_prompt_in_full_precision_and_nf4(assets, tmp_path, capsys):
    out = tmp_path / "run"
    code, stdout, err = cli(capsys, *base_args(assets, out), "--quantize", "int8", "--json")
    assert code == 0, err
    assert json.loads(stdout)["steps"] == 4
    assert json.loads((out / "run.json").read_text())["run"]["quantize"] == "int8"
    code, _, err = cli(capsys, *base_args(assets, out), "--resume")  # on the full-precision backbone
    assert code == 2 and "holds another run" in err and "quantize" in err
    results = {}
    for flags in ([], ["--quantize", "int8"], ["--quantize", "nf4"]):
        code, stdout, err = cli(capsys, "eval", "--prompt", out, "--json", *flags)
        assert code == 0, err
        results[" ".join(flags) or "full"] = json.loads(stdout)["metrics"]["accuracy"]
        code, stdout, err = cli(capsys, "predict", "--prompt", out, "--text", "the movie was great", *flags)
        assert code == 0 and stdout.split()[0] in ("positive", "negative"), err
    assert all(0 <= a <= 1 for a in results.values())


def test_unknown_scheme_is_refused_naming_the_accepted_ones(assets, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main([str(a) for a in base_args(assets, tmp_path / "run")] + ["--quantize", "int3"])
    err = capsys.readouterr().err
    assert (
        e.value.code == 2 and "--quantize: invalid choice: 'int3' (choose from 'int8', 'nf4', 'fp4')" in err
    )
    assert not (tmp_path / "run").exists()
