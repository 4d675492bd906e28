"""How long a quality preset takes: per-part seconds on a quiet 2-core machine (``quality.py --estimate``).

The costs are the measurements in quality.py's docstring table; MiniLM's figure is the bound without early
stopping.
"""

from __future__ import annotations

from . import rt_smollm
from .common import Preset

RT_TEMPLATES = 10
"""Hand-written Rotten Tomatoes templates in the spec (all are scored)."""

# quiet-machine seconds (see the docstring's table)
COST = {
    "smol_step_per_ex": 0.25,
    "smol_score": 0.1,
    "head_step_per_ex": 0.62,
    "head_gen": 0.4,
    "facts_step_per_fact": 0.2,  # the gold word's LM loss: one row per fact (2026-12-02: ~1 s / 3 facts, loaded)
    "facts_score_capital": 1.5,  # 116 candidates on the KV cache (2.1 s measured on 1 thread, loaded)
    "facts_score_other": 0.05,
    "mini_step": 0.3,
    "mini_ft_step": 0.45,
    "mini_score": 0.01,
    "load": 10.0,
}
TRAIN_SIZE = {"rt-minilm": 10_168, "punct": 8_004}
FACTS = {"test": 106, "capital_test": 59, "validation": 21, "capital_validation": 11}


def estimate(p: Preset, seeds: int) -> dict[str, float]:
    """Expected seconds per part on a quiet machine (2 threads); MiniLM's is the bound without early stopping."""
    c = COST
    methods = len(rt_smollm.methods(p))
    checks = p.rt_steps // p.rt_eval_every if p.rt_eval_every else 0
    rt_runs = methods * (
        2 * (p.rt_steps * p.rt_batch * c["smol_step_per_ex"] + p.rt_eval * c["smol_score"])
        + (checks + 1) * p.rt_val * c["smol_score"] * bool(p.rt_val)
    )
    n_facts = min(p.facts_eval or FACTS["test"], FACTS["test"])
    capital = round(n_facts * FACTS["capital_test"] / FACTS["test"])
    facts_score = capital * c["facts_score_capital"] + (n_facts - capital) * c["facts_score_other"]
    val_score = (FACTS["capital_validation"] * c["facts_score_capital"]) * bool(p.facts_val)
    facts_checks = (p.facts_steps // p.facts_eval_every if p.facts_eval_every else 0) + 1
    facts_run = 2 * (
        p.facts_steps * 3 * p.facts_batch * c["facts_step_per_fact"] + facts_score + facts_checks * val_score
    )

    def mini(part: str, n_eval: int) -> float:  # prompt runs + full fine-tuning per seed, then scoring
        steps = p.mini_budget(TRAIN_SIZE[part])
        prompt_runs = (
            len(p.mini_lengths) + (seeds - 1) + (seeds if part == "rt-minilm" and p.mini_prefix else 0)
        )
        runs = prompt_runs + seeds
        return (
            prompt_runs * steps * c["mini_step"]
            + seeds * steps * c["mini_ft_step"]
            + runs * (n_eval + (steps // max(p.mini_eval_every, 1)) * p.mini_val) * c["mini_score"]
        )

    head_run = p.head_steps * p.head_batch * c["head_step_per_ex"] + p.head_eval * c["head_gen"]
    return {
        "rt-smollm": c["load"] + RT_TEMPLATES * p.rt_eval * c["smol_score"] + seeds * rt_runs,
        "rt-minilm": c["load"] + mini("rt-minilm", p.mini_eval),
        "punct": c["load"] + mini("punct", p.punct_eval),
        "facts": c["load"] + (1 + p.facts_sets) * facts_score + seeds * facts_run,
        "headlines": c["load"] + p.head_eval * c["head_gen"] + seeds * 2 * head_run,
    }
