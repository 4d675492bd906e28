"""Reports over training runs: Markdown + HTML (a jinja2 template, plots inline) with loss/metric curves and a
comparison of what each run scored where.

A row is one score of one run: every ``eval-<dataset>-<split>.json`` that ``softprompt eval`` wrote in the run
folder (and an older run's ``eval-test.json``), else the run's best validation score. Each row names its run,
method, dataset, split and example count, so two runs of one method, or one run scored on two datasets, read
apart.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from pathlib import Path

from softprompt.errors import PromptFileError
from softprompt.experiments.panels import Panel, panel_markdown, run_panels
from softprompt.experiments.plots import main_metric, plot_comparison, plot_curves
from softprompt.io.atomic import atomic_write_text

__all__ = [
    "Panel",
    "Table",
    "main_metric",
    "markdown_table",
    "plot_comparison",
    "plot_curves",
    "read_run",
    "report_runs",
    "run_rows",
    "write_report",
]


def read_run(run: str | Path, label: str | None = None) -> dict:
    """A run folder's description (run.json), summary (summary.json, as the demo writes), eval files and log."""
    run = Path(run)
    if not (run / "log.jsonl").exists():
        raise PromptFileError(f"{run}: not a training run folder (no log.jsonl)")
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines() if line.strip()]
    info = json.loads((run / "run.json").read_text()) if (run / "run.json").exists() else {}
    summary = json.loads((run / "summary.json").read_text()) if (run / "summary.json").exists() else {}
    desc = info.get("run") or {}
    first = (desc.get("prompts") or [{}])[0]
    method = summary.get("method") or desc.get("method") or (first.get("method") or {}).get("method")
    return {
        "path": str(run),
        "label": label or run.name,
        "name": method or run.name,
        "method": method,
        "run": info,
        "summary": summary,
        "evals": _evals(run),
        "log": log,
    }


def _evals(run: Path) -> list[dict]:
    """Every eval file of the run, one per (dataset, split); the new names win over an old eval-test.json."""
    found: dict[tuple, dict] = {}
    for f in sorted(run.glob("eval-*.json"), key=lambda p: (p.name.count("-") < 2, p.name)):
        try:
            doc = json.loads(f.read_text())
        except ValueError:
            continue
        found.setdefault((doc.get("dataset"), doc.get("split"), doc.get("examples")), doc | {"file": f.name})
    return list(found.values())


def _dataset(name: str | None) -> str | None:
    """A dataset as a reader names it: a built-in's name, a file's name (not its absolute path)."""
    return Path(name).name if name and ("/" in name or "\\" in name) else name


def run_rows(run: dict) -> list[dict]:
    """The report rows of one run (see the module docstring)."""
    info, summary = run["run"], run["summary"]
    result, desc = info.get("result") or {}, info.get("run") or {}
    first = (desc.get("prompts") or [{}])[0]
    metric = summary.get("metric_name") or first.get("main_metric", "accuracy")
    base = {
        "run": run["label"],
        "method": run["method"],
        "metric_name": metric,
        "trainable_params": summary.get("trainable_params", result.get("trainable_params")),
        "train_time_s": summary.get("train_time_s", result.get("train_time_s")),
    }
    if metric in summary:  # the demo's summary: its own held-out score
        held = summary.get("examples")
        return [
            base
            | {"dataset": desc.get("dataset"), "split": "test", "examples": held, metric: summary[metric]}
        ]
    rows = [
        base
        | {"dataset": _dataset(e.get("dataset")), "split": e.get("split"), "examples": e.get("examples")}
        | ({metric: e["metrics"][metric]} if metric in (e.get("metrics") or {}) else {})
        for e in run["evals"]
    ]
    if rows:
        return rows
    scores: dict = next(iter((result.get("metrics") or {}).values()), {})
    n = first.get("validation_examples")
    cap = (desc.get("config") or {}).get("eval_examples")
    examples = None if n is None else min(n, cap) if cap else n
    row = base | {
        "dataset": _dataset(desc.get("dataset")),
        "split": "validation (best)",
        "examples": examples,
    }
    return [row | ({metric: scores[metric]} if metric in scores else {})]


# ----- tables and documents ---------------------------------------------------------------------------------
@dataclass
class Table:
    """Rows and (key, header, format) columns; rendered as a Markdown table and as an HTML table."""

    rows: list[dict]
    columns: list[tuple[str, str, str]]
    note: str = ""
    """A paragraph under the table."""
    cells: list[list[str]] = field(init=False)

    def __post_init__(self):
        self.cells = [[_fmt(r.get(k), f) for k, _, f in self.columns] for r in self.rows]

    @property
    def headers(self) -> list[str]:
        return [h for _, h, _ in self.columns]


def _fmt(value, fmt: str) -> str:
    return "" if value is None else format(value, fmt)


def markdown_table(rows: list[dict], columns: list[tuple[str, str, str]]) -> str:
    """``columns``: (key, header, format) triples. Newlines and pipes in cells are escaped (``\\n``, ``\\|``)
    so a template such as ``"Review: {text}\\nSentiment: {mask}"`` stays in its row."""

    def cell(text: str) -> str:
        return text.replace("\\", "\\\\").replace("\n", "\\n").replace("|", "\\|")

    t = Table(rows, columns)
    head = "| " + " | ".join(t.headers) + " |"
    sep = "|" + "|".join("---" for _ in columns) + "|"
    body = ["| " + " | ".join(cell(c) for c in row) + " |" for row in t.cells]
    return "\n".join([head, sep, *body])


HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{ title }}</title>
<style>
 body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; color: #222; }
 table { border-collapse: collapse; margin: 1em 0; }
 th, td { border: 1px solid #ccc; padding: 4px 10px; text-align: left; vertical-align: top; }
 th { background: #f3f3f3; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
 td pre { margin: 0; font-family: inherit; white-space: pre-wrap; }
 img { max-width: 100%; }
 .panels { display: flex; flex-wrap: wrap; gap: 1em; }
 .panel { border: 1px solid #ddd; border-radius: 4px; padding: 0.5em 0.8em; font-size: 0.85em; }
 .panel table { margin: 0.4em 0; } .panel p { margin: 0.3em 0; color: #555; }
</style></head>
<body>
<h1>{{ title }}</h1>
{% for s in sections %}<h2>{{ s.heading }}</h2>
{% if s.table %}<table>
 <thead><tr>{% for h in s.table.headers %}<th>{{ h }}</th>{% endfor %}</tr></thead>
 <tbody>{% for row in s.table.cells %}
  <tr>{% for c in row %}<td{% if s.numeric[loop.index0] %} class="num"{% endif %}><pre>{{ c }}</pre></td>{% endfor %}</tr>{% endfor %}
 </tbody>
</table>{% if s.table.note %}<p>{{ s.table.note }}</p>{% endif %}
{% else %}<pre>{{ s.text }}</pre>{% endif %}
{% endfor %}
{% if panels %}<h2>Prompts read back as words</h2>
<p>Each virtual token's nearest vocabulary tokens by cosine similarity (softprompt inspect).</p>
<div class="panels">{% for p in panels %}<div class="panel"><b>{{ p.run }}</b>{% if p.prompt %}: {{ p.prompt }} ({{ p.method }}){% endif %}
{% if p.rows %}<table><thead><tr><th>kind</th><th>pos</th><th>norm</th><th>nearest tokens (cosine)</th></tr></thead><tbody>
{% for r in p.rows %}<tr><td>{{ r.kind }}</td><td class="num">{{ r.position }}</td><td class="num">{{ "%.3f"|format(r.norm) }}</td><td>{{ r.nearest }}</td></tr>
{% endfor %}</tbody></table>{% endif %}{% for n in p.notes %}<p>{{ n }}</p>{% endfor %}</div>
{% endfor %}</div>
{% endif %}
{% for img in images %}<figure><img alt="{{ img.name }}" src="data:image/png;base64,{{ img.data }}"></figure>
{% endfor %}
</body></html>
"""
"""The report page: real tables, plots inline as base64 PNG (the page is one self-contained file)."""


def write_report(
    out: str | Path,
    *,
    title: str,
    sections: list[tuple[str, str | Table]],
    images: list[str],
    panels: list[Panel] | None = None,
) -> Path:
    """Write ``report.md`` and ``report.html`` in ``out`` from (heading, text or Table) sections; ``images``
    are PNG files in ``out`` (linked from the Markdown, inlined in the HTML); ``panels``: one small table per
    prompt read back as words (``softprompt.experiments.panels``)."""
    import jinja2

    out = Path(out)
    md = [f"# {title}", ""]
    for heading, body in sections:
        text = body if isinstance(body, str) else markdown_table(body.rows, body.columns)
        note = "" if isinstance(body, str) or not body.note else "\n\n" + body.note
        md += [f"## {heading}", "", text + note, ""]
    if panels:
        md += ["## Prompts read back as words", ""] + [panel_markdown(p) + "\n" for p in panels]
    md += [f"![{Path(i).stem}]({i})" for i in images]
    atomic_write_text(out / "report.md", "\n".join(md) + "\n")
    page = jinja2.Environment(autoescape=True).from_string(HTML)
    html_sections = [
        {"heading": h, "text": b, "table": None}
        if isinstance(b, str)
        else {"heading": h, "table": b, "numeric": [bool(f) for _, _, f in b.columns]}
        for h, b in sections
    ]
    pictures = [
        {"name": Path(i).stem, "data": base64.b64encode((out / i).read_bytes()).decode()} for i in images
    ]
    page_text = page.render(title=title, sections=html_sections, images=pictures, panels=panels or [])
    atomic_write_text(out / "report.html", page_text)
    return out / "report.md"


def _labels(paths: list[Path]) -> list[str]:
    """The shortest trailing parts of each path that tell the runs apart (``a/pt``, ``b/pt``)."""
    parts = [p.resolve().parts for p in paths]
    for k in range(1, max(map(len, parts), default=1) + 1):
        labels = ["/".join(p[-k:]) for p in parts]
        if len(set(labels)) == len(labels):
            return labels
    return [str(p) for p in paths]


def report_runs(
    runs: list[str | Path], out: str | Path, title: str = "softprompt report", *, nearest: int = 3
) -> Path:
    """``softprompt report RUN...``: one row per score of each run, curves (one line per run), comparison, and
    a panel per run's prompt read back as words (its ``nearest`` vocabulary tokens per virtual token; 0: no
    panels, and no backbone is loaded)."""
    paths = [Path(r) for r in runs]
    labels = _labels(paths)
    data = [read_run(p, label) for p, label in zip(paths, labels)]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    plot_curves(data, out / "curves.png")
    rows = [row for d in data for row in run_rows(d)]
    metric = str(next((r.get("metric_name") for r in rows if r.get("metric_name")), "accuracy"))
    images = ["curves.png"]
    if any(metric in r for r in rows):
        plot_comparison([r for r in rows if metric in r], metric, out / "comparison.png")
        images.append("comparison.png")
    table = Table(
        rows,
        [
            ("run", "run", ""),
            ("method", "method", ""),
            ("dataset", "dataset", ""),
            ("split", "split", ""),
            ("examples", "examples", ","),
            (metric, metric, ".3f"),
            ("trainable_params", "trainable params", ","),
            ("train_time_s", "train time (s)", ".0f"),
        ],
        note="One row per score: each `softprompt eval` of a run (eval-<dataset>-<split>.json), else its best "
        "validation score during training.",
    )
    panels = run_panels(paths, labels, k=nearest) if nearest > 0 else None
    return write_report(out, title=title, sections=[("Runs", table)], images=images, panels=panels)
