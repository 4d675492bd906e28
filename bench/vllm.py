"""The anchor: softprompt serve vs. vLLM's OpenAI server on SmolLM2-135M, side by side in one run.

Four servers on loopback, the same requests (real Rotten Tomatoes review openings, fixed lengths, greedy, EOS
ignored so every answer has ``--new-tokens`` tokens):
  softprompt/base     ``softprompt serve`` (uvicorn in-process), no prompt
  softprompt/prompt   the same server, a trained prompt-tuning prompt
  vllm/base           vLLM's OpenAI server (its own process and virtualenv), token ids
  vllm/prompt         ``softprompt serve --engine vllm``: the front builds the prompt's embeddings, vLLM decodes
                      them from ``prompt_embeds``
Each wave sends ``2 x clients`` streaming requests at ``clients`` concurrency; TTFT (median, p95) and decode
tokens/s per wave; the sides interleave wave by wave, medians over ``--reps``. Also: the prompt's greedy answers
through vLLM vs. through softprompt (how many equal). Writes bench/results/vllm.json.

Usage: python bench/vllm.py --vllm-python .venv-vllm/bin/python [--prompt RUN_DIR] [--quick]  (make bench-vllm)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import httpx
import torch

from common import MODEL, machine, tokenizer, versions

OUT = Path(__file__).parent / "results" / "vllm.json"
PROMPT = "trained"


def train_prompt(out: Path) -> Path:
    """A prompt-tuning prompt trained briefly on Rotten Tomatoes (when --prompt is not given)."""
    import sys

    argv = ["train", "--model", MODEL, "--method", "prompt-tuning", "--dataset", "rotten-tomatoes"]
    argv += ["--num-virtual-tokens", "20", "--init", "labels", "--steps", "20", "--batch-size", "8"]
    subprocess.run([sys.executable, "-m", "softprompt", *argv, "--quiet", "--out", str(out)], check=True)
    return out


def texts(tok, n: int, words: int) -> list[str]:
    from serve import inputs  # bench/serve.py: review openings of a fixed token length

    return [tok.decode(ids) for ids in inputs(tok, n, words)]


async def wave(url: str, model: str, prompts: list[str], clients: int, new: int, extra: dict) -> dict:
    """``2 x clients`` streaming completions at ``clients`` concurrency: TTFT and tokens/s."""
    sem = asyncio.Semaphore(clients)

    async def one(http, text):
        body = {"model": model, "prompt": text, "max_tokens": new, "temperature": 0, "stream": True, **extra}
        body["stream_options"] = {"include_usage": True}  # the last chunk counts the tokens
        async with sem:
            t, first, n = time.perf_counter(), None, 0
            async with http.stream("POST", "/v1/completions", json=body) as r:
                r.raise_for_status()
                async for line in r.aiter_lines():
                    if not line.startswith("data: {"):
                        continue
                    chunk = json.loads(line[6:])
                    if chunk.get("choices") and chunk["choices"][0].get("text") and first is None:
                        first = time.perf_counter() - t
                    if chunk.get("usage"):
                        n = chunk["usage"]["completion_tokens"]
            return first, n

    async with httpx.AsyncClient(base_url=url, timeout=600) as http:
        t = time.perf_counter()
        res = await asyncio.gather(*(one(http, prompts[i % len(prompts)]) for i in range(2 * clients)))
        wall = time.perf_counter() - t
    ttft = sorted(f for f, _ in res if f is not None)
    return {
        "ttft_median_s": statistics.median(ttft),
        "ttft_p95_s": ttft[min(len(ttft) - 1, round(0.95 * (len(ttft) - 1)))],
        "tokens_per_s": sum(n for _, n in res) / wall,
        "tokens": sum(n for _, n in res),
    }


async def answers(url: str, model: str, prompts: list[str], new: int, extra: dict) -> list[str]:
    async with httpx.AsyncClient(base_url=url, timeout=600) as http:
        out = []
        for text in prompts:
            body = {"model": model, "prompt": text, "max_tokens": new, "temperature": 0, **extra}
            r = await http.post("/v1/completions", json=body)
            r.raise_for_status()
            out.append(r.json()["choices"][0]["text"])
        return out


def start_servers(prompt_dir: Path, python: str, max_rows: int):
    """(sides {name: (url, model, extra body)}, closers, vLLM version, vLLM flags, vLLM start seconds)."""
    from softprompt.serve import EngineConfig
    from softprompt.serve.server import BackgroundServer, build_app, build_engine
    from softprompt.serve.vllm_app import build_vllm, create_vllm_app

    root = Path(tempfile.mkdtemp(prefix="bench-vllm-"))
    (root / PROMPT).symlink_to(prompt_dir.resolve())
    config = EngineConfig(max_rows=max_rows, max_queue=4096, max_new_tokens=256, request_timeout=1800.0)
    eng = build_engine(MODEL, str(root), device="cpu", config=config)
    eng.eos = frozenset()  # fixed lengths, like vLLM's ignore_eos
    sp = BackgroundServer(build_app(eng))
    t = time.perf_counter()
    front, proc, version = build_vllm(MODEL, str(root), python=python, config=config)
    started = time.perf_counter() - t
    fr = BackgroundServer(create_vllm_app(front, proc.url, version=version, config=config))
    ignore = {"ignore_eos": True}
    sides = {
        "softprompt/base": (sp.url, "base", {}),
        "softprompt/prompt": (sp.url, PROMPT, {}),
        "vllm/base": (proc.url, "base", ignore),
        "vllm/prompt": (fr.url, PROMPT, ignore),
    }
    return sides, [fr.close, proc.close, sp.close, eng.stop], version, proc.flags, started


def run(a) -> dict:
    from softprompt.serve.vllm_engine import vllm_env

    tok = tokenizer()
    prompt_dir = a.prompt or train_prompt(Path(tempfile.mkdtemp(prefix="bench-vllm-pt-")) / "run")
    sides, closers, version, flags, started = start_servers(prompt_dir, a.vllm_python, a.max_rows)
    res = {"model": MODEL, "machine": machine(), "versions": {**versions(), "vllm": version}}
    res.update(vllm_flags=flags, vllm_start_s=started, prompt=str(prompt_dir), new_tokens=a.new_tokens)
    res["conditions"] = (
        "both servers on the same cores, loopback only (other jobs on the machine: load_average_start/end; "
        "runnable nice-19 jobs count in the load average); vLLM with OMP_NUM_THREADS="
        f"{vllm_env()['OMP_NUM_THREADS']}, no thread binding; softprompt with 2 torch threads"
    )
    try:
        prompts = texts(tok, 32, a.input_tokens)
        sp_url, _, _ = sides["softprompt/prompt"]
        fr_url, _, ignore = sides["vllm/prompt"]
        mine = asyncio.run(answers(sp_url, PROMPT, prompts[: a.answers], a.new_tokens, {}))
        theirs = asyncio.run(answers(fr_url, PROMPT, prompts[: a.answers], a.new_tokens, ignore))
        res["prompt_answers_equal"] = f"{sum(x == y for x, y in zip(mine, theirs))}/{len(mine)}"
        res["prompt_answers"] = [{"softprompt": x, "vllm": y} for x, y in zip(mine, theirs)]
        res["waves"] = measure(sides, prompts, a)
        res["ratios_vllm_over_softprompt"] = ratios(res["waves"])
    finally:
        for close in closers:
            close()
    return res


def measure(sides: dict, prompts: list[str], a) -> dict:
    out = {}
    for c in a.clients:
        runs = {name: [] for name in sides}
        for url, model, extra in sides.values():  # warm-up, not counted
            asyncio.run(wave(url, model, prompts, 1, 2, extra))
        for _ in range(a.reps):
            for name, (url, model, extra) in sides.items():
                runs[name].append(asyncio.run(wave(url, model, prompts, c, a.new_tokens, extra)))
        out[str(c)] = {
            name: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for name, rs in runs.items()
        }
        print(c, json.dumps(out[str(c)]), flush=True)
    return out


def ratios(waves: dict) -> dict:
    """vLLM / softprompt for tokens/s (above 1: vLLM faster) and TTFT (below 1: vLLM sooner), per load."""
    out = {}
    for c, w in waves.items():
        for kind in ("base", "prompt"):
            v, s = w[f"vllm/{kind}"], w[f"softprompt/{kind}"]
            out[f"{c}_clients/{kind}"] = {
                "tokens_per_s": v["tokens_per_s"] / s["tokens_per_s"],
                "ttft_median": v["ttft_median_s"] / s["ttft_median_s"],
                "ttft_p95": v["ttft_p95_s"] / s["ttft_p95_s"],
            }
    return out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--vllm-python", default=".venv-vllm/bin/python", help="python of `make vllm-env`")
    p.add_argument(
        "--prompt", type=Path, help="a trained prompt-tuning run folder (default: train one, ~1 min)"
    )
    p.add_argument("--clients", type=lambda s: [int(x) for x in s.split(",")], default=[1, 8, 32])
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--new-tokens", type=int, default=16)
    p.add_argument("--input-tokens", type=int, default=24)
    p.add_argument("--max-rows", type=int, default=32)
    p.add_argument("--answers", type=int, default=8, help="prompt answers compared token for token")
    p.add_argument("--quick", action="store_true", help="1 and 8 clients, 1 rep (a smoke run)")
    p.add_argument("--out", type=Path, default=OUT)
    a = p.parse_args(argv)
    if a.quick:
        a.clients, a.reps = [1, 8], 1
    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    res = {"started": started, "load_average_start": load, **run(a), "reps": a.reps}
    res["finished"] = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    res["load_average_end"] = " ".join(f"{x:.1f}" for x in os.getloadavg())
    from softprompt.io.atomic import atomic_write_text

    a.out.parent.mkdir(exist_ok=True)
    atomic_write_text(a.out, json.dumps(res, indent=2))
    print(json.dumps(res["ratios_vllm_over_softprompt"], indent=1))


if __name__ == "__main__":
    torch.set_num_threads(2)
    main()
