"""The report's "read back as words" panels: one small table per prompt, each virtual token with its nearest
vocabulary tokens (``softprompt.experiments.readback``; what is and is not read back is said there).

A run whose prompt or backbone cannot be loaded gets a panel that says why, so the rest of the report is still
written.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from softprompt.errors import SoftPromptError

if TYPE_CHECKING:
    from softprompt.core.model import PromptedModel

KINDS = (("embeds", "input"), ("layer0_keys", "layer-0 key"))
"""read_back's lists and how a panel row names them."""


@dataclass
class Panel:
    """One prompt read back: per virtual token (and per first-layer prefix key) its nearest tokens."""

    run: str
    prompt: str = ""
    method: str = ""
    rows: list[dict] = field(default_factory=list)
    """``{"kind", "position", "norm", "nearest"}``; ``nearest`` is "'tok' 0.812, 'tok2' 0.640"."""
    notes: list[str] = field(default_factory=list)
    """What is not read back (deep prefixes' later layers, adaption prompts), or why nothing could be."""


def panel_of(run: str, readback: dict) -> Panel:
    """A panel from ``read_back``'s answer for the prompt of ``run``."""
    rows = [
        {
            "kind": kind,
            "position": r["position"],
            "norm": r["norm"],
            "nearest": ", ".join(f"{n['token']!r} {n['cosine']:.3f}" for n in r["nearest"]),
        }
        for key, kind in KINDS
        for r in readback.get(key) or []
    ]
    return Panel(run, readback["prompt"], readback["method"], rows, list(readback.get("not_read", [])))


def run_panels(
    runs: Sequence[str | Path],
    labels: list[str] | None = None,
    *,
    k: int = 3,
    model: PromptedModel | None = None,
) -> list[Panel]:
    """A panel per run folder (or prompt folder): its best (else final) prompt read back, ``k`` tokens each.

    Each prompt is loaded into ``model`` when given (it must be the prompt's backbone), else into the backbone
    recorded with it (loaded once per backbone), read back, and removed again.
    """
    from softprompt.core.loading import load_model
    from softprompt.experiments.readback import read_back
    from softprompt.files.prompts import load_prompt
    from softprompt.tasks.trained import read_trained

    labels = labels or [str(r) for r in runs]
    models: dict[str, PromptedModel] = {}
    panels: list[Panel] = []
    for run, label in zip(runs, labels):
        try:
            plan = read_trained(run, need_task=False)
            backbone = model
            if backbone is None:
                name = plan.model_name
                if not name:
                    raise SoftPromptError(f"{plan.folder} does not record its model")
                backbone = models.get(name) or models.setdefault(name, load_model(name, device="cpu"))
            slot = f"__panel_{len(panels)}"
            load_prompt(backbone, plan.folder, slot)
            try:
                answer = read_back(backbone, slot, k=k)
            finally:
                backbone.bank.remove(slot)
            panel = panel_of(label, answer | {"prompt": plan.meta.get("name") or plan.folder.name})
        except (SoftPromptError, OSError) as e:
            panel = Panel(label, notes=[f"not read back: {e}"])
        panels.append(panel)
    return panels


def panel_markdown(panel: Panel) -> str:
    """The panel as a Markdown heading line and table."""
    head = f"**{panel.run}**" + (f": prompt {panel.prompt!r} ({panel.method})" if panel.prompt else "")
    lines = [head]
    if panel.rows:
        lines += ["", "| kind | pos | norm | nearest tokens (cosine) |", "|---|---|---|---|"]
        lines += [
            f"| {r['kind']} | {r['position']} | {r['norm']:.3f} | {_cell(r['nearest'])} |" for r in panel.rows
        ]
    lines += [f"\n{note}" for note in panel.notes]
    return "\n".join(lines)


def _cell(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace("|", "\\|")
