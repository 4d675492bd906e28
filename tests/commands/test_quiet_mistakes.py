"""Mistakes that used to pass without a word, or with the wrong one: a prompt.json that lost its template, a
--resume with nothing to resume, a header-only CSV, a label column prediction does not read, a prompts folder
holding a folder whose name cannot be a prompt name."""

import json
import shutil

import pytest
import test_inputs
from test_cli import base_args, cli, one_error_line

assets, run_dir = test_inputs.assets, test_inputs.run_dir  # the tiny model and reviews, a trained run


def prompt_copy(run_dir, folder, **changes):
    """A copy of the run's best prompt whose prompt.json has ``changes`` (a value of ... deletes the key)."""
    shutil.copytree(next((run_dir / "best").iterdir()), folder)
    meta = json.loads((folder / "prompt.json").read_text())
    for k, v in changes.items():
        meta.pop(k) if v is ... else meta.__setitem__(k, v)
    (folder / "prompt.json").write_text(json.dumps(meta))
    return folder


@pytest.mark.parametrize("value, said", [(..., "is missing"), (None, "is null"), ("  ", 'is "  "')])
def test_prompt_without_its_template_is_refused_everywhere(run_dir, assets, tmp_path, capsys, value, said):
    folder = prompt_copy(run_dir, tmp_path / "p", template=value)
    fragments = ["p/prompt.json: key 'template' " + said, "trained for the classification task", "run.json"]
    for argv in (
        ["predict", "--prompt", folder, "--text", "the movie was good"],
        ["eval", "--prompt", folder, "--dataset", assets["data"], "--fields", "text=review,label=stars"],
        ["generate", "--prompt", folder, "--text", "the movie was"],
    ):
        code, out, err = cli(capsys, *argv)
        one_error_line(code, err, *fragments)
        assert out == ""

    from softprompt.commands.backbone import load_trained
    from softprompt.errors import PromptFileError

    with pytest.raises(PromptFileError, match="key 'template' " + said):
        load_trained(str(folder), None)


def test_template_flag_stands_in_for_a_missing_one(run_dir, tmp_path, capsys):
    template = json.loads(next((run_dir / "best").iterdir()).joinpath("prompt.json").read_text())["template"]
    folder = prompt_copy(run_dir, tmp_path / "p", template=...)
    intact = cli(capsys, "predict", "--prompt", run_dir, "--text", "the movie was good")
    code, out, err = cli(
        capsys, "predict", "--prompt", folder, "--text", "the movie was good", "--template", template
    )
    assert code == 0, err
    assert out == intact[1]  # the same label and probabilities as the intact prompt


def test_server_refuses_a_prompt_without_its_template(run_dir, assets, tmp_path, capsys, monkeypatch):
    import httpx

    from softprompt.serve.server import BackgroundServer, build_app, build_engine

    root = tmp_path / "prompts"
    prompt_copy(run_dir, root / "broken", template=None)
    # at startup it is skipped with a warning naming the file and the key, and the rest is served (a half-written
    # or damaged folder must not keep a restarted server from serving the others: tests/serve/test_restart.py)
    with pytest.warns(
        UserWarning, match="skipped folder 'broken': .*broken/prompt.json: key 'template' is null"
    ):
        engine = build_engine(assets["model"], str(root), device="cpu")
    live = BackgroundServer(build_app(engine))
    try:
        r = httpx.post(live.url + "/v1/prompts", json={"name": "broken", "path": "broken"})
        assert r.status_code == 400 and "key 'template' is null" in r.json()["error"]["message"]
        assert [m["id"] for m in httpx.get(live.url + "/v1/models").json()["data"]] == ["base"]
    finally:
        live.close()
        engine.stop()


def test_resume_with_nothing_to_resume_says_so_in_one_line(assets, tmp_path):
    import subprocess
    import sys

    out = tmp_path / "run"
    argv = [sys.executable, "-m", "softprompt", *map(str, base_args(assets, out)), "--resume"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    line = f"softprompt: warning: nothing to resume in {out} (it is new, empty"
    assert line in done.stderr.splitlines()[0] and "starting this run from step 0" in done.stderr
    assert "UserWarning" not in done.stderr and "warnings.warn" not in done.stderr  # no source line shown


def test_resume_of_an_empty_folder_warns_and_a_finished_run_does_not(assets, tmp_path, capsys):
    import warnings

    out = tmp_path / "run"
    out.mkdir()
    with pytest.warns(UserWarning, match="nothing to resume in .*run .*starting this run from step 0"):
        code, _, err = cli(capsys, *base_args(assets, out), "--resume")
    assert code == 0, err
    assert json.loads((out / "run.json").read_text())["status"] == "finished"
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        code, _, err = cli(capsys, *base_args(assets, out), "--resume")  # resumes the finished run
    assert code == 0, err
    assert not [w for w in seen if "nothing to resume" in str(w.message)]


def test_header_only_csv_is_named_as_such(run_dir, assets, tmp_path, capsys):
    src = tmp_path / "h.csv"
    src.write_text("review,stars\n")
    code, _, err = cli(capsys, "predict", "--prompt", run_dir, "--input", src)
    one_error_line(code, err, "h.csv: has a header (review, stars) and no rows")
    assert "empty" not in err
    code, _, err = cli(capsys, *base_args(assets, tmp_path / "run", dataset=src))
    one_error_line(code, err, "h.csv: has a header (review, stars) and no rows")
    src.write_text("")  # a really empty file is still "empty"
    code, _, err = cli(capsys, "predict", "--prompt", run_dir, "--input", src)
    one_error_line(code, err, "the file is empty")


def test_predict_ignores_a_label_it_does_not_know_naming_file_and_line(run_dir, tmp_path, capsys):
    src = tmp_path / "in.csv"
    src.write_text(
        "review,stars\nthe movie was good,neutral\nthe movie was bad,positive\nthe movie was dull,meh\n"
    )
    plain = tmp_path / "plain.csv"
    plain.write_text("review\nthe movie was good\nthe movie was bad\nthe movie was dull\n")
    with pytest.warns(UserWarning) as seen:
        code, out, err = cli(capsys, "predict", "--prompt", run_dir, "--input", src)
    assert code == 0, err
    (message,) = [str(w.message) for w in seen if "prediction does not read it" in str(w.message)]
    assert "in.csv: row 1 (line 2): column 'stars' holds 'neutral'" in message
    assert "negative, positive" in message and "(and 1 more rows)" in message
    code, unlabelled, err = cli(capsys, "predict", "--prompt", run_dir, "--input", plain)
    assert code == 0, err
    assert out == unlabelled and len(out.splitlines()) == 3  # the label column changes nothing


def test_a_folder_named_outside_the_accepted_characters_is_skipped(assets, tmp_path):
    from softprompt.core.loading import load_model
    from softprompt.files.prompts import save_prompt
    from softprompt.methods import make_config
    from softprompt.serve.server import build_engine

    model = load_model(assets["model"])
    model.add_prompt("x", make_config("prompt-tuning", num_virtual_tokens=2))
    root = tmp_path / "prompts"
    for name in ("café", "good", "base", "with space"):
        save_prompt(model, "x", root / name)
    with pytest.warns(UserWarning) as seen:
        engine = build_engine(assets["model"], str(root), device="cpu")
    try:
        assert engine.store.names() == ["good"]
    finally:
        engine.stop()
    messages = sorted(str(w.message) for w in seen if "skipped folder" in str(w.message))
    assert len(messages) == 3
    assert "skipped folder 'café': a prompt name takes 1-128 ASCII letters, digits, '_' or '-'" in messages[1]
    assert "'base' is reserved for the plain backbone" in messages[0]
    assert "skipped folder 'with space'" in messages[2]
