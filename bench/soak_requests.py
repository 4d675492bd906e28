"""What the soak (bench/soak.py) sends and which answers keep the contract: the request mix over 8 prompts, the
server's limits it runs under, the refusals each over-limit request may get."""

from __future__ import annotations

import random

NAMES = [f"p{i}" for i in range(8)]
CHURNED = {"p6", "p7"}  # deleted and added again during the run
WORDS = [
    "the",
    "movie",
    "was",
    "good",
    "and",
    "it",
    "is",
    "not",
    "a",
    "bad",
    "film",
    "i",
    "you",
    "this",
    "great",
    "boring",
]
LIMITS = {"max_new_tokens": 24, "max_queue": 96, "max_rows": 32, "timeout": 4.0}
# kind -> the (status, error code) answers it may get; greedy/sampled/disconnect also 429 and 504 (load).
EXPECT = {
    "max_tokens": {(400, "invalid_value")},
    "too_long": {(400, "context_length_exceeded")},
    "too_big": {(413, "body_too_large")},
    "bad_type": {(422, "invalid_type")},
    "out_of_bounds": {(422, "invalid_type")},
    "unknown": {(404, "model_not_found")},
}
LOAD = {(429, "queue_full"), (504, "timeout")}


def plan(n: int, rng: random.Random, texts: list[str]) -> list[dict]:
    """``n`` requests: a third disconnecting streams, ~14 % over a limit, the rest greedy (some sampled)."""
    over = list(EXPECT)
    out = []
    for i in range(n):
        r = rng.random()
        model = rng.choice([*NAMES, "base"])
        body = {
            "model": model,
            "prompt": rng.choice(texts),
            "max_tokens": rng.choice([4, 8, 16]),
            "temperature": 0,
        }
        if r < 1 / 3:
            out.append({"kind": "disconnect", "body": {**body, "stream": True}, "after": rng.randint(0, 2)})
        elif r < 1 / 3 + 0.14:
            out.append({"kind": (kind := over[i % len(over)]), "body": _over(kind, body, rng)})
        elif r < 1 / 3 + 0.14 + 0.05:
            out.append({"kind": "sampled", "body": {**body, "temperature": 0.8, "seed": i}})
        else:
            out.append({"kind": "greedy", "body": {**body, "stream": rng.random() < 0.5}})
    return out


def _over(kind: str, body: dict, rng: random.Random) -> dict:
    if kind == "max_tokens":
        return {**body, "max_tokens": LIMITS["max_new_tokens"] + rng.randint(1, 1000)}
    if kind == "too_long":
        return {**body, "prompt": [5] * rng.randint(200, 2000)}
    if kind == "too_big":
        return {**body, "prompt": "good " * 260_000}
    if kind == "bad_type":
        return {**body, "max_tokens": rng.choice(["many", [1], {"a": 1}])}
    if kind == "out_of_bounds":
        return {**body, rng.choice(["n", "temperature", "top_p"]): rng.choice([17, -1, 3.5])}
    return {**body, "model": f"nope{rng.randint(0, 99)}"}


def judge(req: dict) -> str:
    """'ok', or why the answer breaks the contract."""
    a, kind = req["answer"], req["kind"]
    if a.get("transport_error"):
        return f"transport error {a['transport_error']}"
    if a.get("traceback") or (a["status"] != 200 and not a.get("body_ok", False)):
        return f"error body not in the API's shape ({a['status']})"
    got = (a["status"], a["code"])
    if req["body"].get("model") in CHURNED and got == (404, "model_not_found"):
        return "ok"  # its prompt was deleted at that moment
    if kind in EXPECT:
        return "ok" if got in EXPECT[kind] else f"refused with {got}, documented {sorted(EXPECT[kind])}"
    if a["status"] == 200 and a["code"] in (None, "timeout"):  # (a stream cut by the time limit says so)
        return "ok"
    return "ok" if got in LOAD else f"unexpected {got}"
