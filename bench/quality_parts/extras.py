"""The per-part sections of quality.md below each results table: softprompt vs PEFT with how each side
starts, the hand-written templates, and generated samples."""

from __future__ import annotations

from .report import POINTS, pairs

PAIR_COLUMNS = [
    ("label", "method", ""),
    ("seed", "seed", ""),
    ("softprompt", "softprompt", ".1f"),
    ("peft", "PEFT", ".1f"),
    ("diff_points", "diff (points)", "+.1f"),
    ("params", "params sp / PEFT", ""),
]
SAMPLE_COLUMNS = [
    ("input_start", "article (start)", ""),
    ("reference", "reference", ""),
    ("prediction", "prediction", ""),
]


def extras(name: str, part: dict, markdown_table) -> list[str]:
    def section(title: str, body: list[str]) -> list[str]:
        return ["", title, "", *body]

    out = []
    ps = [{**p, "softprompt": p["softprompt"] * POINTS, "peft": p["peft"] * POINTS} for p in pairs(part)]
    if name == "rt-smollm" and ps:
        out += section("softprompt vs PEFT, same method and seed:", [markdown_table(ps, PAIR_COLUMNS)])
        starts = part.get("config", {}).get("methods", {})
        shown = {p["label"] for p in ps}
        notes = [f"- {k}: {v['init_note']} (lr {v['lr']:g})" for k, v in starts.items() if k in shown]
        out += section("How each side starts:", notes)
    if part.get("templates"):
        key = part["templates"]["metric"]
        rows = [
            {
                "template": r["template"].replace("\n", "\\n"),
                "value": r[key] * POINTS,
                "per_relation": ", ".join(
                    f"{k} {v * POINTS:.0f}" for k, v in r.get("per_relation", {}).items()
                ),
            }
            for r in part["templates"]["rows"]
        ]
        cols = [("template", "template", ""), ("value", key, ".1f")]
        cols += [("per_relation", "per relation", "")] if name == "facts" else []
        out += section("Hand-written templates, zero-shot:", [markdown_table(rows, cols)])
    for label, samples in part.get("samples", {}).items():
        rows = [{k: v.replace("\n", " ").replace("|", "/") for k, v in s.items()} for s in samples]
        out += section(f"Samples, {label}:", [markdown_table(rows, SAMPLE_COLUMNS)])
    return out
