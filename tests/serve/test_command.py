"""``softprompt serve`` wiring: the command builds the engine and app from its flags and hands them to uvicorn."""

import pytest

from softprompt.cli import main

from .serving import LiveServer


def test_serve_command_serves_the_folder(serve_assets, monkeypatch, capsys):
    seen = {}

    def fake_run(app, host, port, **kw):  # instead of blocking in uvicorn.run: serve it on a free port
        seen.update(host=host, port=port)
        live = LiveServer(app)
        try:
            client = live.client(api_key="k1")
            seen["models"] = sorted(m.id for m in client.models.list().data)
            r = client.completions.create(model="prefix", prompt="the movie", max_tokens=3, temperature=0)
            seen["tokens"] = r.usage.completion_tokens
        finally:
            live.close()

    monkeypatch.setattr("uvicorn.run", fake_run)
    argv = ["serve", "--model", serve_assets["model"], "--prompts", serve_assets["prompts"], "--port", "8123"]
    assert main([*argv, "--api-key", "k1", "--device", "cpu", "--max-rows", "4"]) == 0
    assert seen["host"] == "127.0.0.1" and seen["port"] == 8123
    assert "prefix" in seen["models"] and "base" in seen["models"] and seen["tokens"] == 3
    assert "serving base, " in capsys.readouterr().out


@pytest.mark.parametrize(
    "flags, fragment",
    [
        (["--dtype", "float8"], "dtype='float8'"),
        (["--max-rows", "0"], "max_rows=0"),
        (["--port", "-1"], "port=-1"),
    ],
)
def test_serve_command_bad_flags(serve_assets, capsys, flags, fragment):
    argv = ["serve", "--model", serve_assets["model"], "--prompts", serve_assets["prompts"], *flags]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("softprompt: error: ") and fragment in err and "Traceback" not in err


def test_serve_command_missing_prompts_dir(serve_assets, tmp_path, capsys):
    assert main(["serve", "--model", serve_assets["model"], "--prompts", str(tmp_path / "none")]) == 2
    assert "not a directory" in capsys.readouterr().err
