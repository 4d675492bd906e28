"""quality.json -> summary rows, goals (computed from the numbers) and quality.md (plots: plots.py)."""

from __future__ import annotations

import statistics

ORDER = ("rt-smollm", "rt-minilm", "punct", "facts", "headlines")
TITLES = {
    "rt-smollm": "Rotten Tomatoes, SmolLM2-135M (label words after the template)",
    "rt-minilm": "Rotten Tomatoes, MiniLM-L6 (mean-pooled head)",
    "punct": "Punctuation restoration, MiniLM-L6 (token head)",
    "facts": "Fact probing, SmolLM2-135M (per-relation prompts and candidates)",
    "headlines": "Headlines, SmolLM2-135M (greedy generation)",
}
POINTS = 100.0


def summarize(part: dict) -> list[dict]:
    """Runs grouped by (label, library) in first-seen order: mean, std over seeds, n, params, s/step."""
    groups: dict[tuple, list[dict]] = {}
    for r in part.get("runs", []):
        groups.setdefault((r["label"], r["library"]), []).append(r)
    rows = []
    for (label, library), runs in groups.items():
        values = [r["value"] for r in runs]
        steps = [r["step_s"] for r in runs if r.get("step_s")]
        walls = [r["train_s"] + r["eval_s"] for r in runs if r.get("steps")]
        rows.append(
            {
                "label": label,
                "library": library,
                "metric": runs[0]["metric"],
                "mean": statistics.fmean(values),
                "std": statistics.stdev(values) if len(values) > 1 else None,
                "n": len(values),
                "seeds": [r["seed"] for r in runs],
                "values": values,
                "params": runs[0]["params"],
                "step_s": statistics.median(steps) if steps else None,
                "wall_s": statistics.median(walls) if walls else None,
            }
        )
    return rows


def _row(rows, label, library="softprompt"):
    return next((r for r in rows if r["label"] == label and r["library"] == library), None)


def goals(data: dict) -> list[dict]:
    """The four goals, each met / not met / None (its part has not run), with the numbers behind it."""
    parts = data.get("parts", {})
    out = []
    rt = parts.get("rt-smollm", {})
    soft = [r for r in summarize(rt) if r["library"] == "softprompt"]
    if soft and rt.get("templates"):
        best = max(soft, key=lambda r: r["mean"])
        gap = (best["mean"] - rt["templates"]["max"]) * POINTS
        out.append(
            _goal(
                "rt",
                "best soft prompt >= 5 points over the best hand-written template (RT, SmolLM2)",
                round(gap, 6) >= 5.0,  # 340/400 - 320/400 is 4.999999... in floats
                f"{best['label']} {best['mean'] * POINTS:.1f} vs best template "
                f"{rt['templates']['max'] * POINTS:.1f}: {gap:+.1f} points",
            )
        )
    else:
        out.append(_goal("rt", "best soft prompt >= 5 points over the best hand-written template", None, ""))
    out.append(_majority_goal(rt))
    details, met = [], []
    for name in ("rt-minilm", "punct"):
        rows = summarize(parts.get(name, {}))
        v2 = max(
            (r for r in rows if r["label"].startswith("P-tuning v2")), key=lambda r: r["n"], default=None
        )  # with several lengths compared: the one trained on every seed (chosen on validation)
        ft = _row(rows, "full fine-tuning", "torch")
        if v2 and ft:
            diff = (v2["mean"] - ft["mean"]) * POINTS
            met.append(round(diff, 6) >= -1.0)
            details.append(
                f"{name}: {v2['label']} {v2['mean'] * POINTS:.1f} (n={v2['n']}) vs full FT "
                f"{ft['mean'] * POINTS:.1f} (n={ft['n']}) ({diff:+.1f})"
            )
    out.append(
        _goal(
            "minilm",
            "P-tuning v2 within 1 point of full fine-tuning (MiniLM, both tasks)",
            all(met) if len(met) == 2 else None,
            "; ".join(details),
        )
    )
    out.append(_parity_goal(rt))
    facts = parts.get("facts", {})
    v1 = _row(summarize(facts), "P-tuning v1 (LSTM)")
    if v1 and facts.get("templates"):
        best = facts["templates"]["max"]
        out.append(
            _goal(
                "facts",
                "P-tuning v1 above the best hand-written template (facts, P@1)",
                v1["mean"] > best,
                f"P-tuning v1 {v1['mean'] * POINTS:.1f} vs best template set {best * POINTS:.1f}",
            )
        )
    else:
        out.append(_goal("facts", "P-tuning v1 above the best hand-written template (facts)", None, ""))
    return out


def pairs(rt: dict) -> list[dict]:
    """softprompt vs PEFT for the same method and seed (RT, SmolLM2)."""
    by = {(r["label"], r["library"], r["seed"]): r for r in rt.get("runs", [])}
    return [
        {
            "label": label,
            "seed": seed,
            "softprompt": r["value"],
            "peft": by[(label, "peft", seed)]["value"],
            "diff_points": (r["value"] - by[(label, "peft", seed)]["value"]) * POINTS,
            "params": f"{r['params']:,} / {by[(label, 'peft', seed)]['params']:,}",
        }
        for (label, lib, seed), r in by.items()
        if lib == "softprompt" and (label, "peft", seed) in by
    ]


def _parity_goal(rt: dict) -> dict:
    """Per method, over the seeds both libraries ran (:func:`pairs`): |mean softprompt - mean PEFT| within one
    standard error of that difference."""
    text = "softprompt within one standard error of PEFT per method (RT, SmolLM2)"
    by_label: dict[str, list[dict]] = {}
    for p in pairs(rt):
        by_label.setdefault(p["label"], []).append(p)
    details, met = [], []
    for label, ps in by_label.items():
        a, b = [p["softprompt"] for p in ps], [p["peft"] for p in ps]
        diff = (statistics.fmean(a) - statistics.fmean(b)) * POINTS
        if len(ps) < 2:
            details.append(f"{label}: {diff:+.1f} (seed {ps[0]['seed']} only, no standard error)")
            continue
        se = ((statistics.variance(a) + statistics.variance(b)) / len(ps)) ** 0.5 * POINTS
        within = abs(diff) <= se
        met.append(within)
        side = "within" if within else ("softprompt above" if diff > 0 else "softprompt below")
        seeds = ", ".join(str(p["seed"]) for p in ps)
        details.append(f"{label}: {diff:+.1f} vs SE {se:.1f}, {side} (seeds {seeds})")
    if not details:
        return _goal("parity", text, None, "")
    return _goal("parity", text, all(met) if met and len(met) == len(details) else None, "; ".join(details))


def _majority_goal(rt: dict) -> dict:
    """Every softprompt method run at its defaults beats the test majority share by >= 15 points."""
    text = "every method's default beats the majority class by >= 15 points (RT, SmolLM2)"
    majority = rt.get("majority")
    rows = [r for r in summarize(rt) if r["library"] == "softprompt" and "default" in r["label"]]
    if majority is None or not rows:
        return _goal("majority", text, None, "")
    gaps = {r["label"]: (r["mean"] - majority) * POINTS for r in rows}
    detail = f"majority {majority * POINTS:.1f}; " + "; ".join(
        f"{k} {v:+.1f} (n={r['n']})" for (k, v), r in zip(gaps.items(), rows)
    )
    return _goal("majority", text, all(round(v, 6) >= 15.0 for v in gaps.values()), detail)


def _goal(key, text, met, detail) -> dict:
    return {"goal": key, "text": text, "met": met, "detail": detail}


def verdict(met) -> str:
    return "not computed" if met is None else ("MET" if met else "NOT met")


# ----- Markdown ------------------------------------------------------------------------------------------------
def _finished(runs) -> list[str]:
    """The runs' finish times, sorted (runs recorded before finish times were kept have none)."""
    return sorted(r["finished"] for r in runs if r.get("finished"))


def _fmt(row: dict) -> str:
    std = "" if row["std"] is None else f" ± {row['std'] * POINTS:.1f}"
    return f"{row['mean'] * POINTS:.1f}{std}"


def markdown(data: dict) -> str:
    from softprompt.experiments.report import markdown_table

    from .extras import extras

    m = data.get("machine", {})
    stamps = _finished(r for p in data.get("parts", {}).values() for r in p.get("runs", []))
    span = f"runs finished {stamps[0]} … {stamps[-1]} (resumed run by run); " if stamps else ""
    head = (
        f"Run started {data.get('first_started', data.get('date'))}, last invoked {data.get('date')}; "
        f"{span}seeds {data.get('seeds')}; {m.get('cpu')}, {m.get('torch_threads')} torch "
        f"threads, load average at start {m.get('load_avg_at_start')}; metrics in points (x100), mean ± std "
        "over seeds; s / run is the median wall time of a run (training and scoring the test set; model "
        "loading excluded) and s / step its training time over its steps. softprompt's training time "
        "includes its validation checks (the curves); PEFT's runs have none, and full fine-tuning's "
        "time leaves its checks out. Runs shared the machine with other runs, so times are not speed "
        "figures (bench/train.py measures speed)."
    )
    lines = [f"# softprompt quality benchmark ({data.get('preset')})", "", head, "", "## Goals", ""]
    lines += [f"- **{verdict(g['met'])}**: {g['text']}. {g['detail']}" for g in goals(data)]
    for name in ORDER:
        part = data.get("parts", {}).get(name)
        if not part:
            continue
        cfg = part.get("config", {})
        runs = part.get("runs", [])
        stamps = _finished(runs)
        status = (
            f"status {part['status']}, {part.get('elapsed_s', '?')} s; steps {cfg.get('steps')}, "
            f"test examples {cfg.get('test_examples')}, validation examples {cfg.get('validation_examples')}"
            + (f"; majority share {part['majority'] * POINTS:.1f}" if part.get("majority") else "")
            + (f"; runs finished {stamps[0]} … {stamps[-1]}" if stamps else "")
            + (
                f", code {', '.join(sorted({r['commit'] for r in runs if r.get('commit')}))}"
                if stamps
                else ""
            )
        )
        lines += ["", f"## {name}: {TITLES[name]}", "", status, ""]
        rows = [
            {
                "method": r["label"],
                "library": r["library"],
                "params": r["params"],
                "value": _fmt(r),
                "n": r["n"],
                "step_s": r["step_s"],
                "wall_s": r["wall_s"],
            }
            for r in summarize(part)
        ]
        if part.get("templates"):
            t = part["templates"]
            rows.insert(
                0,
                {
                    "method": "hand-written templates (min / median / max)",
                    "library": "hard",
                    "params": 0,
                    "value": f"{t['min'] * POINTS:.1f} / {t['median'] * POINTS:.1f} / "
                    f"{t['max'] * POINTS:.1f}",
                    "n": len(t["rows"]),
                },
            )
        metric = (
            part["runs"][0]["metric"] if part.get("runs") else (part.get("templates") or {}).get("metric", "")
        )
        lines.append(
            markdown_table(
                rows,
                [
                    ("method", "method", ""),
                    ("library", "library", ""),
                    ("params", "trainable params", ","),
                    ("value", metric, ""),
                    ("n", "n", ""),
                    ("step_s", "s / step", ".2f"),
                    ("wall_s", "s / run", ".0f"),
                ],
            )
        )
        lines += extras(name, part, markdown_table)
    return "\n".join(lines) + "\n"
