"""Server soak (``make soak``): ``softprompt serve`` on loopback under 2,000 requests over 8 prompts, faults mixed in.

    .venv/bin/python bench/soak.py                          # tiny random Llama (minutes on 2 cores)
    .venv/bin/python bench/soak.py --model smollm2-135m     # the real backbone (slower)

Up to 500 concurrent clients (httpx async); a third stream and disconnect after 0-2 chunks; two of the 8 prompts
are deleted and added again in a loop while requests for them wait and run; requests over every limit are mixed
in (max_tokens, input length, body size, field types and bounds, unknown prompt), and the queue limit and the
request timeout are set low enough to be hit. Afterwards: no stuck slot (/health and /metrics at 0), the server's
RSS against its start (after a warm-up), every completed greedy answer against the same request sent alone, and
every refusal against the error catalogue. Writes bench/results/soak.{json,md}.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import datetime
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import machine
from soak_requests import CHURNED, EXPECT, LIMITS, LOAD, NAMES, WORDS, judge, plan  # noqa: F401  (EXPECT, LOAD, judge: re-exported)

ROOT = Path(__file__).resolve().parent.parent
METHODS = [  # (method, fields, saved form): two prompts of each
    ("prompt-tuning", {"num_virtual_tokens": 4}, "training"),
    ("p-tuning", {"num_virtual_tokens": 3, "encoder_hidden": 8}, "training"),
    ("prefix-tuning", {"num_virtual_tokens": 5, "mlp_hidden": 16, "dropout": 0.0}, "inference"),
    ("p-tuning-v2", {"num_virtual_tokens": 4, "dropout": 0.0}, "training"),
]


def write_assets(folder: Path, model_name: str | None) -> tuple[str, Path]:
    """A model folder (the tiny random Llama unless ``model_name``) and a prompts folder with 8 prompts."""
    import torch

    from softprompt.core.loading import load_model
    from softprompt.files.prompts import save_prompt
    from softprompt.methods import make_config

    if model_name is None:
        from softprompt.testing.models import tiny_model
        from softprompt.testing.tokenizer import tiny_tokenizer

        model_name = str(folder / "model")
        tiny_model("llama").save_pretrained(model_name)
        tiny_tokenizer("causal").save_pretrained(model_name)
    model = load_model(model_name, device="cpu")
    for i, name in enumerate(NAMES):
        method, fields, form = METHODS[i % len(METHODS)]
        model.add_prompt(name, make_config(method, **fields), seed=i)
        with torch.no_grad():  # far from the init, so each prompt changes the answer
            for p in model.bank.get(name).parameters():
                p.add_(torch.randn(p.shape, generator=torch.Generator().manual_seed(i)) * 0.5)
        save_prompt(model, name, folder / "prompts" / name, form=form)
    return model_name, folder / "prompts"


def start_server(model: str, prompts: Path, port: int, log: Path) -> subprocess.Popen:
    argv = [sys.executable, "-m", "softprompt", "serve", "--model", model, "--prompts", str(prompts)]
    argv += ["--port", str(port), "--device", "cpu", "--max-rows", str(LIMITS["max_rows"])]
    argv += ["--max-queue", str(LIMITS["max_queue"]), "--max-new-tokens", str(LIMITS["max_new_tokens"])]
    argv += ["--timeout", str(LIMITS["timeout"])]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    return subprocess.Popen(argv, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)


def rss_mib(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of ``pid`` in MiB."""
    status = Path(f"/proc/{pid}/status").read_text()
    get = lambda key: int(re.search(rf"{key}:\s+(\d+) kB", status).group(1)) / 1024  # noqa: E731
    return get("VmRSS"), get("VmHWM")


async def send(http, req: dict) -> dict:
    """One request; the answer as {status, code, text, error_in_stream}."""
    body, out = req["body"], {"status": None, "code": None, "text": None}
    if not body.get("stream"):
        r = await http.post("/v1/completions", json=body)
        out["status"] = r.status_code
        data = r.json()
        if r.status_code == 200:
            out["text"] = data["choices"][0]["text"]
        else:
            out["code"], out["body_ok"] = (
                data["error"]["code"],
                set(data["error"]) == {"message", "type", "param", "code"},
            )
            out["traceback"] = "Traceback" in r.text
        return out
    async with http.stream("POST", "/v1/completions", json=body) as r:
        out["status"] = r.status_code
        if r.status_code != 200:
            data = json.loads(await r.aread())
            out["code"], out["body_ok"] = (
                data["error"]["code"],
                set(data["error"]) == {"message", "type", "param", "code"},
            )
            return out
        chunks, text = 0, []
        async for line in r.aiter_lines():
            if not line.startswith("data: {"):
                continue
            chunk = json.loads(line[6:])
            if "error" in chunk:
                out["code"] = chunk["error"]["code"]
                break
            chunks += 1
            text.append(chunk["choices"][0]["text"] if chunk["choices"] else "")
            if req["kind"] == "disconnect" and chunks > req["after"]:
                out["disconnected"] = True
                return out  # leaving the block closes the connection mid-stream
        out["text"] = "".join(text) if out["code"] is None else None
    return out


async def churn(http, prompts: Path, stop: asyncio.Event, log: collections.Counter) -> None:
    """Delete and add again the churned prompts until ``stop``."""
    names = sorted(CHURNED)
    i = 0
    import httpx

    while not stop.is_set():
        name = names[i % len(names)]
        for method, path, body in (("DELETE", f"/v1/prompts/{name}", None), ("POST", "/v1/prompts", name)):
            t = time.perf_counter()
            try:
                r = await http.request(method, path, json=body and {"name": body, "path": body})
                log[f"{method} {r.status_code}"] += 1
            except httpx.HTTPError as e:
                log[f"{method} {type(e).__name__}"] += 1
            log[f"slowest {method} s"] = max(log[f"slowest {method} s"], round(time.perf_counter() - t, 2))
            await asyncio.sleep(0.05)
        t = time.perf_counter()  # the control: a request that loads nothing, through the same client
        with contextlib.suppress(httpx.HTTPError):
            await http.get("/health")
        log["slowest GET /health s"] = max(log["slowest GET /health s"], round(time.perf_counter() - t, 2))
        await asyncio.sleep(0.2)
        i += 1


async def soak(url: str, reqs: list[dict], concurrency: int, prompts: Path) -> tuple[list[dict], dict, float]:
    import httpx

    # a new connection per request: a kept-alive one the server closes as it is reused would read as a dropped request
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=0)
    async with (
        httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as http,
        httpx.AsyncClient(base_url=url, timeout=120) as admin,
    ):
        gate, stop, churned = asyncio.Semaphore(concurrency), asyncio.Event(), collections.Counter()
        in_flight = [0, 0]  # now, most

        async def one(req):
            async with gate:
                in_flight[0] += 1
                in_flight[1] = max(in_flight)
                try:
                    req["answer"] = await send(http, req)
                except httpx.HTTPError as e:
                    req["answer"] = {"status": None, "transport_error": f"{type(e).__name__}: {e}"}
                finally:
                    in_flight[0] -= 1

        t = time.perf_counter()
        churner = asyncio.create_task(churn(admin, prompts, stop, churned))
        await asyncio.gather(*(one(r) for r in reqs))
        stop.set()
        await churner
        return reqs, {**churned, "most_in_flight": in_flight[1]}, time.perf_counter() - t


async def after(url: str, pid: int, reqs: list[dict], settle: float) -> dict:
    """The checks once the load ended: slots, memory, greedy answers against the same request alone."""
    import httpx

    async with httpx.AsyncClient(base_url=url, timeout=60) as http:
        deadline, health = time.monotonic() + 60, {}
        while time.monotonic() < deadline:
            health = (await http.get("/health")).json()
            if health["waiting"] == health["prefilling"] == health["running"] == 0:
                break
            await asyncio.sleep(0.2)
        metrics = (await http.get("/metrics")).text
        gauges = {
            k: float(re.search(rf"^{k} (\S+)$", metrics, re.M).group(1))
            for k in ("softprompt_queue_depth", "softprompt_running_rows")
        }
        await asyncio.sleep(settle)  # let freed slots' memory go back before reading RSS
        rss_end, hwm = rss_mib(pid)
        greedy = [r for r in reqs if r["kind"] == "greedy" and r["answer"].get("text") is not None]
        alone, mismatches = {}, []
        for r in greedy:
            b = r["body"]
            key = (b["model"], b["prompt"], b["max_tokens"])
            if key not in alone:
                one = await http.post("/v1/completions", json={**b, "stream": False})
                alone[key] = one.json()["choices"][0]["text"] if one.status_code == 200 else None
            if alone[key] is not None and alone[key] != r["answer"]["text"]:
                mismatches.append(
                    {
                        "request": {**b, "stream": b.get("stream")},
                        "under_load": r["answer"]["text"],
                        "alone": alone[key],
                    }
                )
    return {"health": health, "gauges": gauges, "rss_end_mib": rss_end, "rss_peak_mib": hwm,
            "greedy_compared": sum(1 for r in greedy if alone.get((r["body"]["model"], r["body"]["prompt"], r["body"]["max_tokens"])) is not None),
            "greedy_distinct": len(alone), "mismatches": mismatches}  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="a backbone name (default: a tiny random Llama)")
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=500)
    ap.add_argument("--port", type=int, default=8765)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "soak.json")
    args = ap.parse_args()
    load_start, rng = os.getloadavg(), random.Random(args.seed)
    texts = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 10))) for _ in range(24)]
    with tempfile.TemporaryDirectory() as tmp:
        model, prompts = write_assets(Path(tmp), args.model)
        server = start_server(model, prompts, args.port, Path(tmp) / "server.log")
        try:
            url = f"http://127.0.0.1:{args.port}"
            result = asyncio.run(_drive(url, server.pid, prompts, texts, args, rng))
        finally:
            alive = server.poll() is None
            server.kill()
            server.wait()
            log_tail = (Path(tmp) / "server.log").read_text()[-3000:]
            print(f"server alive at the end: {alive}; its log ends:\n{log_tail}", flush=True)
    result.update(
        date=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        machine=machine() + "; shared with other jobs (a correctness run, not a timing)",
        load_average_start=[round(x, 2) for x in load_start],
        load_average_end=[round(x, 2) for x in os.getloadavg()],
        model=args.model or "tiny random Llama (softprompt.testing.models, 128 positions)",
        limits=LIMITS,
        server_log_tail=log_tail,
        server_alive_at_end=alive,
    )
    from soak_report import write

    return write(result, args.out)


async def _drive(url: str, pid: int, prompts: Path, texts: list[str], args, rng: random.Random) -> dict:
    import httpx

    deadline = time.monotonic() + 300
    while True:
        try:
            async with httpx.AsyncClient(base_url=url) as http:
                if (await http.get("/health")).status_code == 200:
                    break
        except httpx.HTTPError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)
    warm = [{"kind": "greedy", "body": {"model": n, "prompt": t, "max_tokens": 8, "temperature": 0, "stream": s}}
            for n in [*NAMES, "base"] for t in texts[:4] for s in (False, True)]  # fmt: skip
    await soak(url, warm, 16, prompts)
    rss_start, _ = rss_mib(pid)
    reqs, churned, seconds = await soak(url, plan(args.requests, rng, texts), args.concurrency, prompts)
    checks = await after(url, pid, reqs, settle=5.0)
    return {"requests": reqs, "churn": churned, "seconds": seconds, "rss_start_mib": rss_start,
            "warmup_requests": len(warm), **checks}  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
