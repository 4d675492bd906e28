"""Build a serving engine + app from a model name and a prompts folder (the CLI, the tests and Ray use this)."""

from __future__ import annotations

import os
import typing
import warnings
from typing import TYPE_CHECKING, Literal

import torch

from softprompt.errors import check_value
from softprompt.serve.limits import EngineConfig

Dtype = Literal["float32", "bfloat16", "float16"]
DTYPES = dict(zip(typing.get_args(Dtype), (torch.float32, torch.bfloat16, torch.float16)))

if TYPE_CHECKING:
    from fastapi import FastAPI
    from starlette.types import ASGIApp

    from softprompt.serve.engine import Engine


def resolve_device(device: str) -> str:
    """``auto``: the first CUDA device when there is one, else CPU; anything else is passed on unchanged."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def build_engine(
    model: str,
    prompts: str | None,
    *,
    device: str = "auto",
    dtype: Dtype = "float32",
    quantize: str | None = None,
    config: EngineConfig | None = None,
) -> Engine:
    """A started :class:`Engine` on ``model`` with every prompt folder / run folder of ``prompts``.

    A backbone that cannot generate through the server (a masked LM, an encoder) is served for
    ``/v1/classify``; a warning says so here, naming the model, the reason and what works instead.
    """
    from softprompt.core.loading import load_model
    from softprompt.serve.engine import Engine
    from softprompt.serve.store import PromptStore

    check_value("dtype", dtype, Dtype)
    backbone = load_model(model, dtype=DTYPES[dtype], device=resolve_device(device), quantize=quantize)
    store = PromptStore(backbone, prompts)
    if prompts is not None:
        store.load_all()
    engine = Engine(store, config)
    if engine.intake.refusal is not None:  # said at startup, and again on each completion request
        warnings.warn(f"--model {model}: {engine.intake.refusal}", stacklevel=2)
    return engine.start()


def build_app(engine: Engine, *, api_key: str | None = None, parent: str = "") -> FastAPI:
    """The HTTP app; ``api_key`` defaults to the environment's ``SOFTPROMPT_API_KEY`` (None: no key)."""
    from softprompt.serve.app import create_app

    key = api_key if api_key is not None else os.environ.get("SOFTPROMPT_API_KEY") or None
    return create_app(engine, api_key=key, parent=parent)


class BackgroundServer:
    """uvicorn serving ``app`` on ``host`` and a free port (or ``port``) in a background thread (notebooks, tests,
    benchmarks); ``close()`` stops it."""

    def __init__(
        self, app: ASGIApp, host: str = "127.0.0.1", port: int = 0, startup_timeout: float = 20.0
    ) -> None:
        import socket
        import threading
        import time

        import uvicorn

        sock = socket.socket()
        sock.bind((host, port))
        self.port = sock.getsockname()[1]
        self.url = f"http://{host}:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]}, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + startup_timeout
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError(f"uvicorn did not start on {self.url}")
            time.sleep(0.02)

    def close(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=20)
