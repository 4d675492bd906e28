"""Time to first token and decode throughput under load (the ``load`` section of bench/serve.py).

``c`` concurrent HTTP clients (streaming ``/v1/completions`` through uvicorn in-process), each sending its
requests one after another (closed loop; at least 8 requests per run), over 8 prompt-tuning prompts; inputs short (24 tokens of a review) or
long (1,000 tokens). Per run: TTFT p50 / p95 over every request (first streamed token with text), and decode
tokens/s (completion tokens of all requests / the run's wall time). Every figure is the median over ``reps`` runs.
The goal line compares p95 TTFT at 32 clients with 4x the 1-client p95 (short inputs). ``--arrival rate`` runs
open loop instead (bench/serve_open.py: Poisson arrivals at a request rate, whatever is in flight).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import statistics
import time

GOAL_CLIENTS, GOAL_FACTOR = 32, 4.0
MIN_REQUESTS = 8
"""Requests per run at least (a client sends several when there are fewer clients)."""


def long_inputs(tok, n: int, tokens: int) -> list[list[int]]:
    """``n`` inputs of exactly ``tokens`` tokens: consecutive Rotten Tomatoes reviews, each input from its own
    starting review."""
    from softprompt.data import load_dataset

    rows = [r["text"] for r in load_dataset("rotten-tomatoes").validation]
    stream = tok(" ".join(rows[:400]), add_special_tokens=False)["input_ids"]
    step = (len(stream) - tokens) // max(n, 1)
    return [stream[i * step : i * step + tokens] for i in range(n)]


def percentile(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, round(q * (len(xs) - 1))))]


async def _one(http, body: dict) -> tuple[float | None, int]:
    t, first, used = time.perf_counter(), None, 0
    async with http.stream("POST", "/v1/completions", json=body) as r:
        async for line in r.aiter_lines():
            if not line.startswith("data: {"):
                continue
            chunk = json.loads(line[6:])
            if chunk.get("usage"):
                used = chunk["usage"]["completion_tokens"]
            if first is None and any(c.get("text") for c in chunk.get("choices", [])):
                first = time.perf_counter() - t
    return first, used


def starts(clients: int, arrival: str, rate: float) -> list[float]:
    """Each client's first send, seconds after the run starts: all at 0 (``burst``), or Poisson arrivals at
    ``rate`` clients per second (``poisson``: exponential gaps, seeded), each client closed-loop after that."""
    if arrival == "burst":
        return [0.0] * clients
    rng, t, out = random.Random(0), 0.0, []
    for _ in range(clients):
        out.append(t)
        t += rng.expovariate(rate)
    return out


def _body(texts: list[str], new: int, i: int) -> dict:
    """Request ``i``: prompt ``p{i % 8}``, text ``i``, ``new`` tokens, greedy, streamed with usage."""
    return {
        "model": f"p{i % 8}",
        "prompt": texts[i % len(texts)],
        "max_tokens": new,
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }


async def _run_rate(url: str, texts: list[str], new: int, times: list[float], limit_s: float) -> dict:
    """One open-loop run (bench/serve_open.py): request ``i`` sent at ``times[i]`` whatever is in flight."""
    import httpx

    from serve_open import run_open

    n = len(times) + 1
    limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
    async with httpx.AsyncClient(base_url=url, timeout=2 * limit_s + 60, limits=limits) as http:
        await _one(http, _body(texts, new, 0))  # warm: the connection and the prompt's first use
        raw = await run_open(lambda i: _one(http, _body(texts, new, i)), times, limit_s)
    ttft = raw.pop("ttft")
    return {
        "ttft_p50_s": percentile(ttft, 0.5) if ttft else None,
        "ttft_p95_s": percentile(ttft, 0.95) if ttft else None,
        "tokens_per_s": raw.pop("tokens") / raw["wall_s"],
        "requests": raw["sent"],
        **raw,
    }


async def _run(
    url: str,
    texts: list[str],
    clients: int,
    per_client: int,
    new: int,
    arrival: str = "burst",
    rate: float = 2.0,
) -> dict:
    import httpx

    def body(i: int) -> dict:
        return _body(texts, new, i)

    limits = httpx.Limits(max_connections=clients + 1, max_keepalive_connections=clients + 1)
    async with httpx.AsyncClient(base_url=url, timeout=1800, limits=limits) as http:
        await _one(http, body(0))  # warm: the connection and the prompt's first use

        each = max(per_client, -(-MIN_REQUESTS // clients))  # enough requests for a p95 at few clients

        offsets = starts(clients, arrival, rate)

        async def client(c: int):
            await asyncio.sleep(offsets[c])
            return [await _one(http, body(c * each + k)) for k in range(each)]

        t = time.perf_counter()
        res = [x for xs in await asyncio.gather(*(client(c) for c in range(clients))) for x in xs]
        wall = time.perf_counter() - t
    ttft = [f for f, _ in res if f is not None]
    return {
        "ttft_p50_s": percentile(ttft, 0.5),
        "ttft_p95_s": percentile(ttft, 0.95),
        "tokens_per_s": sum(n for _, n in res) / wall,
        "wall_s": wall,
        "requests": len(res),
    }


def bench_load(
    eng,
    tok,
    inputs,
    *,
    clients,
    shapes,
    reps: int,
    new: int,
    long_tokens: int,
    per_client: dict,
    arrivals: tuple[str, ...] = ("burst",),
    rate: float = 2.0,
    rates: tuple[float, ...] = (),
    requests: int = 64,
    limit_s: float = 120.0,
) -> dict:
    """{"short"|"long" (+ "/poisson"): {clients: medians over ``reps`` runs}} through one engine, plus the goal
    line (judged on the burst: every client sends at t = 0, the issue's benchmark) and, when measured, the same
    line for Poisson-staggered starts. Open-loop arrivals (``rate`` in ``arrivals``) give {"short/rate":
    {requests per second: medians}} at each of ``rates`` (default: ``rate``), ``requests`` per run sent within
    ``limit_s`` (bench/serve_open.py), and "goal_short_rate": each rate's p95 over the 1-client p95."""
    from softprompt.serve.server import BackgroundServer, build_app

    live = BackgroundServer(build_app(eng))
    make = {
        "short": lambda: [tok.decode(r) for r in inputs(tok, 32, 24)],
        "long": lambda: [tok.decode(r) for r in long_inputs(tok, 16, long_tokens)],
    }
    shapes = {s: make[s]() for s in shapes}
    out: dict = {}
    try:
        for shape, texts in shapes.items():
            for arrival in arrivals:
                name = shape if arrival == "burst" else f"{shape}/{arrival}"
                if arrival == "rate":
                    out[name] = _open_rows(live.url, texts, rates or (rate,), reps, new, requests, limit_s)
                    continue
                out[name] = {}
                for c in clients:
                    if arrival != "burst" and c == 1:  # one client starts at t = 0 either way
                        continue
                    runs = [
                        asyncio.run(_run(live.url, texts, c, per_client[shape], new, arrival, rate))
                        for _ in range(reps)
                    ]
                    out[name][str(c)] = _medians(runs, ("ttft_p50_s", "ttft_p95_s", "tokens_per_s", "wall_s"))
                    print(name, c, json.dumps({k: out[name][str(c)][k] for k in KEYS}), flush=True)
    finally:
        live.close()
    out["goal"] = (
        goal(out["short"])
        if "short" in out
        else {"line": "judged on short inputs, which this run did not measure", "met": None}
    )
    if "short/poisson" in out:
        staggered = {**{k: v for k, v in out.get("short", {}).items() if k == "1"}, **out["short/poisson"]}
        out["goal_poisson"] = goal(staggered, f"Poisson starts at {rate:g} clients/s")
    if "short/rate" in out:
        from serve_open import rate_goal

        one = out.get("short", {}).get("1")
        out["goal_short_rate"] = {
            r: rate_goal(one, row, float(r), GOAL_FACTOR) for r, row in out["short/rate"].items()
        }
    return out


KEYS = ("ttft_p50_s", "ttft_p95_s", "tokens_per_s", "wall_s")
OPEN_KEYS = (
    *KEYS,
    *("achieved_rate_rps", "sent_rate_rps", "mean_in_flight", "max_in_flight", "finished", "unfinished"),
)


def _medians(runs: list[dict], keys: tuple[str, ...]) -> dict:
    return {
        "requests_per_run": runs[0]["requests"],
        **{k: statistics.median(r[k] for r in runs) for k in keys},
        "runs": runs,
        "load_average": os.getloadavg(),
    }


def _open_rows(url, texts, rates, reps: int, new: int, requests: int, limit_s: float) -> dict:
    """Open-loop runs at each rate (run ``k`` draws its arrival times with seed ``k``): {rate: medians}."""
    from serve_open import arrival_times

    rows = {}
    for rate in rates:
        runs = []
        for k in range(reps):
            times = arrival_times(rate, requests, limit_s, seed=k)
            runs.append({"seed": k, **asyncio.run(_run_rate(url, texts, new, times, limit_s))})
        if any(r["ttft_p95_s"] is None for r in runs):
            raise RuntimeError(f"rate {rate:g}/s: a run had no request with a first token: {runs}")
        rows[f"{rate:g}"] = row = _medians(runs, OPEN_KEYS)
        print(f"rate {rate:g}/s", json.dumps({k: row[k] for k in OPEN_KEYS}), flush=True)
    return rows


def goal(short: dict, how: str = "burst: every client sends at t = 0") -> dict:
    """p95 TTFT at 32 clients <= 4x the 1-client p95 (short inputs): met or not, with the figures."""
    one, many = short.get("1"), short.get(str(GOAL_CLIENTS))
    if one is None or many is None:
        return {"line": f"not measured (needs 1 and {GOAL_CLIENTS} clients)", "met": None}
    ratio = many["ttft_p95_s"] / one["ttft_p95_s"]
    met = ratio <= GOAL_FACTOR
    line = (
        f"({how}) p95 TTFT at {GOAL_CLIENTS} clients {many['ttft_p95_s']:.2f} s vs {one['ttft_p95_s']:.2f} s at 1 client "
        f"= {ratio:.1f}x (goal <= {GOAL_FACTOR:.0f}x): {'met' if met else 'NOT met'}"
    )
    return {"line": line, "met": met, "ratio": ratio}


def table(load: dict) -> str:
    """The load section as a Markdown table."""
    rows = [
        "| input | clients | TTFT p50 (s) | TTFT p95 (s) | tokens/s | requests/run |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for shape in ("short", "short/poisson", "long", "long/poisson"):
        for c, r in load.get(shape, {}).items():
            rows.append(
                f"| {shape} | {c} | {r['ttft_p50_s']:.2f} | {r['ttft_p95_s']:.2f} | {r['tokens_per_s']:.1f} "
                f"| {r['requests_per_run']} |"
            )
    from serve_open import rate_table

    extra = f"\nGoal: {load['goal_poisson']['line']}\n" if "goal_poisson" in load else ""
    opened = rate_table(load)
    return "\n".join(rows) + f"\n\nGoal: {load['goal']['line']}\n" + extra + (f"\n{opened}" if opened else "")
