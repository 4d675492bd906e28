"""``softprompt serve``: an OpenAI-compatible HTTP server for every prompt of a folder on one frozen model."""

from __future__ import annotations

import argparse
from typing import Annotated, Literal

NAME = "serve"
HELP = "serve the prompts of a folder over an OpenAI-compatible HTTP API (continuous batching)"
EPILOG = """examples:
  softprompt serve --model smollm2-135m --prompts runs/ --port 8000
  curl localhost:8000/v1/completions -H 'content-type: application/json' \\
       -d '{"model": "mine", "prompt": "The movie was", "max_tokens": 8, "temperature": 0}'
  softprompt serve --model smollm2-135m --prompts runs/ --ray --replicas 2     # Ray Serve (softprompt[ray])
  softprompt serve --model smollm2-135m --prompts runs/ --engine vllm          # vLLM (make vllm-env)
Every prompt folder and run folder directly inside --prompts is served under its folder name; "base" is the
plain model. --api-key (or SOFTPROMPT_API_KEY) requires "Authorization: Bearer KEY" on /v1 routes.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from softprompt.commands.backbone import add_quantize_flag

    parser.add_argument("--model", required=True, help="backbone: a built-in name, HF id or local folder")
    parser.add_argument(
        "--prompts", required=True, metavar="DIR", help="folder of prompt folders / run folders"
    )
    parser.add_argument("--host", default="127.0.0.1", help="(default: 127.0.0.1, loopback only)")
    parser.add_argument("--port", type=int, default=8000, help="(default: 8000)")
    parser.add_argument(
        "--api-key", help="bearer token required on /v1 routes (default: $SOFTPROMPT_API_KEY)"
    )
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default: auto)")
    parser.add_argument("--dtype", default="float32", help="float32 | bfloat16 | float16 (default: float32)")
    add_quantize_flag(parser)
    parser.add_argument("--max-rows", type=int, default=32, help="rows decoded together (default: 32)")
    parser.add_argument(
        "--max-queue", type=int, default=256, help="waiting requests before 429 (default: 256)"
    )
    parser.add_argument(
        "--max-tokens-per-step",
        type=int,
        default=512,
        help="prompt tokens prefilled per step; longer prefills are chunked (default: 512)",
    )
    parser.add_argument("--max-new-tokens", type=int, default=512, help="largest max_tokens (default: 512)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per request before 504")
    parser.add_argument("--ray", action="store_true", help="run as a Ray Serve deployment (softprompt[ray])")
    parser.add_argument("--replicas", type=int, default=1, help="Ray Serve replicas (with --ray; default: 1)")
    parser.add_argument(
        "--engine",
        default="softprompt",
        help="softprompt: every method (default) | vllm: input-level prompts through a vLLM server",
    )
    parser.add_argument(
        "--vllm-python",
        metavar="PYTHON",
        help="python of the vLLM virtualenv (default: $SOFTPROMPT_VLLM_PYTHON, else .venv-vllm/bin/python)",
    )


def run(args: argparse.Namespace) -> int:
    from annotated_types import Interval

    from softprompt.commands.common import quiet_loading
    from softprompt.errors import Positive, check_value
    from softprompt.serve.limits import EngineConfig

    check_value("port", args.port, Annotated[int, Interval(ge=0, le=65535)])
    check_value("replicas", args.replicas, Positive)
    check_value("engine", args.engine, Literal["softprompt", "vllm"])
    config = EngineConfig(
        max_rows=args.max_rows,
        max_queue=args.max_queue,
        max_tokens_per_step=args.max_tokens_per_step,
        max_new_tokens=args.max_new_tokens,
        request_timeout=args.timeout,
    )
    quiet_loading()
    if args.engine == "vllm":
        from softprompt.serve.vllm_app import run_vllm

        return run_vllm(args, config)
    if args.ray:
        from softprompt.serve.ray_app import run_ray

        return run_ray(args, config)
    import uvicorn

    from softprompt.serve.server import build_app, build_engine

    engine = build_engine(
        args.model, args.prompts, device=args.device, dtype=args.dtype, quantize=args.quantize, config=config
    )
    app = build_app(engine, api_key=args.api_key, parent=args.model)
    print(
        f"softprompt: serving {', '.join(['base', *engine.store.names()])} on http://{args.host}:{args.port}"
    )
    try:
        uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    finally:
        engine.stop()
    return 0
