"""Open-loop arrivals for the load benchmark (``--arrival rate``; vLLM's benchmark_serving style).

Requests arrive at the times of a Poisson process at ``rate`` requests per second (exponential gaps, seeded),
whether or not earlier ones have finished: a slow server meets a growing queue, as it would in production; the
closed-loop modes (``burst``, ``poisson``) wait for a client's answer before its next request. A run sends at
most ``requests`` requests, none after ``limit_s`` seconds, and waits at most ``limit_s`` more for the ones in
flight (those still running then are cancelled and counted as ``unfinished``). Loopback only.

Per run: TTFT p50 / p95 over the finished requests, decode tokens/s (completion tokens / the run's wall time),
the achieved request rate (finished requests / wall time, vLLM's "request throughput"), the sent rate (requests
sent / the time of the last send: what the seeded sample offered) and the requests in flight (mean by Little's
law: summed request time / wall time; max over the run).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
from collections.abc import Awaitable, Callable


def arrival_times(rate: float, requests: int, limit_s: float, seed: int = 0) -> list[float]:
    """Send times in seconds after the run starts: the first at 0, then exponential gaps of mean ``1 / rate``
    (``random.Random(seed)``); at most ``requests`` of them, every one before ``limit_s``."""
    if rate <= 0 or requests < 1 or limit_s <= 0:
        raise ValueError(
            f"open-loop arrivals need rate > 0, requests >= 1 and limit_s > 0 "
            f"(got rate={rate}, requests={requests}, limit_s={limit_s})"
        )
    rng, t, out = random.Random(seed), 0.0, []
    while len(out) < requests and t < limit_s:
        out.append(t)
        t += rng.expovariate(rate)
    return out


def in_flight(spans: list[tuple[float, float]]) -> int:
    """The most requests in flight at once, from (start, end) times."""
    events = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])  # an end sorts before a start
    now = most = 0
    for _, d in events:
        now += d
        most = max(most, now)
    return most


async def run_open(
    send: Callable[[int], Awaitable[tuple[float | None, int]]],
    times: list[float],
    limit_s: float,
) -> dict:
    """Send request ``i`` at ``times[i]`` (``send(i)`` -> (TTFT or None, completion tokens)) without waiting for
    earlier ones; wait at most ``limit_s`` after the last send. Returns the run's raw figures."""
    t0 = time.perf_counter()
    spans: list[tuple[float, float]] = []

    async def one(i: int) -> tuple[float | None, int]:
        await asyncio.sleep(max(0.0, t0 + times[i] - time.perf_counter()))
        s = time.perf_counter()
        out = await send(i)
        spans.append((s - t0, time.perf_counter() - t0))
        return out

    tasks = [asyncio.ensure_future(one(i)) for i in range(len(times))]
    done, pending = await asyncio.wait(tasks, timeout=times[-1] + limit_s)
    for p in pending:
        p.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    wall = time.perf_counter() - t0 if pending else max(e for _, e in spans)
    res = [t.result() for t in tasks if t in done]
    return {
        "ttft": [f for f, _ in res if f is not None],
        "tokens": sum(n for _, n in res),
        "wall_s": wall,
        "sent": len(times),
        "finished": len(res),
        "unfinished": len(pending),
        "without_text": sum(f is None for f, _ in res),
        "sent_rate_rps": (len(times) - 1) / times[-1] if times[-1] > 0 else None,
        "achieved_rate_rps": len(res) / wall,
        "mean_in_flight": sum(e - s for s, e in spans) / wall,
        "max_in_flight": in_flight(spans),
    }


def rate_goal(one: dict | None, at_rate: dict, rate: float, factor: float) -> dict:
    """p95 TTFT at ``rate`` requests/s over the 1-client p95 (the goal's ratio under open-loop load)."""
    if one is None:
        line = f"rate {rate:g}/s: no 1-client run in this invocation (add --arrival burst --clients 1)"
        return {"line": line, "met": None}
    ratio = at_rate["ttft_p95_s"] / one["ttft_p95_s"]
    met = ratio <= factor
    line = (
        f"(open loop, Poisson arrivals at {rate:g} requests/s, achieved {at_rate['achieved_rate_rps']:.2f}/s, "
        f"{at_rate['mean_in_flight']:.1f} in flight on average) p95 TTFT {at_rate['ttft_p95_s']:.2f} s vs "
        f"{one['ttft_p95_s']:.2f} s at 1 client = {ratio:.1f}x (goal's <= {factor:.0f}x): {'met' if met else 'NOT met'}"
    )
    return {"line": line, "met": met, "ratio": ratio}


def rate_table(load: dict) -> str:
    """The open-loop rows as a Markdown table ('' when none were measured)."""
    rows = [
        "| input | rate (req/s) | sent (req/s) | achieved (req/s) | in flight mean / max | TTFT p50 (s) "
        "| TTFT p95 (s) | p95 / 1 client | tokens/s | finished / sent |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for shape in ("short/rate", "long/rate"):
        for rate, r in load.get(shape, {}).items():
            ratio = load.get(f"goal_{shape.replace('/', '_')}", {}).get(rate, {}).get("ratio")
            rows.append(
                f"| {shape.split('/')[0]} | {rate} | {r['sent_rate_rps']:.2f} | {r['achieved_rate_rps']:.2f} "
                f"| {r['mean_in_flight']:.1f} / {r['max_in_flight']:g} | {r['ttft_p50_s']:.2f} "
                f"| {r['ttft_p95_s']:.2f} | {'-' if ratio is None else f'{ratio:.1f}x'} | {r['tokens_per_s']:.1f} "
                f"| {r['finished']:g} / {r['requests_per_run']} |"
            )
    if len(rows) == 2:
        return ""
    lines = [g["line"] for key in ("goal_short_rate",) for g in load.get(key, {}).values()]
    return "\n".join(rows) + "\n\n" + "".join(f"Open loop: {line}\n" for line in lines)


def add_load_args(p: argparse.ArgumentParser) -> None:
    """bench/serve.py's flags of the load section: clients, input shapes, arrival modes, and the open loop's
    (``--arrival rate``)."""
    p.add_argument(
        "--clients", default=None, help="load: concurrent clients (default: 1,8,32,64; quick: 1,8,32)"
    )
    p.add_argument("--shapes", default="short,long", help="load: input shapes (default: short,long)")
    p.add_argument(
        "--long-tokens", type=int, default=1000, help="load: tokens of a long input (default: 1000)"
    )
    p.add_argument(
        "--arrival",
        default="burst",
        help="load: comma-separated arrival modes: burst (every client at t = 0), poisson (staggered starts), "
        "rate (open loop: Poisson arrivals at --rate/--rates requests per second, --requests per run)",
    )
    p.add_argument(
        "--rate",
        type=float,
        default=2.0,
        help="load, poisson: clients starting per second; rate: requests per second (when --rates is not given)",
    )
    p.add_argument(
        "--rates", default=None, help="load, rate: comma-separated requests per second (e.g. 2,4,6)"
    )
    p.add_argument("--requests", type=int, default=64, help="load, rate: requests per run (default: 64)")
    p.add_argument(
        "--time-limit",
        type=float,
        default=120.0,
        help="load, rate: seconds in which requests are sent; those in flight get as long again (default: 120)",
    )
