"""The physical floor of a prompt-learning train step, and the long-input measurement of ``bench/train.py``.

The floor is what any method of a kind must pay on the frozen backbone, with no prompt parameters at all:

* ``input`` (prompt tuning, P-tuning, multitask prompt tuning): the same batch with the prompt's P positions filled by fixed input
  embeddings, forward plus backward to the input embeddings (a leaf tensor, L + P positions). The bare batch
  (L positions, no prompt positions) is also timed, as ``bare``: the cost of the batch alone.
* ``kv`` (prefix tuning, P-tuning v2, adaption prompt): the same batch over fixed per-layer keys/values of P positions (leaf
  tensors in a cache), forward plus backward to those keys/values.

A method's step over its floor is then the price of its own machinery (the prompt module, inserting, the
optimizer step); 1.0 is the physical limit.
"""

from __future__ import annotations

import statistics
import time

import torch

import common

DEEP = ("prefix-tuning", "p-tuning-v2", "adaption-prompt")
"""``common.METHODS`` names whose prompt enters the layers' attention as keys/values (their floor is ``kv``).
The adaption prompt (here on all 30 layers) attends to its keys/values in a second, gated softmax of its own:
the ``kv`` floor (the same number of key/value positions in every layer's attention, backward to them) is the
nearest physical floor; there is no cheaper way to get a gradient to per-layer keys/values."""


def kind_of(method: str) -> str:
    return "kv" if common.METHODS[method][0] in DEEP else "input"


class Floor:
    """The frozen float32 backbone alone; ``step`` is one forward + backward to the floor's leaf tensors."""

    def __init__(
        self, kind: str, num_virtual_tokens: int, *, checkpointing: bool = False, seed: int = 0, model=None
    ):
        from softprompt.core import compat

        self.name, self.kind, self.p = f"floor-{kind}", kind, num_virtual_tokens
        if model is None:
            from transformers import AutoModelForCausalLM

            from softprompt.assets import resolve_model

            model = AutoModelForCausalLM.from_pretrained(resolve_model(common.MODEL), dtype=torch.float32)
        self.model = model.requires_grad_(False).eval()
        if checkpointing:
            compat.checkpoint_layers(self.model)  # as softprompt checkpoints: non-reentrant, any mode
        cfg = self.model.config
        g = torch.Generator().manual_seed(seed)
        self.virtual = torch.randn(num_virtual_tokens, cfg.hidden_size, generator=g) * 0.02  # (P, H)
        heads = cfg.num_key_value_heads
        self.head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
        self.kv_shape = (cfg.num_hidden_layers, heads, num_virtual_tokens, self.head_dim)
        self.kv = torch.randn(2, *self.kv_shape, generator=g) * 0.02  # (2, layers, H_kv, P, D)
        self.losses: list[float] = []

    def _inputs(self, b: dict, grad: bool) -> dict:
        from softprompt.core import compat

        ids, mask, labels = b["input_ids"], b["attention_mask"], b.get("labels")
        rows, p = ids.shape[0], self.p
        emb = self.model.get_input_embeddings()(ids)  # (B, L, H)
        ones = torch.ones(rows, p, dtype=mask.dtype, device=ids.device)
        if self.kind == "bare":
            return {"inputs_embeds": emb.requires_grad_(grad), "attention_mask": mask, "labels": labels}
        if self.kind == "input":
            virtual = self.virtual.to(emb).expand(rows, -1, -1)
            x = torch.cat([virtual, emb], 1).requires_grad_(grad)  # (B, P+L, H)
            if labels is not None:
                labels = torch.cat([torch.full((rows, p), -100, device=ids.device), labels], 1)
            return {"inputs_embeds": x, "attention_mask": torch.cat([ones, mask], 1), "labels": labels}
        layers = [  # (B, H_kv, P, D) leaves per layer
            tuple(t[i].to(emb).expand(rows, -1, -1, -1).clone().requires_grad_(grad) for t in self.kv)
            for i in range(self.kv_shape[0])
        ]
        self.leaves = [t for pair in layers for t in pair]
        cache = compat.new_cache(self.model)
        for i, (k, v) in enumerate(layers):
            cache.update(k, v, i)
        for layer in cache.layers:  # the prefix stays P long: a checkpointed layer's recompute sees the same
            layer.update = lambda k, v, *a, _l=layer, **kw: (
                torch.cat([_l.keys, k], -2),
                torch.cat([_l.values, v], -2),
            )
        return {
            "inputs_embeds": emb,
            "attention_mask": torch.cat([ones, mask], 1),
            "labels": labels,
            **compat.cache_kwargs(self.model, cache),
        }

    def step(self, b: dict) -> float:
        loss = self.model(**self._inputs(b, grad=True)).loss
        loss.backward()
        self.losses.append(float(loss.detach()))
        return self.losses[-1]

    @torch.no_grad()
    def infer(self, b: dict) -> torch.Tensor:
        return self.model(**self._inputs({**b, "labels": None}, grad=False)).logits


def floor_side(method: str, num_virtual_tokens: int, lr: float, seed: int) -> Floor:
    """``common.SIDES``' signature: the floor of ``method``'s kind."""
    return Floor(kind_of(method), num_virtual_tokens, seed=seed)


def bare_side(method: str, num_virtual_tokens: int, lr: float, seed: int) -> Floor:
    return Floor("bare", num_virtual_tokens, seed=seed)


def long_batch(tok, batch: int, length: int) -> dict:
    """``batch`` rows of exactly ``length`` real tokens (reviews run together), labels = the tokens."""
    from softprompt.data import load_dataset

    text = " ".join(ex["text"] for ex in load_dataset("rotten-tomatoes").train[:2000])
    ids = tok(text, add_special_tokens=False)["input_ids"]
    rows = torch.tensor([ids[r * length : (r + 1) * length] for r in range(batch)])
    labels = rows.clone()
    labels[:, 0] = -100
    return {"input_ids": rows, "attention_mask": torch.ones_like(rows), "labels": labels}


def step_cost(side, b: dict) -> tuple[float, float]:
    """(wall ms, peak RSS the step adds in MiB) of one train step: the peak mark is reset just before it."""
    before = common.rss_mib()["rss"]
    common.reset_peak_rss()
    t0 = time.perf_counter()
    side.step(b)
    return (time.perf_counter() - t0) * 1000, common.rss_mib()["hwm"] - before


def release_freed_memory() -> None:
    """Make glibc return every large freed block to the OS at once (mmap above 64 KiB, trim at once), so the
    RSS before a step is what is alive and the peak mark during it is that step's own peak."""
    import ctypes

    libc = ctypes.CDLL("libc.so.6")
    libc.mallopt(-3, 64 * 1024)  # M_MMAP_THRESHOLD
    libc.mallopt(-1, 0)  # M_TRIM_THRESHOLD


def measure_long(method: str, length: int, ckpt: bool, args, tok) -> dict:
    """Step time and the peak RSS a step adds, softprompt vs the floor, for ``length`` tokens with gradient
    checkpointing ``ckpt``: the two sides interleaved A B A B, medians of ``args.long_reps`` after one warm-up
    step each."""
    release_freed_memory()
    sp = common.softprompt_side(method, args.num_virtual_tokens, args.lr, args.seed)
    if ckpt:
        sp.model.gradient_checkpointing_enable()
    fl = Floor(kind_of(method), args.num_virtual_tokens, checkpointing=ckpt, seed=args.seed)
    b = long_batch(tok, args.long_batch, length)
    got = {"softprompt": [], "floor": []}
    for i in range(1 + args.long_reps):
        for name, side in (("softprompt", sp), ("floor", fl)):
            cost = step_cost(side, b)
            if i:
                got[name].append(cost)
    med = {
        k: (statistics.median(c[0] for c in v), statistics.median(c[1] for c in v)) for k, v in got.items()
    }
    return {
        "method": method,
        "tokens": length,
        "batch": args.long_batch,
        "gradient_checkpointing": ckpt,
        "step_ms": {k: round(v[0], 1) for k, v in med.items()},
        "step_added_peak_mib": {k: round(v[1], 1) for k, v in med.items()},
        "step_ratio_vs_floor": round(med["softprompt"][0] / med["floor"][0], 3),
        "mem_ratio_vs_floor": round(med["softprompt"][1] / max(med["floor"][1], 1e-9), 3),
        "samples_ms": {k: [round(c[0], 1) for c in v] for k, v in got.items()},
        "samples_added_peak_mib": {k: [round(c[1], 1) for c in v] for k, v in got.items()},
    }


GOAL = 1.10
"""A method's train step and peak memory over its floor should stay at or under this (issue 22)."""


def ratios(train: dict, floor_name: str) -> dict:
    """Each library's train step over the floor (wall and CPU medians), and the bare batch's."""
    wall, cpu = train["median_ms"], train["median_cpu_ms"]
    out = {"kind": floor_name, "median_ms": wall[floor_name], "median_cpu_ms": cpu[floor_name]}
    for side in ("softprompt", "peft", "floor-bare"):
        out[f"{side}_step_ratio"] = round(wall[side] / wall[floor_name], 3)
        out[f"{side}_step_cpu_ratio"] = round(cpu[side] / cpu[floor_name], 3)
    return out


def memory_ratios(mem: dict) -> dict:
    """Each library's peak RSS over the floor's (weights included), and of the RSS the train steps add."""
    out = {}
    for side in ("softprompt", "peft"):
        out[f"{side}_peak_mem_ratio"] = round(
            mem[side]["train_peak_rss_mib"] / mem["floor"]["train_peak_rss_mib"], 3
        )
        out[f"{side}_added_mem_ratio"] = round(
            mem[side]["train_increase_mib"] / max(mem["floor"]["train_increase_mib"], 1e-9), 3
        )
    return out


def floor_table(rows: list[dict]) -> str:
    head = (
        f"{'method':<15}{'floor':>12}{'floor ms':>10}{'sp/floor':>10}{'peft/floor':>12}{'cpu sp':>8}"
        f"{'cpu peft':>10}{'mem sp':>8}{'mem peft':>10}{'+mem sp':>9}{'+mem peft':>11}{'goal':>6}"
    )
    lines = [f"train step and peak memory over the floor (goal <= {GOAL})", head, "-" * len(head)]
    for r in rows:
        f = r["floor"]
        worst = max(f["softprompt_step_ratio"], f.get("softprompt_peak_mem_ratio", 0.0))
        lines.append(
            f"{r['method']:<15}{f['kind']:>12}{f['median_ms']:>10.0f}{f['softprompt_step_ratio']:>10.2f}"
            f"{f['peft_step_ratio']:>12.2f}{f['softprompt_step_cpu_ratio']:>8.2f}{f['peft_step_cpu_ratio']:>10.2f}"
            f"{f.get('softprompt_peak_mem_ratio', float('nan')):>8.2f}"
            f"{f.get('peft_peak_mem_ratio', float('nan')):>10.2f}"
            f"{f.get('softprompt_added_mem_ratio', float('nan')):>9.2f}"
            f"{f.get('peft_added_mem_ratio', float('nan')):>11.2f}{'met' if worst <= GOAL else 'no':>6}"
        )
    lines.append(
        "sp/floor, peft/floor: wall-time medians; cpu: CPU-time medians; mem: peak RSS (weights included); "
        "+mem: RSS the train steps add; goal: softprompt's step and peak memory both <= the goal"
    )
    return "\n".join(lines)


def long_table(rows: list[dict]) -> str:
    head = f"{'method':<15}{'tokens':>7}{'ckpt':>6}{'sp ms':>10}{'floor ms':>10}{'step':>7}{'+MiB sp':>9}{'+MiB fl':>9}{'mem':>7}"
    lines = ["long inputs: softprompt over the floor at each length", head, "-" * len(head)]
    for r in rows:
        t, m = r["step_ms"], r["step_added_peak_mib"]
        lines.append(
            f"{r['method']:<15}{r['tokens']:>7}{'on' if r['gradient_checkpointing'] else 'off':>6}"
            f"{t['softprompt']:>10.0f}{t['floor']:>10.0f}{r['step_ratio_vs_floor']:>7.2f}"
            f"{m['softprompt']:>9.0f}{m['floor']:>9.0f}{r['mem_ratio_vs_floor']:>7.2f}"
        )
    lines.append("step: train-step time ratio; +MiB: peak RSS a step adds (median); mem: its ratio")
    return "\n".join(lines)
