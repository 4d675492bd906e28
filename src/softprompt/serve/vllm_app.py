"""The HTTP front of ``--engine vllm``: OpenAI's ``/v1/completions`` for every served prompt, answered by vLLM.

A request names a prompt in ``model``; its text (or token ids) is tokenized here with the backbone's tokenizer,
turned into input embeddings by :class:`~softprompt.serve.vllm_engine.InputPrompts` and sent to vLLM's server
as ``prompt_embeds``. Every other field (``max_tokens``, ``temperature``, ``stop``, ``n``, ``logprobs``,
``stream``, vLLM's own ``return_token_ids``...) is passed on; vLLM's answer comes back with ``model`` set to the
prompt's name. Deep prompts get HTTP 400 naming the engine that serves them.
"""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

from softprompt.serve import responses as R
from softprompt.serve.guard import Guard
from softprompt.serve.limits import EngineConfig
from softprompt.serve.store import BASE
from softprompt.serve.vllm_engine import DeepPromptRefused, InputPrompts, encode_embeds
from softprompt.serve.vllm_limits import FrontLimits

if TYPE_CHECKING:
    from softprompt.serve.vllm_engine import VLLMProcess

SERVED = ("/v1/completions", "/v1/models", "/health")
MAX_BODY = 1 << 20


def create_vllm_app(
    prompts: InputPrompts,
    url: str,
    *,
    version: str,
    api_key: str | None = None,
    parent: str = "",
    max_body: int = MAX_BODY,
    config: EngineConfig | None = None,
) -> FastAPI:
    """The front app; ``url``: vLLM's OpenAI server (started by ``VLLMProcess`` or given); ``config``: the limits
    it enforces (``max_new_tokens``, ``max_queue`` beyond ``max_rows`` running, ``request_timeout``)."""
    app = FastAPI(title="softprompt (vLLM engine)", docs_url=None, redoc_url=None)
    app.add_middleware(Guard, api_key=api_key, max_body=max_body)
    limits = app.state.limits = FrontLimits(config or EngineConfig())
    timeout = httpx.Timeout(limits.config.request_timeout + 5.0)  # our own limit answers first
    client = app.state.client = httpx.AsyncClient(base_url=url, timeout=timeout)  # lives as long as the app
    tok = prompts.model.tokenizer

    @app.exception_handler(R.ApiError)
    async def _api_error(request, e: R.ApiError):
        return JSONResponse(e.body(), status_code=e.status, headers=e.headers)

    @app.get("/health")
    async def health():
        return {"status": "ok", "engine": "vllm", "vllm": version, "prompts": len(prompts.store.names())}

    @app.get("/v1/models")
    async def models():
        refused = prompts.refused()
        cards: list[dict[str, object]] = [
            {"id": BASE, "object": "model", "owned_by": "softprompt", "parent": parent}
        ]
        for e in prompts.store.entries():
            card: dict[str, object] = {
                "id": e.name,
                "object": "model",
                "owned_by": "softprompt",
                "parent": parent,
            }
            card.update(method=e.method, virtual_tokens=e.virtual_tokens, served=e.name not in refused)
            cards.append(card)
        return {"object": "list", "data": cards}

    @app.post("/v1/completions")
    async def completions(request: Request):
        body = await _json(request, max_body)
        limits.check_body(body)
        name, out = _vllm_body(prompts, tok, body)
        limits.take()
        if body.get("stream"):
            events = limits.stream(_relay(client, out, name))
            return StreamingResponse(events, media_type="text/event-stream")
        r = await limits.within(client.post("/v1/completions", json=out))
        data = r.json()
        if r.status_code == 200:
            data["model"] = name
        return JSONResponse(data, status_code=r.status_code)

    @app.api_route("/v1/{path:path}", methods=["GET", "POST", "DELETE"])
    async def elsewhere(path: str):
        raise R.ApiError(
            400,
            f"/v1/{path} is not served by --engine vllm (it serves {', '.join(SERVED)}); "
            "classification, chat and adding/removing prompts run on --engine softprompt (the default)",
            code="engine_refused",
        )

    return app


def _vllm_body(prompts: InputPrompts, tok, body: dict) -> tuple[str, dict]:
    """(the prompt's name, the body for vLLM): the client's fields, ``model`` base, the rows as token ids or
    as ``prompt_embeds``."""
    name = body.get("model")
    if not isinstance(name, str):
        raise R.ApiError(400, "model: give the name of a served prompt ('base': no prompt)", param="model")
    try:
        rows = [prompts.inputs(name, ids) for ids in _prompt_ids(tok, body.get("prompt"))]
    except DeepPromptRefused as e:
        raise R.ApiError(400, str(e), param="model", code="engine_refused") from None
    except Exception as e:
        raise R.api_error(e, "prompt") from None
    out = {k: v for k, v in body.items() if k not in ("model", "prompt", "prompt_embeds")}
    out["model"] = BASE
    embeds = [r.embeds for r in rows if r.embeds is not None]  # every row or none: one prompt
    if not embeds:
        out["prompt"] = [r.ids for r in rows]
    else:
        out["prompt_embeds"] = [encode_embeds(e) for e in embeds]
    return name, out


async def _json(request: Request, max_body: int) -> dict:
    raw = await request.body()
    if len(raw) > max_body:
        raise R.ApiError(
            413, f"request body is {len(raw)} bytes; the limit is {max_body}", code="body_too_large"
        )
    try:
        data = json.loads(raw)
    except ValueError as e:
        raise R.ApiError(400, f"request body is not valid JSON: {e}", code="invalid_json") from None
    if not isinstance(data, dict):
        raise R.ApiError(400, "request body must be a JSON object", code="invalid_json")
    return data


def _prompt_ids(tok, prompt) -> list[list[int]]:
    """A completion's ``prompt`` (text, token ids, or a list of either) as rows of token ids."""
    if isinstance(prompt, str):
        return [tok(prompt)["input_ids"]]
    if not isinstance(prompt, list) or not prompt:
        raise R.ApiError(
            400, "prompt: give a string, a list of token ids, or a non-empty list of either", param="prompt"
        )
    if all(isinstance(t, int) for t in prompt):
        return [list(prompt)]
    if all(isinstance(p, str) for p in prompt):
        return [tok(p)["input_ids"] for p in prompt]
    if all(isinstance(p, list) and all(isinstance(t, int) for t in p) for p in prompt):
        return [list(p) for p in prompt]
    raise R.ApiError(400, "prompt: a list mixes strings, ids and lists; give one kind", param="prompt")


async def _relay(client: httpx.AsyncClient, body: dict, name: str):
    """vLLM's server-sent events, each chunk's ``model`` set to the prompt's name."""
    async with client.stream("POST", "/v1/completions", json=body) as r:
        if r.status_code != 200:
            err = (await r.aread()).decode(errors="replace")
            yield f"data: {err}\n\n"
            return
        async for line in r.aiter_lines():
            if line.startswith("data: {"):
                chunk = json.loads(line[6:])
                chunk["model"] = name
                line = "data: " + json.dumps(chunk)
            if line:
                yield line + "\n\n"


def build_vllm(
    model: str,
    prompts_dir: str | None,
    *,
    python: str,
    dtype: str = "float32",
    config: EngineConfig | None = None,
) -> tuple[InputPrompts, VLLMProcess, str]:
    """(InputPrompts on ``model`` with the prompts of ``prompts_dir``, started VLLMProcess, vLLM's version).

    vLLM is checked first (VLLMUnavailable before anything loads); the backbone is loaded here too, on CPU, for
    its tokenizer, its embedding module and the prompts.
    """
    from softprompt.assets import resolve_model
    from softprompt.core.loading import load_model
    from softprompt.serve.server import DTYPES
    from softprompt.serve.store import PromptStore
    from softprompt.serve.vllm_engine import VLLMProcess, VLLMUnavailable, vllm_version

    version = vllm_version(python)
    config = config or EngineConfig()
    backbone = load_model(model, dtype=DTYPES[dtype], device="cpu")
    if backbone.info.kind != "causal":
        raise VLLMUnavailable(
            f"--engine vllm: {backbone.info.family} is not a causal LM; vLLM's prompt_embeds path serves "
            "decoder-only models: use --engine softprompt"
        )
    store = PromptStore(backbone, prompts_dir)
    if prompts_dir is not None:
        store.load_all()
    front = InputPrompts(store)
    flags = ["--dtype", dtype, "--max-num-seqs", str(config.max_rows)]
    proc = VLLMProcess(python, resolve_model(model), args=flags)
    return front, proc, version


def run_vllm(args: argparse.Namespace, config: EngineConfig) -> int:
    """``softprompt serve --engine vllm``: the front on ``args.host:args.port``, vLLM behind it on loopback."""
    import os

    import uvicorn

    from softprompt.errors import ConfigError
    from softprompt.serve.vllm_engine import vllm_python

    if args.ray:
        raise ConfigError("--engine vllm runs its own server process; it does not combine with --ray")
    front, proc, version = build_vllm(
        args.model, args.prompts, python=vllm_python(args.vllm_python), dtype=args.dtype, config=config
    )
    try:
        key = args.api_key if args.api_key is not None else os.environ.get("SOFTPROMPT_API_KEY") or None
        app = create_vllm_app(front, proc.url, version=version, api_key=key, parent=args.model, config=config)
        refused = front.refused()
        served = [n for n in ["base", *front.store.names()] if n not in refused]
        print(
            f"softprompt: vLLM {version} engine serving {', '.join(served)} on http://{args.host}:{args.port}"
        )
        if refused:
            names = ", ".join(f"{n} ({m})" for n, m in refused.items())
            print(f"softprompt: refused on --engine vllm (deep prompts; use --engine softprompt): {names}")
        uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    finally:
        proc.close()
    return 0
