"""``softprompt serve`` killed with SIGKILL during generation and during prompt uploads, restarted on the same prompts
folder: it serves every prompt whose add was answered (201) or whose folder was complete, none half-written, keeps
what was deleted deleted, and nothing left behind blocks adding the same name again."""

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from softprompt.files.prompts import META, resolve_prompt_dir


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Served:
    """A `softprompt serve` subprocess on 127.0.0.1."""

    def __init__(self, model: str, prompts: Path):
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")}
        argv = [sys.executable, "-m", "softprompt", "serve", "--model", model, "--prompts", str(prompts)]
        argv += ["--port", str(self.port), "--device", "cpu", "--max-new-tokens", "4000"]
        self.proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
            if self.proc.poll() is not None:
                raise AssertionError(f"serve exited {self.proc.returncode}: {self.proc.stderr.read()}")
        raise AssertionError("serve did not start in 120 s")

    def models(self) -> set[str]:
        return {m["id"] for m in httpx.get(self.url + "/v1/models").json()["data"]}

    def kill(self) -> str:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)
        return self.proc.stderr.read()

    def answer(self, model: str) -> str:
        body = {"model": model, "prompt": "the movie was", "max_tokens": 4, "temperature": 0}
        r = httpx.post(self.url + "/v1/completions", json=body, timeout=30)
        assert r.status_code == 200, r.text
        return r.json()["choices"][0]["text"]


@pytest.fixture()
def folder(serve_assets, tmp_path):
    root = tmp_path / "prompts"
    root.mkdir()
    for name in ("pt", "prefix", "v2"):
        shutil.copytree(Path(serve_assets["prompts"]) / name, root / name)
    return root


def test_kill_during_generation_and_uploads(serve_assets, folder):
    model = serve_assets["model"]
    first = Served(model, folder)
    want = {m: first.answer(m) for m in ("pt", "prefix", "v2")}
    assert httpx.post(first.url + "/v1/prompts", json={"name": "pt_b", "path": "pt"}).status_code == 201
    assert httpx.delete(first.url + "/v1/prompts/v2").status_code == 200
    streaming = {
        "model": "prefix",
        "prompt": "the movie",
        "max_tokens": 3000,
        "temperature": 0,
        "stream": True,
    }
    with httpx.stream("POST", first.url + "/v1/completions", json=streaming, timeout=30) as r:
        next(r.iter_lines())  # generating
        first.kill()

    second = Served(model, folder)  # the adds and deletes answered before the kill hold
    assert second.models() == {"base", "pt", "prefix", "pt_b"}
    assert second.answer("pt_b") == want["pt"] and second.answer("prefix") == want["prefix"]
    # uploads cut short: a folder copied without its tensors, a `save_prompt` killed inside its temporary folder,
    # and an add killed while the server loads it
    shutil.copytree(folder / "v2", folder / "half")
    (folder / "half" / "prompt.safetensors").unlink()
    shutil.copytree(folder / "v2", folder / ".tmp-v2_new-x1y2")
    shutil.copytree(folder / "v2", folder / "v2_new")
    adding = threading.Thread(
        target=lambda: _post_quietly(second.url, {"name": "v2_new", "path": "v2_new"}), daemon=True
    )
    adding.start()
    time.sleep(0.02)
    second.kill()
    adding.join(10)

    third = Served(model, folder)
    served = third.models()
    assert "half" not in served and "v2" not in served and {"pt", "prefix", "pt_b"} <= served
    assert served - {"base", "pt", "prefix", "pt_b"} <= {"v2_new"}  # its folder was complete: served or not
    if "v2_new" in served:
        assert httpx.delete(third.url + "/v1/prompts/v2_new").status_code == 200
    added = httpx.post(third.url + "/v1/prompts", json={"name": "v2_new", "path": "v2_new"})
    assert added.status_code == 201, added.text  # nothing left behind blocks the same name
    assert third.answer("v2_new") == want["v2"] and third.answer("pt_b") == want["pt"]
    refused = httpx.post(third.url + "/v1/prompts", json={"name": "half", "path": "half"})
    assert refused.status_code == 400 and "half" in refused.json()["error"]["message"]
    assert "skipped folder 'half'" in third.kill()  # said why at startup
    assert (resolve_prompt_dir(folder / "v2") / META).exists()  # deleting stops serving; it keeps the files


def _post_quietly(url: str, body: dict) -> None:
    with contextlib.suppress(httpx.HTTPError):  # the server died under it
        httpx.post(url + "/v1/prompts", json=body, timeout=10)
