"""Where a joining request's time goes under load (writes bench/results/serve-profile.{json,md}; not a test).

One burst of ``--clients`` streaming HTTP clients (``--per-client`` short requests each, 8 prompt-tuning prompts, as the load
benchmark's short inputs) through the engine with timing wrappers: per request, client TTFT vs. the engine's
(submission to first token: the rest is HTTP, tokenization and streaming), split into waiting for a group
(queued) and prefilling (group start to first token); per scheduler step, its wall time and the backbone
forward's share. Then the raw cost of one forward of N packed prefill tokens on this CPU (the physical bound: the
last of c simultaneous first tokens cannot come before all c prefills are computed).
Usage: python bench/serve_profile.py [--clients 32]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
from pathlib import Path

import torch

from common import machine, tokenizer
from serve import engine_with, inputs
from serve_load import _run, percentile

OUT = Path(__file__).parent / "results" / "serve-profile.json"


def instrument(eng) -> dict:
    """Wrap the engine's step, the backbone's forward and the prefill start with timers."""
    log: dict = {"steps": [], "forwards": [], "started": {}, "first": {}}
    step, fwd, start = eng._step, eng.model.backbone.forward, eng._prefill.start

    def timed_step(waiting):
        t = time.perf_counter()
        step(waiting)
        log["steps"].append(time.perf_counter() - t)

    def timed_forward(*a, **kw):
        t = time.perf_counter()
        out = fwd(*a, **kw)
        x = kw.get("inputs_embeds")
        log["forwards"].append((time.perf_counter() - t, 0 if x is None else x.shape[0] * x.shape[1]))
        return out

    def timed_start(batch, joining):
        now = time.monotonic()
        for r in joining:
            log["started"][id(r)] = (r.submitted, now)
        start(batch, joining)

    eng._step, eng.model.backbone.forward, eng._prefill.start = timed_step, timed_forward, timed_start
    advance = eng._advance

    def timed_advance(r, logits, greedy, now):
        if r.first_token is None:
            log["first"][id(r)] = now
        return advance(r, logits, greedy, now)

    eng._advance = timed_advance
    return log


@torch.no_grad()
def forward_costs(eng, sizes: list[int]) -> dict:
    """Median seconds of one backbone forward over N tokens packed in one row (no cache), 3 runs each."""
    bb, out = eng.model.backbone, {}
    with eng.store.lock:
        for n in sizes:
            x = torch.randint(100, 1000, (1, n))
            bb(input_ids=x, use_cache=False, logits_to_keep=1)
            ts = []
            for _ in range(3):
                t = time.perf_counter()
                bb(input_ids=x, use_cache=False, logits_to_keep=1)
                ts.append(time.perf_counter() - t)
            out[str(n)] = statistics.median(ts)
            print("forward", n, out[str(n)], flush=True)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--clients", type=int, default=32)
    p.add_argument("--per-client", type=int, default=3, help="requests each client sends in turn")
    a = p.parse_args()
    from softprompt.serve.server import BackgroundServer, build_app

    tok = tokenizer()
    load0 = os.getloadavg()
    eng = engine_with({f"p{i}": 20 for i in range(8)}, max_rows=64, request_timeout=1800.0)
    log = instrument(eng)
    live = BackgroundServer(build_app(eng))
    texts = [tok.decode(r) for r in inputs(tok, 32, 24)]
    try:
        run = asyncio.run(_run(live.url, texts, a.clients, a.per_client, 16))
    finally:
        live.close()
    queued = [s - sub for sub, s in log["started"].values()]
    prefill = [log["first"][k] - s for k, (sub, s) in log["started"].items() if k in log["first"]]
    engine_ttft = [log["first"][k] - sub for k, (sub, s) in log["started"].items() if k in log["first"]]
    fw = log["forwards"]
    res = {
        "machine": machine(),
        "load_average": [load0, os.getloadavg()],
        "clients": a.clients,
        "client_ttft_p50_p95_s": [run["ttft_p50_s"], run["ttft_p95_s"]],
        "engine_ttft_p50_p95_s": [percentile(engine_ttft, 0.5), percentile(engine_ttft, 0.95)],
        "queued_p50_p95_s": [percentile(queued, 0.5), percentile(queued, 0.95)],
        "prefill_to_first_p50_p95_s": [percentile(prefill, 0.5), percentile(prefill, 0.95)],
        "wall_s": run["wall_s"],
        "steps": len(log["steps"]),
        "step_s_total": sum(log["steps"]),
        "forward_s_total": sum(t for t, _ in fw),
        "forwards": len(fw),
        "tokens_per_forward_mean": statistics.mean(n for _, n in fw) if fw else 0,
        "forward_cost_s": forward_costs(eng, [1, 24, 32, 96, 256, 768]),
    }
    eng.stop()
    OUT.write_text(json.dumps(res, indent=2))
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    torch.set_num_threads(2)
    main()
