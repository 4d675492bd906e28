"""``softprompt serve --engine vllm``: input-level prompts (prompt tuning, P-tuning) served through vLLM.

vLLM lives in its own virtualenv (``make vllm-env``), so it runs as its own process: vLLM's OpenAI server on a
free loopback port with ``--enable-prompt-embeds``, started and stopped here (:class:`VLLMProcess`). softprompt
keeps the prompts. A request names one; this front server builds the row's input embeddings — the prompt's
virtual-token vectors, then the embedding module's output for the request's tokens, exactly what softprompt's
own engine puts before the backbone — and hands them to vLLM as ``prompt_embeds``. ``base`` (and a prompt that
adds nothing to the input) goes to vLLM as plain token ids.

Deep prompts (prefix tuning, P-tuning v2) are per-layer key/value prefixes: they have no input-embedding form,
so this engine refuses them, naming the method and the engine that serves them (``--engine softprompt``).
"""

from __future__ import annotations

import base64
import io
import os
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from softprompt.errors import ConfigError, UnsupportedModel
from softprompt.serve.intake import check_token_ids
from softprompt.serve.store import BASE, Entry, PromptStore

PYTHON_ENV = "SOFTPROMPT_VLLM_PYTHON"
"""Environment variable naming the vLLM virtualenv's python (``--vllm-python`` overrides it)."""
DEFAULT_PYTHON = ".venv-vllm/bin/python"
"""Where ``make vllm-env`` puts it (relative to the working directory)."""
ENGINES = ("softprompt", "vllm")


class VLLMUnavailable(UnsupportedModel):
    """vLLM cannot be started: not installed in the given python, or its server failed to come up."""


class DeepPromptRefused(ConfigError):
    """A request names a prompt with key/value prefixes on the vLLM engine (HTTP 400)."""

    def __init__(self, name: str, method: str):
        super().__init__(
            f"model={name!r} is a {method} prompt (per-layer key/value prefixes); --engine vllm serves "
            "input-level prompts only (prompt-tuning, p-tuning), which vLLM takes as prompt_embeds. "
            f"Serve {name!r} with --engine softprompt (the default engine)"
        )


def vllm_python(flag: str | None) -> str:
    """The python of the vLLM virtualenv: ``flag``, else ``$SOFTPROMPT_VLLM_PYTHON``, else .venv-vllm's."""
    return flag or os.environ.get(PYTHON_ENV) or DEFAULT_PYTHON


def vllm_version(python: str, timeout: float = 300.0) -> str:
    """vLLM's version in ``python``; VLLMUnavailable naming what is missing when it does not import."""
    if not Path(python).exists():
        raise VLLMUnavailable(
            f"--engine vllm: no python at {python!r}. vLLM lives in its own virtualenv: run `make vllm-env` "
            f"(creates {DEFAULT_PYTHON}) or pass --vllm-python / ${PYTHON_ENV}"
        )
    try:
        out = subprocess.run(
            [python, "-c", "import vllm; print(vllm.__version__)"],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        raise VLLMUnavailable(f"--engine vllm: {python} -c 'import vllm' failed: {e}") from None
    if out.returncode != 0:
        last = (out.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise VLLMUnavailable(
            f"--engine vllm: vLLM does not import in {python}: {last}. Install it with `make vllm-env`"
        )
    return out.stdout.strip().splitlines()[-1]


def encode_embeds(x: torch.Tensor) -> str:
    """(T, H) tensor -> what vLLM's ``prompt_embeds`` takes: base64 of ``torch.save`` (loaded weights-only)."""
    buf = io.BytesIO()
    torch.save(x.detach().contiguous().cpu(), buf)
    return base64.b64encode(buf.getvalue()).decode()


@dataclass
class Inputs:
    """What one completion row sends vLLM: token ids (no prompt vectors) or input embeddings."""

    ids: list[int]
    embeds: torch.Tensor | None  # (P + L, H) or None


class InputPrompts:
    """The store's prompts as input embeddings: prompt vectors once per version, token embeddings per request."""

    def __init__(self, store: PromptStore):
        self.store, self.model = store, store.model
        self._vectors: dict[str, torch.Tensor | None] = {}

    def vectors(self, entry: Entry) -> torch.Tensor | None:
        """(P, H) float32 virtual-token vectors of a served prompt version; DeepPromptRefused for prefixes."""
        if entry.key not in self._vectors:
            with self.store.lock, torch.no_grad():
                c = self.store.model.bank.get(entry.key).contribute()
            if c.kv is not None:
                raise DeepPromptRefused(entry.name, entry.method)
            self._vectors[entry.key] = None if c.embeds is None else c.embeds.detach().float().cpu()
        return self._vectors[entry.key]

    def inputs(self, name: str, ids: list[int]) -> Inputs:
        """Row inputs for ``ids`` under prompt ``name`` (``base``: the plain model)."""
        check_token_ids(self.model, ids)
        if name == BASE:
            return Inputs(ids, None)
        vec = self.vectors(self.store.get(name))
        if vec is None:
            return Inputs(ids, None)
        return Inputs(ids, torch.cat([vec, self.model.embed_tokens(ids).cpu()]))  # (P + L, H)

    def refused(self) -> dict[str, str]:
        """{name: method} of the served prompts this engine refuses (deep prompts)."""
        out = {}
        for e in self.store.entries():
            try:
                self.vectors(e)
            except DeepPromptRefused:
                out[e.name] = e.method
        return out


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class VLLMProcess:
    """vLLM's OpenAI server on ``model_dir`` in a child process, on loopback; ``close()`` ends it."""

    def __init__(self, python: str, model_dir: str, *, args: list[str], startup_timeout: float = 900.0):
        self.python, self.port = python, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.flags = [
            *("--model", model_dir, "--served-model-name", BASE, "--host", "127.0.0.1"),
            *("--port", str(self.port), "--enable-prompt-embeds", *args),
        ]
        self.log = Path(tempfile.mkdtemp(prefix="softprompt-vllm-")) / "vllm.log"
        env = {**os.environ, **vllm_env()}
        with open(self.log, "wb") as f:
            self.proc = subprocess.Popen(
                [python, "-m", "vllm.entrypoints.openai.api_server", *self.flags],
                stdout=f,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        try:
            self._wait(startup_timeout)
        except BaseException:
            self.close()
            raise

    def _wait(self, timeout: float) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise VLLMUnavailable(
                    f"--engine vllm: vLLM's server exited with code {self.proc.returncode} while starting; "
                    f"its last lines ({self.log}):\n{self.tail()}"
                )
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(1.0)
        raise VLLMUnavailable(f"--engine vllm: vLLM's server did not start in {timeout:.0f} s ({self.log})")

    def tail(self, lines: int = 15) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def close(self) -> None:
        """SIGTERM to vLLM's process group (its engine core and workers too), SIGKILL after 30 s."""
        import signal

        if self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


def vllm_env() -> dict[str, str]:
    """vLLM on a shared CPU machine: internal sockets on loopback, no thread pinning, a small KV cache
    (each overridable from the environment)."""
    return {
        "VLLM_HOST_IP": os.environ.get("VLLM_HOST_IP", "127.0.0.1"),
        "VLLM_CPU_OMP_THREADS_BIND": os.environ.get("VLLM_CPU_OMP_THREADS_BIND", "nobind"),
        "VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", "1"),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", str(torch.get_num_threads())),
        "HF_HUB_OFFLINE": "1",
    }
