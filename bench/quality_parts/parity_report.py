"""The Markdown of bench/parity.py's results: per-seed accuracies, mean ± standard error of each side and of the
gap, parameter counts, the budget, wall times and the machine's load."""

from __future__ import annotations

import json
import math
from pathlib import Path

PART = "rt-smollm2-parity"
GOAL = 1.0
"""Points: P-tuning v2 within this of full fine-tuning counts as parity (issue 11's goal)."""


def v2_label(n: int, lr: float, head_lr: float | None = None, mlp: bool = False) -> str:
    """A P-tuning v2 setting's run label (``head_lr`` None: the head trains at the prompt's lr; ``mlp``: trained
    through the reparameterization MLP)."""
    head = "" if head_lr is None else f", head lr {head_lr:g}"
    return f"P-tuning v2 ({n} tokens, lr {lr:g}{head}{', MLP' if mlp else ''})"


def mean_se(xs: list[float]) -> tuple[float, float]:
    """Mean and standard error (sample std / sqrt(n); 0 for one value)."""
    m = sum(xs) / len(xs)
    if len(xs) < 2:
        return m, 0.0
    var = sum((x - m) ** 2 for x in xs) / (len(xs) - 1)
    return m, math.sqrt(var / len(xs))


def summary(part: dict, full_ft: list[dict] = ()) -> dict | None:
    """P-tuning v2 at the chosen setting vs full fine-tuning over the seeds both have: means, SEs, the gap
    (unpaired SE, and the paired SE over seeds), or None before a chosen setting and a full FT run exist.
    ``full_ft``: full fine-tuning runs recorded in another file at the same budget (a trial preset's own file
    has none)."""
    ch = part.get("chosen")
    if not ch:
        return None
    label = v2_label(ch["length"], ch["lr"], ch.get("head_lr"), ch.get("mlp", False))
    v2 = {r["seed"]: r for r in part["runs"] if r["label"] == label}
    ft = {r["seed"]: r for r in [*part["runs"], *full_ft] if r["label"] == "full fine-tuning"}
    seeds = sorted(set(v2) & set(ft))
    if not seeds:
        return None
    a = [100 * v2[s]["value"] for s in seeds]
    b = [100 * ft[s]["value"] for s in seeds]
    (ma, sa), (mb, sb) = mean_se(a), mean_se(b)
    _, paired = mean_se([x - y for x, y in zip(a, b)])
    gap = ma - mb
    return {
        "label": label,
        "seeds": seeds,
        "p_tuning_v2": {"mean": ma, "se": sa, "per_seed": a},
        "full_ft": {"mean": mb, "se": sb, "per_seed": b},
        "gap": gap,
        "gap_se": math.sqrt(sa**2 + sb**2),
        "gap_se_paired": paired,
        "met": gap >= -GOAL,
    }


def _runs_table(part: dict) -> list[str]:
    lines = [
        "| run | seed | test acc. | trainable / total params | steps (early stop) | last val. | train s | "
        "s / step | wall s | load avg start → end |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in part["runs"]:
        last = r["curve"][-1]["value"] if r.get("curve") else None
        load = r.get("load_avg") or [[None], [None]]
        lines.append(
            f"| {r['label']} | {r['seed']} | {100 * r['value']:.1f} | {r['params']:,} / "
            f"{r.get('total_params', 0):,} | {r['steps']}{' (stopped)' if r.get('stopped_early') else ''} | "
            f"{'' if last is None else f'{100 * last:.1f}'} | {r['train_s']:.0f} | {r['step_s']} | "
            f"{r.get('wall_s', '')} | {load[0][0]} → {load[1][0]} |"
        )
    return lines


def markdown(data: dict, full_ft_from: tuple[str, list[dict]] | None = None) -> str:
    """``full_ft_from``: (file name, its full fine-tuning runs) for a trial preset that trains none itself."""
    part = data.get("parts", {}).get(PART, {"runs": []})
    cfg = part.get("config", {})
    m = data.get("machine", {})
    out = [
        "# P-tuning v2 vs full fine-tuning, SmolLM2-135M on Rotten Tomatoes (bench/parity.py)",
        "",
        f"Preset `{data.get('preset')}`, seeds {data.get('seeds')}, first started "
        f"{data.get('first_started', data.get('date'))}. Machine: {json.dumps(m)}. s / step and wall times are "
        "CPU times, shared with other jobs wherever the load average (last column) exceeds the core count: they "
        "are not speed figures.",
        "",
        "## Budget (sized to a 2-core CPU machine; NOT the paper's budget)",
        "",
    ]
    if cfg:
        sizes = part.get("sizes", {})
        out += [
            f"- SmolLM2-135M (real weights, `{cfg.get('model')}`) + a new classification head on the "
            f"{cfg.get('pool')} token (same class and seeded init on both sides); inputs cut to "
            f"{cfg.get('max_length')} tokens.",
            f"- Training: a fixed random subset of {sizes.get('train', cfg.get('train_n'))} reviews of the "
            f"train split (sampling seed {cfg.get('subset_seed')}), batch {cfg.get('batch')}, "
            f"{cfg.get('epochs')} epoch(s) = {cfg.get('steps')} steps at most; validation on "
            f"{sizes.get('validation', cfg.get('val_n'))} reviews every {cfg.get('eval_every')} steps and at the "
            f"end, early stopping after {cfg.get('patience')} checks without a new best; test: the first "
            f"{sizes.get('test', cfg.get('test_n'))} test reviews, the same for every run (last weights).",
            "- P-tuning v2 (softprompt's loop, real-word key/value init; no reparameterization unless a setting's "
            "4th entry is True: the MLP): grid on seed 0 of (length, prompt lr, head lr; head lr None = the "
            "prompt's lr, the library default) "
            f"{[tuple(g) for g in cfg.get('grid', [])]}, the setting best on validation at its last check trained "
            "on the other seeds.",
            f"- Full fine-tuning (quality_parts/full_ft.py, the quality benchmark's loop): every weight, AdamW "
            f"backbone lr {cfg.get('ft_lr'):g}, head lr {cfg.get('ft_head_lr'):g}, same schedule, clipping, "
            "batches, checks and stopping.",
            "",
        ]
    if part.get("note"):
        out += [f"Note: {part['note']}", ""]
    s = summary(part, full_ft_from[1] if full_ft_from else [])
    out += ["## Result", ""]
    if full_ft_from:
        out += [
            f"Full fine-tuning: the runs in `{full_ft_from[0]}` (same budget; this preset trains none).",
            "",
        ]
    if s is None:
        out += ["No comparison yet (the grid or a full fine-tuning run is not finished).", ""]
    else:
        v, f = s["p_tuning_v2"], s["full_ft"]
        one = len(s["seeds"]) < 2

        def pm(m: float, se: float) -> str:
            return f"{m:.1f}" + (" (one seed: no SE)" if one else f" ± {se:.1f}")

        verdict = "met" if s["met"] else f"**not met**: P-tuning v2 is {-s['gap']:.1f} points below"
        paired = "" if one else f" (paired by seed: ± {s['gap_se_paired']:.1f})"
        gap = f"{s['gap']:+.1f}" + (" (one seed: no SE)" if one else f" ± {s['gap_se']:.1f}")
        out += [
            f"Seeds {s['seeds']} (mean ± standard error over seeds):",
            "",
            "| | per seed | mean ± SE |",
            "|---|---|---|",
            f"| {s['label']} | {', '.join(f'{x:.1f}' for x in v['per_seed'])} | {pm(v['mean'], v['se'])} |",
            f"| full fine-tuning | {', '.join(f'{x:.1f}' for x in f['per_seed'])} | {pm(f['mean'], f['se'])} |",
            f"| gap (P-tuning v2 − full FT) | | {gap}{paired} |",
            "",
            f"P-tuning v2 within {GOAL:g} point of full fine-tuning, on {len(s['seeds'])} seed(s): {verdict}.",
            "",
        ]
    if part.get("chosen"):
        c = part["chosen"]
        val = ", ".join(f"{k}: {100 * v:.1f}" for k, v in c.get("validation", {}).items())
        out += [
            f"Chosen on validation (seed 0, last check): {c['length']} tokens, lr {c['lr']:g}"
            f"{', MLP' if c.get('mlp') else ''} ({val}).",
            "",
        ]
    out += ["## Runs", "", *_runs_table(part), ""]
    return "\n".join(out)


def full_ft_runs(json_path: Path) -> tuple[str, list[dict]]:
    """The full fine-tuning runs recorded in ``json_path`` (none if it is missing), for :func:`markdown`."""
    try:
        runs = json.loads(json_path.read_text())["parts"][PART]["runs"]
    except (OSError, ValueError, KeyError):
        runs = []
    return json_path.name, [r for r in runs if r["label"] == "full fine-tuning"]


def render(json_path: Path, full_ft_from: Path | None = None) -> int:
    from softprompt.io.atomic import atomic_write_text

    data = json.loads(json_path.read_text())
    base = full_ft_runs(full_ft_from) if full_ft_from else None
    atomic_write_text(json_path.with_suffix(".md"), markdown(data, base))
    print(f"wrote {json_path.with_suffix('.md')}")
    return 0
