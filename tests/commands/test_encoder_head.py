"""``softprompt train`` on a bare encoder saved like a sentence-transformers checkpoint: the default head pools
as the checkpoint says, is printed and recorded, and eval rebuilds it; --head overrides it."""

import json

from test_cli import base_args, write_reviews

from softprompt.cli import main
from softprompt.testing.models import pooling_flags as flags
from softprompt.testing.models import save_encoder as write_encoder


def train(capsys, folder, data, out, *extra):
    argv = base_args(
        {"model": folder, "data": data}, out, fields="text=text,label=label", method="p-tuning-v2"
    )
    code = main([str(a) for a in argv if a != "--quiet"] + [str(a) for a in extra])
    stdout, err = capsys.readouterr()
    assert code == 0, err
    return stdout


def test_default_head_follows_the_pooling_config_and_is_recorded(tmp_path, capsys):
    from softprompt.commands.backbone import load_trained

    folder = write_encoder(tmp_path / "st", flags("pooling_mode_mean_tokens"))
    data = write_reviews(tmp_path / "r.jsonl")
    stdout = train(capsys, folder, data, tmp_path / "run")
    config = folder / "1_Pooling" / "config.json"
    assert f"classification head: mean pooling (the checkpoint's pooling, {config})" in stdout
    run = json.loads((tmp_path / "run" / "run.json").read_text())["run"]
    assert run["prompts"][0]["pool"] == "mean"
    (prompt_dir,) = (tmp_path / "run" / "final").iterdir()
    meta_file = prompt_dir / "prompt.json"
    assert json.loads(meta_file.read_text())["task_head"] == "mean"
    assert load_trained(str(prompt_dir), None, device="cpu")[3].head.pool == "mean"
    meta = json.loads(meta_file.read_text())
    meta["task_head"] = None  # as written before head="auto": the default then was the first token
    meta_file.write_text(json.dumps(meta))
    assert load_trained(str(prompt_dir), None, device="cpu")[3].head.pool == "first"

    assert main(["eval", "--prompt", str(tmp_path / "run"), "--json"]) == 0
    assert json.loads(capsys.readouterr()[0])["examples"] == 6


def test_head_flag_overrides_the_pooling_config(tmp_path, capsys):
    folder = write_encoder(tmp_path / "st", flags("pooling_mode_mean_tokens"))
    data = write_reviews(tmp_path / "r.jsonl")
    stdout = train(capsys, folder, data, tmp_path / "run", "--head", "first")
    assert "classification head: first pooling (asked for)" in stdout
    (prompt_dir,) = (tmp_path / "run" / "final").iterdir()
    assert json.loads((prompt_dir / "prompt.json").read_text())["task_head"] == "first"


def _without_lr(argv):
    i = argv.index("--lr")
    return argv[:i] + argv[i + 2 :]


def test_a_trained_head_starts_from_the_head_rate_unless_lr_is_given(tmp_path, capsys):
    from softprompt.methods import METHODS

    folder = write_encoder(tmp_path / "st", flags("pooling_mode_mean_tokens"))
    data = write_reviews(tmp_path / "r.jsonl")
    for out, extra, lr in (
        ("default", [], METHODS["p-tuning-v2"].train_with_head["lr"]),
        ("given", ["--lr", "0.001"], 0.001),
    ):
        argv = base_args(
            {"model": folder, "data": data},
            tmp_path / out,
            fields="text=text,label=label",
            method="p-tuning-v2",
        )
        assert main([str(a) for a in _without_lr(argv) if a != "--quiet"] + extra) == 0
        err = capsys.readouterr()[1]
        run = json.loads((tmp_path / out / "run.json").read_text())
        assert run["run"]["config"]["lr"] == lr
        assert ("lr 0.03 (the default with a trained head; --lr overrides)" in err) is (not extra)
    assert METHODS["p-tuning-v2"].train_with_head["lr"] != METHODS["p-tuning-v2"].train["lr"]
