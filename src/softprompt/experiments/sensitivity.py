"""Template sensitivity: the same model and data under many hand-written templates (the case for soft prompts)."""

from __future__ import annotations

import os
import statistics
from typing import TYPE_CHECKING

import torch

from softprompt.tasks import make_task

if TYPE_CHECKING:
    from softprompt.core.model import PromptedModel
    from softprompt.data.spec import TaskSpec


@torch.no_grad()
def template_sensitivity(
    model: PromptedModel,
    spec: TaskSpec,
    examples: list[dict],
    templates: list[str] | None = None,
    batch_size: int = 16,
    progress: bool = True,
) -> dict:
    """Zero-shot score of each template (with its verbalizer) on ``examples``.

    Returns ``{"templates": [{"template", "verbalizer", metric...}], "metric", "min", "median", "max", "spread"}``.
    """
    from tqdm.auto import tqdm

    templates = list(templates or spec.default_templates)
    rows = []
    for template in tqdm(templates, desc="templates", disable=not progress):
        task = make_task(model, spec, template=template)
        preds = []
        for i in range(0, len(examples), batch_size):
            chunk = examples[i : i + batch_size]
            preds += task.predict(model, task.collate(chunk), [None] * len(chunk))
        scores = task.metrics(preds, task.gold(examples))
        rows.append({"template": template, "verbalizer": spec.verbalizer_for(template), **scores})
    metric = task.main_metric
    values = [r[metric] for r in rows]
    return {
        "metric": metric,
        "examples": len(examples),
        "templates": rows,
        "min": min(values),
        "median": statistics.median(values),
        "max": max(values),
        "spread": max(values) - min(values),
    }


def plot_sensitivity(result: dict, path: str | os.PathLike) -> None:
    """Horizontal bar chart of each template's score."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = sorted(result["templates"], key=lambda r: r[result["metric"]])
    labels = [r["template"].replace("\n", "\\n")[:60] for r in rows]
    fig, ax = plt.subplots(figsize=(9, 0.45 * len(rows) + 1.2))
    ax.barh(range(len(rows)), [r[result["metric"]] for r in rows], color="#4C72B0")
    ax.set_yticks(range(len(rows)), labels, fontsize=8)
    ax.set_xlabel(f"{result['metric']} ({result['examples']} examples, zero-shot)")
    ax.set_title(f"Hand-written templates: spread {result['spread']:.3f}")
    lo = max(0.0, result["min"] - 0.1)
    ax.set_xlim(lo, min(1.0, result["max"] + 0.05))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
