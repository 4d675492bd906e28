"""The same engine and HTTP API as a Ray Serve deployment (``softprompt serve ... --ray --replicas N``).

Every replica loads the backbone and every prompt (they are tiny) and runs its own engine, so a replica's batches
stay mixed; the prompt name travels in the request body, and Ray's proxy spreads requests over the replicas.
Needs the optional extra ``pip install softprompt[ray]``. ``RAY_ADDRESS`` (or ``ray start --address``) points it
at an existing cluster; without one a local Ray instance is started.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING

from softprompt.errors import UnsupportedModel
from softprompt.serve.limits import EngineConfig

if TYPE_CHECKING:
    from ray.serve import Application


def _ray():
    try:
        import ray
        from ray import serve
    except ImportError:
        raise UnsupportedModel("--ray needs Ray Serve: pip install 'softprompt[ray]'") from None
    return ray, serve


def deployment(
    model: str,
    prompts: str,
    *,
    replicas: int,
    device: str,
    dtype: str,
    config: EngineConfig,
    api_key: str | None,
    num_cpus: float = 1.0,
    quantize: str | None = None,
) -> Application:
    """A bound Ray Serve application: ``replicas`` copies of the engine + app."""
    _, serve = _ray()

    @serve.deployment(num_replicas=replicas, ray_actor_options={"num_cpus": num_cpus})
    @serve.ingress()
    class SoftPromptServer:
        def __init__(self, model, prompts, device, dtype, limits, api_key, quantize):
            from softprompt.serve.server import build_engine

            self.engine = build_engine(
                model, prompts, device=device, dtype=dtype, quantize=quantize, config=EngineConfig(**limits)
            )
            self.api_key, self.parent = api_key, model

        def __serve_build_asgi_app__(self):
            from softprompt.serve.server import build_app

            return build_app(self.engine, api_key=self.api_key, parent=self.parent)

    limits = {k: getattr(config, k) for k in config.__dataclass_fields__}
    return SoftPromptServer.bind(  # type: ignore[attr-defined]  # ray annotates serve.deployment as returning the class, not a Deployment
        model, str(Path(prompts).resolve()), device, dtype, limits, api_key, quantize
    )


def start(
    model: str,
    prompts: str,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    replicas: int = 1,
    device: str = "cpu",
    dtype: str = "float32",
    config: EngineConfig | None = None,
    api_key: str | None = None,
    num_cpus: float = 1.0,
    name: str = "softprompt",
    quantize: str | None = None,
) -> None:
    """Start (or join) Ray, then run the deployment behind Ray Serve's HTTP proxy on ``host:port``."""
    ray, serve = _ray()
    if not ray.is_initialized():
        local = not os.environ.get("RAY_ADDRESS")
        src = str(Path(__file__).resolve().parents[2])  # this softprompt, for local worker processes
        env = {"env_vars": {"PYTHONPATH": os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")]))}}
        where = {"_node_ip_address": "127.0.0.1"} if local else {}  # a local instance stays on loopback
        ray.init(runtime_env=env if local else None, include_dashboard=False, log_to_driver=False, **where)
    serve.start(http_options={"host": host, "port": port})
    app = deployment(
        model,
        prompts,
        replicas=replicas,
        device=device,
        dtype=dtype,
        config=config or EngineConfig(),
        api_key=api_key,
        num_cpus=num_cpus,
        quantize=quantize,
    )
    serve.run(app, name=name, route_prefix="/")


def stop() -> None:
    ray, serve = _ray()
    serve.shutdown()
    ray.shutdown()


def run_ray(args: argparse.Namespace, config: EngineConfig) -> int:
    """The CLI's ``--ray``: serve until interrupted."""
    import time

    key = args.api_key if args.api_key is not None else os.environ.get("SOFTPROMPT_API_KEY") or None
    start(
        args.model,
        args.prompts,
        host=args.host,
        port=args.port,
        replicas=args.replicas,
        device=args.device,
        dtype=args.dtype,
        config=config,
        api_key=key,
        quantize=args.quantize,
    )
    print(f"softprompt: Ray Serve, {args.replicas} replica(s), on http://{args.host}:{args.port}")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        stop()
    return 0
