"""The checks of issue 22 that need a GPU (run by ``bench/device.sh``; refuses to run without CUDA).

1. bf16 train step vs the floor (``bench/floor.py``): prompt tuning and prefix tuning on SmolLM2-135M in bf16,
   batch 8 x 512 tokens, 20 virtual tokens; medians of 7 steps after 2 warm-up (CUDA-synchronized), and the
   peak CUDA memory each step adds (``max_memory_allocated`` minus what was allocated before it).
2. The attention kernel actually used, without a prompt and with each kind of prompt, on a batch without
   padding and one with: the CUDA kernels a forward launches (torch.profiler) and, for every SDPA call, whether
   a mask tensor was passed (none should be when the batch needs none).

Without the real SmolLM2 weights (``softprompt.assets``) a random model of SmolLM2's shape stands in (time,
memory and kernels do not depend on the weights' values); the output says which was used.
Usage: python bench/device_checks.py OUT_DIR
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import floor

LENGTH, BATCH, VIRTUAL = 512, 8, 20


def backbone():
    """SmolLM2-135M in bf16 on the GPU (real weights when installed), and which it is."""
    from transformers import AutoModelForCausalLM

    try:
        from softprompt.assets import resolve_model

        path = resolve_model("smollm2-135m")
        m = AutoModelForCausalLM.from_pretrained(path, dtype=torch.bfloat16, attn_implementation="sdpa")
        return m.cuda(), "SmolLM2-135M (real weights)"
    except Exception as e:  # no assets package on this machine: SmolLM2's shape, random weights
        from softprompt.testing.models import tiny_model

        m = tiny_model(  # the tiny Llama's builder, with SmolLM2's config
            "llama",
            seed=0,
            dtype=torch.bfloat16,
            attn_implementation="sdpa",
            vocab_size=49152,
            hidden_size=576,
            intermediate_size=1536,
            num_hidden_layers=30,
            num_attention_heads=9,
            num_key_value_heads=3,
            max_position_embeddings=8192,
            tie_word_embeddings=True,
            pad_token_id=None,  # (LlamaConfig's default; the tiny config's 0 would zero an embedding row)
        )
        return m.cuda(), f"random weights in SmolLM2-135M's shape ({type(e).__name__}: {e})"


def prompted(method: str | None):
    """A fresh backbone wrapped (a prefix switches its backbone's attention, so none is shared)."""
    from softprompt.core.model import PromptedModel
    from softprompt.methods import make_config

    pm = PromptedModel(backbone()[0])
    if method:
        pm.add_prompt("p", make_config(method, num_virtual_tokens=VIRTUAL), seed=0)
        pm.to("cuda")
    return pm


def batch(padded: bool) -> dict:
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(100, 40000, (BATCH, LENGTH), generator=g)
    mask = torch.ones_like(ids)
    if padded:
        mask[: BATCH // 2, : LENGTH // 4] = 0  # left padding on half the rows
    labels = ids.masked_fill(mask == 0, -100)
    labels[:, 0] = -100
    return {k: v.cuda() for k, v in {"input_ids": ids, "attention_mask": mask, "labels": labels}.items()}


def cost(step) -> tuple[float, float]:
    torch.cuda.synchronize()
    before = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    t = time.perf_counter()
    step()
    torch.cuda.synchronize()
    return (time.perf_counter() - t) * 1000, (torch.cuda.max_memory_allocated() - before) / 2**20


def one_method(method: str, b: dict) -> dict:
    pm = prompted(method)
    opt = torch.optim.AdamW(pm.trainable_parameters(), lr=1e-3)

    def ours():
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = pm(b["input_ids"], b["attention_mask"], prompts="p", labels=b["labels"]).loss
        loss.backward()
        opt.step()

    fl = floor.Floor(floor.kind_of(method), VIRTUAL, model=backbone()[0])
    got = {"softprompt": [], "floor": []}
    for i in range(9):  # 2 warm-up, 7 timed, interleaved
        for name, fn in (("softprompt", ours), ("floor", lambda: fl.step(b))):
            c = cost(fn)
            if i >= 2:
                got[name].append(c)
    med = {
        k: (statistics.median(x[0] for x in v), statistics.median(x[1] for x in v)) for k, v in got.items()
    }
    return {
        "method": method,
        "floor": fl.name,
        "step_ms": {k: round(v[0], 2) for k, v in med.items()},
        "step_added_peak_mib": {k: round(v[1], 1) for k, v in med.items()},
        "step_ratio_vs_floor": round(med["softprompt"][0] / med["floor"][0], 3),
        "mem_ratio_vs_floor": round(med["softprompt"][1] / med["floor"][1], 3),
    }


def train_vs_floor() -> list[dict]:
    rows, b = [], batch(padded=False)
    for method in ("prompt-tuning", "prefix-tuning"):
        rows.append(one_method(method, b))
        print(json.dumps(rows[-1]), flush=True)
        torch.cuda.empty_cache()
    return rows


def attention_kernels() -> list[dict]:
    import torch.nn.functional as F
    from torch.profiler import ProfilerActivity, profile

    real, calls = F.scaled_dot_product_attention, []

    def spy(*a, **kw):
        mask = kw.get("attn_mask", a[3] if len(a) > 3 else None)
        calls.append(
            {"mask": None if mask is None else str(mask.dtype), "is_causal": bool(kw.get("is_causal"))}
        )
        return real(*a, **kw)

    rows = []
    F.scaled_dot_product_attention = spy
    try:
        for method in (None, "prompt-tuning", "prefix-tuning"):
            pm = prompted(method)
            for padded in (False, True):
                b, calls[:] = batch(padded), []
                with torch.no_grad(), profile(activities=[ProfilerActivity.CUDA]) as prof:
                    pm(b["input_ids"], b["attention_mask"], prompts="p" if method else None)
                    torch.cuda.synchronize()
                names = {
                    e.name
                    for e in prof.events()
                    if "attention" in e.name.lower()
                    or "fmha" in e.name.lower()
                    or "flash" in e.name.lower()
                    or "softmax" in e.name.lower()
                }
                rows.append(
                    {
                        "prompt": method or "none",
                        "padded": padded,
                        "attn_implementation": pm.backbone.config._attn_implementation,
                        "sdpa_calls": len(calls),
                        "sdpa_masks": sorted({str(c["mask"]) for c in calls}),
                        "sdpa_is_causal": sorted({c["is_causal"] for c in calls}),
                        "kernels": sorted(names)[:12],
                    }
                )
                print(json.dumps(rows[-1]), flush=True)
    finally:
        F.scaled_dot_product_attention = real
    return rows


def main(out: str) -> None:
    if not torch.cuda.is_available():
        raise SystemExit("bench/device_checks.py needs a CUDA GPU; none here (nothing measured)")
    which = backbone()[1]
    res = {
        "device": torch.cuda.get_device_name(0),
        "model": which,
        "torch": torch.__version__,
        "batch": BATCH,
        "tokens": LENGTH,
        "virtual_tokens": VIRTUAL,
        "train_vs_floor": train_vs_floor(),
        "attention": attention_kernels(),
    }
    Path(out).mkdir(parents=True, exist_ok=True)
    (Path(out) / "device-checks.json").write_text(json.dumps(res, indent=1) + "\n")


if __name__ == "__main__":
    main(sys.argv[1])
