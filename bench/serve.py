"""Serving benchmark on SmolLM2-135M (writes bench/results/serve.json; not a timed test).

(a) throughput: 8 prompt-tuning prompts, interleaved requests, through the engine (one mixed batch, continuous
    batching) vs. the PEFT way (one PeftModel with 8 adapters, ``set_adapter`` + one ``generate`` per prompt);
(b) latency of one request, prompt tuning with 100 virtual tokens and a short input: the engine (prompt-KV
    prefix computed once) vs. PEFT's ``generate``;
(c) a mixed-prompt batch (8 prompts) vs. a single-prompt batch of the same shape, through the engine;
(d) load: time to first token (p50, p95) and decode tokens/s at 1, 8, 32 and 64 concurrent HTTP clients, short
    and long (1,000-token) inputs, 8 prompts (bench/serve_load.py), and the goal line (p95 TTFT at 32 clients
    <= 4x the 1-client figure), met or not; also written as a Markdown table next to the JSON.

Every figure is a median over ``--reps`` runs, the two sides interleaved. Usage: python bench/serve.py [--quick]
[--sections load] [--out FILE]  (or make bench-serve)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import threading
import time
from pathlib import Path

import torch

from common import MODEL, machine, tokenizer, versions
from serve_load import bench_load, table
from serve_open import add_load_args

OUT = Path(__file__).parent / "results" / "serve.json"


def inputs(tok, n: int, words: int) -> list[list[int]]:
    """``n`` real Rotten Tomatoes review openings, ``words`` tokens each (fixed length: a fair comparison)."""
    from softprompt.data import load_dataset

    rows = load_dataset("rotten-tomatoes").validation
    out = []
    for ex in rows:
        ids = tok("Review: " + ex["text"], add_special_tokens=False)["input_ids"]
        if len(ids) >= words:
            out.append(ids[:words])
        if len(out) == n:
            return out
    raise RuntimeError("not enough reviews")


def engine_with(prompts: dict[str, int], max_rows: int, **limits):
    """An engine on SmolLM2 holding prompt-tuning prompts {name: virtual tokens}; EOS off (fixed lengths)."""
    from softprompt.core.loading import load_model
    from softprompt.methods import make_config
    from softprompt.serve import Engine, EngineConfig, PromptStore

    model = load_model(MODEL)
    store = PromptStore(model)
    for i, (name, n) in enumerate(prompts.items()):
        model.add_prompt(name, make_config("prompt-tuning", num_virtual_tokens=n, init="vocab"), seed=i)
        store.adopt(name)
    config = EngineConfig(max_rows=max_rows, max_queue=4096, max_new_tokens=256, **limits)
    eng = Engine(store, config).start()
    eng.eos = frozenset()
    return eng


def run_engine(eng, jobs: list[tuple[str | None, list[int]]], new: int, out: list | None = None) -> float:
    """Submit every job at once; seconds until the last one finished (``out``: each job's tokens)."""
    done = threading.Semaphore(0)
    tokens = [[] for _ in jobs]

    def sink_of(i):
        def sink(ev):
            if ev["type"] == "token":
                tokens[i].append(ev["token"])
            if ev["type"] in ("done", "error"):
                done.release()

        return sink

    t = time.perf_counter()
    for i, (name, ids) in enumerate(jobs):
        eng.submit(eng.completion(ids, name, sink=sink_of(i), max_tokens=new, temperature=0))
    for _ in jobs:
        done.acquire()
    if out is not None:
        out[:] = tokens
    return time.perf_counter() - t


def peft_model(names: dict[str, int]):
    import peft
    from transformers import AutoModelForCausalLM

    from softprompt.assets import resolve_model

    base = AutoModelForCausalLM.from_pretrained(resolve_model(MODEL), dtype=torch.float32).eval()
    first, *rest = names.items()
    m = peft.get_peft_model(
        base, peft.PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=first[1]), first[0]
    )
    for name, n in rest:
        m.add_adapter(name, peft.PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=n))
    return m.eval()


@torch.no_grad()
def run_peft(m, pad: int, groups: dict[str, list[list[int]]], new: int) -> float:
    t = time.perf_counter()
    for name, rows in groups.items():
        m.set_adapter(name)
        x = torch.tensor(rows)  # equal lengths: no padding needed
        m.generate(
            input_ids=x,
            attention_mask=torch.ones_like(x),
            max_new_tokens=new,
            min_new_tokens=new,
            do_sample=False,
            pad_token_id=pad,
        )
    return time.perf_counter() - t


def median_pair(fa, fb, reps: int) -> tuple[list[float], list[float]]:
    fa(), fb()  # warm-up
    a, b = [], []
    for _ in range(reps):
        a.append(fa())
        b.append(fb())
    return a, b


def bench_throughput(tok, reps: int, per_prompt: int, new: int) -> dict:
    names = {f"p{i}": 20 for i in range(8)}
    eng, m = engine_with(names, max_rows=8 * per_prompt), peft_model(names)
    rows = inputs(tok, 8 * per_prompt, 24)
    jobs = [(f"p{i % 8}", rows[i]) for i in range(len(rows))]  # interleaved prompts
    groups = {n: [ids for p, ids in jobs if p == n] for n in names}
    ours, theirs = median_pair(
        lambda: run_engine(eng, jobs, new), lambda: run_peft(m, tok.pad_token_id, groups, new), reps
    )
    eng.stop()
    tokens = len(jobs) * new
    return {
        "requests": len(jobs),
        "new_tokens": new,
        "ours_s": ours,
        "peft_s": theirs,
        "ours_tokens_per_s": tokens / statistics.median(ours),
        "peft_tokens_per_s": tokens / statistics.median(theirs),
        "ratio": statistics.median(theirs) / statistics.median(ours),
    }


def bench_latency(tok, reps: int, new: int) -> dict:
    eng, m = engine_with({"long": 100}, max_rows=4), peft_model({"long": 100})
    ids = inputs(tok, 1, 8)[0]
    ours, theirs = median_pair(
        lambda: run_engine(eng, [("long", ids)], new),
        lambda: run_peft(m, tok.pad_token_id, {"long": [ids]}, new),
        reps,
    )
    eng.stop()
    return {
        "virtual_tokens": 100,
        "input_tokens": 8,
        "new_tokens": new,
        "ours_s": ours,
        "peft_s": theirs,
        "ratio": statistics.median(theirs) / statistics.median(ours),
    }


def bench_mixed(tok, reps: int, new: int) -> dict:
    eng = engine_with({f"p{i}": 20 for i in range(8)}, max_rows=16)
    rows = inputs(tok, 16, 24)
    mixed = [(f"p{i % 8}", r) for i, r in enumerate(rows)]
    single = [("p0", r) for r in rows]
    a, b = median_pair(lambda: run_engine(eng, mixed, new), lambda: run_engine(eng, single, new), reps)
    together, alone = [], []
    run_engine(eng, mixed, new, together)
    for job in mixed:  # the same requests one at a time: greedy answers must not depend on the batch
        one = []
        run_engine(eng, [job], new, one)
        alone += one
    eng.stop()
    return {
        "rows": 16,
        "prompts": 8,
        "new_tokens": new,
        "mixed_s": a,
        "single_s": b,
        "overhead": statistics.median(a) / statistics.median(b) - 1,
        "equal_to_alone": f"{sum(x == y for x, y in zip(together, alone))}/{len(mixed)}",
    }


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--new-tokens", type=int, default=16)
    p.add_argument("--quick", action="store_true", help="1 rep, fewer requests and clients (a smoke run)")
    p.add_argument("--sections", default="throughput,latency,mixed,load", help="comma-separated subset")
    add_load_args(p)
    p.add_argument("--out", type=Path, default=OUT, help=f"(default: {OUT})")
    a = p.parse_args(argv)
    wanted = a.sections.split(",")
    reps, per_prompt = (1, 1) if a.quick else (a.reps, 4)
    tok = tokenizer()
    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    res = {"model": MODEL, "machine": machine(), "versions": versions(), "started": started, "reps": reps}
    res["load_start"] = " ".join(f"{x:.1f}" for x in os.getloadavg())
    heads = {
        "throughput": ("throughput_ratio_vs_peft", "ratio"),
        "latency": ("latency_ratio_vs_peft", "ratio"),
        "mixed": ("mixed_overhead", "overhead"),
    }
    for key, fn in [
        ("throughput", lambda: bench_throughput(tok, reps, per_prompt, a.new_tokens)),
        ("latency", lambda: bench_latency(tok, reps, a.new_tokens)),
        ("mixed", lambda: bench_mixed(tok, reps, a.new_tokens)),
        ("load", lambda: load_section(tok, a, reps)),
    ]:
        if key not in wanted:
            continue
        t = time.perf_counter()
        res[key] = fn()
        if key in heads:
            res[heads[key][0]] = res[key][heads[key][1]]
        print(key, json.dumps(res[key]), f"({time.perf_counter() - t:.0f} s)", flush=True)
        write(res, a.out, complete=key == wanted[-1])
    print(json.dumps({k: res[k] for k, _ in heads.values() if k in res}))
    if "load" in res:
        from softprompt.io.atomic import atomic_write_text

        md = (
            f"Serving load on {MODEL}, {res['machine']}, started {started} (load average {res['load_start']}), "
            f"finished {res['finished']} (load average {res['load_end']}); medians of {reps} run(s); the machine "
            "was shared with other jobs.\n\n"
        )
        atomic_write_text(a.out.with_suffix(".md"), md + table(res["load"]))
        print(res["load"]["goal"]["line"])


def load_section(tok, a, reps: int) -> dict:
    """TTFT and tokens/s under 1..64 clients (bench/serve_load.py) on an engine with 64 rows."""
    clients = [int(c) for c in (a.clients or ("1,8,32" if a.quick else "1,8,32,64")).split(",")]
    arrivals = tuple(a.arrival.split(","))
    rows = max(clients + ([64] if "rate" in arrivals else []))  # open loop: as many rows as the largest load
    eng = engine_with({f"p{i}": 20 for i in range(8)}, max_rows=rows, request_timeout=1800.0)
    try:
        return bench_load(
            eng,
            tok,
            inputs,
            clients=clients,
            shapes=a.shapes.split(","),
            reps=reps,
            new=a.new_tokens,
            long_tokens=a.long_tokens,
            per_client={"short": 2 if a.quick else 3, "long": 1},
            arrivals=arrivals,
            rate=a.rate,
            rates=tuple(float(r) for r in a.rates.split(",")) if a.rates else (),
            requests=a.requests,
            limit_s=a.time_limit,
        )
    finally:
        eng.stop()


def write(res: dict, out: Path, complete: bool) -> None:
    """serve.json after every section (``complete`` false until the last one), atomically."""
    from softprompt.io.atomic import atomic_write_text

    res["complete"] = complete
    res["load_end"] = " ".join(f"{x:.1f}" for x in os.getloadavg())
    res["finished"] = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    out.parent.mkdir(exist_ok=True)
    atomic_write_text(out, json.dumps(res, indent=2))


if __name__ == "__main__":
    torch.set_num_threads(2)
    main()
