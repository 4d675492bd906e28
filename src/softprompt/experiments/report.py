"""Reports over training runs: Markdown + HTML with PNG plots (curves, method comparison, sensitivity)."""

from __future__ import annotations

import html
import json
from pathlib import Path

from softprompt.errors import PromptFileError
from softprompt.files.atomic import atomic_write_text


def read_run(run: str | Path) -> dict:
    """A run folder's description (run.json), final summary (summary.json) and log lines (log.jsonl)."""
    run = Path(run)
    if not (run / "log.jsonl").exists():
        raise PromptFileError(f"{run}: not a training run folder (no log.jsonl)")
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines() if line.strip()]
    info = json.loads((run / "run.json").read_text()) if (run / "run.json").exists() else {}
    summary = json.loads((run / "summary.json").read_text()) if (run / "summary.json").exists() else {}
    summary = summary or _summary_of(run, info)
    return {
        "path": str(run),
        "name": summary.get("method") or info.get("method") or run.name,
        "run": info,
        "summary": summary,
        "log": log,
    }


def _summary_of(run: Path, info: dict) -> dict:
    """A `softprompt train` run's row: its result in run.json, scored on the test split where `softprompt eval`
    has written eval-test.json, else its best validation score."""
    result, desc = info.get("result") or {}, info.get("run") or {}
    first = (desc.get("prompts") or [{}])[0]
    metric = first.get("main_metric", "accuracy")
    out = {
        "method": desc.get("method") or (first.get("method") or {}).get("method"),
        "metric_name": metric,
        "trainable_params": result.get("trainable_params"),
        "train_time_s": result.get("train_time_s"),
    }
    if (run / "eval-test.json").exists():
        scores, out["split"] = json.loads((run / "eval-test.json").read_text())["metrics"], "test"
    else:
        scores, out["split"] = next(iter((result.get("metrics") or {}).values()), {}), "validation"
    if metric in scores:
        out[metric] = scores[metric]
    return out


MAIN_METRICS = ("accuracy", "p_at_1", "token_f1", "rougeL")


def main_metric(metrics: dict) -> float:
    """The headline number of a metrics dict (first of MAIN_METRICS present)."""
    return next(metrics[k] for k in MAIN_METRICS if k in metrics)


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_curves(runs: list[dict], path: Path) -> None:
    """Training loss and validation metric against steps, one line per run."""
    plt = _plt()
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    for r in runs:
        loss = [(e["step"], e["loss"]) for e in r["log"] if "loss" in e]
        evals = [(e["step"], main_metric(m)) for e in r["log"] for m in e.get("eval", {}).values()]
        if loss:
            a.plot(*zip(*loss), label=r["name"])
        if evals:
            b.plot(*zip(*evals), marker="o", label=r["name"])
    a.set(xlabel="step", ylabel="training loss", title="Loss")
    b.set(xlabel="step", ylabel="validation metric", title="Validation")
    for ax in (a, b):
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_comparison(rows: list[dict], metric: str, path: Path) -> None:
    """Held-out metric against trainable parameters (log scale), one point per method."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for r in rows:
        x = max(r.get("trainable_params", 0), 1)
        ax.scatter(x, r[metric], s=50)
        ax.annotate(r["method"], (x, r[metric]), textcoords="offset points", xytext=(5, 4), fontsize=8)
    ax.set_xscale("log")
    ax.set(xlabel="trainable parameters (log)", ylabel=f"held-out {metric}", title="Methods")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def markdown_table(rows: list[dict], columns: list[tuple[str, str, str]]) -> str:
    """``columns``: (key, header, format) triples. Newlines and pipes in cells are escaped (``\\n``, ``\\|``)
    so a template such as ``"Review: {text}\\nSentiment: {mask}"`` stays in its row."""

    def cell(value, fmt: str) -> str:
        text = "" if value is None else format(value, fmt)
        return text.replace("\\", "\\\\").replace("\n", "\\n").replace("|", "\\|")

    head = "| " + " | ".join(h for _, h, _ in columns) + " |"
    sep = "|" + "|".join("---" for _ in columns) + "|"
    body = ["| " + " | ".join(cell(r.get(k), f) for k, _, f in columns) + " |" for r in rows]
    return "\n".join([head, sep, *body])


def write_report(out: str | Path, *, title: str, sections: list[tuple[str, str]], images: list[str]) -> Path:
    """Write ``report.md`` and ``report.html`` in ``out`` from (heading, markdown body) sections."""
    out = Path(out)
    md = [f"# {title}", ""]
    for heading, body in sections:
        md += [f"## {heading}", "", body, ""]
    md += [f"![{Path(i).stem}]({i})" for i in images]
    atomic_write_text(out / "report.md", "\n".join(md) + "\n")
    parts = [f"<h1>{html.escape(title)}</h1>"]
    for heading, body in sections:
        parts.append(f"<h2>{html.escape(heading)}</h2><pre>{html.escape(body)}</pre>")
    parts += [f'<p><img src="{html.escape(i)}" style="max-width:100%"></p>' for i in images]
    atomic_write_text(
        out / "report.html",
        "<!doctype html><meta charset=utf-8><title>"
        + html.escape(title)
        + "</title><body style='font-family:sans-serif;max-width:1000px;margin:auto'>"
        + "".join(parts)
        + "</body>",
    )
    return out / "report.md"


def report_runs(runs: list[str | Path], out: str | Path, title: str = "softprompt report") -> Path:
    """``softprompt report RUN...``: curves for every run, and a comparison of their held-out results."""
    data = [read_run(r) for r in runs]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    plot_curves(data, out / "curves.png")
    rows = [{"method": d["name"], **d["summary"]} for d in data]
    metric = next((r.get("metric_name") for r in rows if r.get("metric_name")), "accuracy")
    images = ["curves.png"]
    if all(metric in r for r in rows):
        plot_comparison(rows, metric, out / "comparison.png")
        images.append("comparison.png")
    table = markdown_table(
        rows,
        [
            ("method", "method", ""),
            ("trainable_params", "trainable params", ","),
            (metric, f"held-out {metric}", ".3f"),
            ("split", "split", ""),
            ("train_time_s", "train time (s)", ".0f"),
        ],
    )
    return write_report(out, title=title, sections=[("Runs", table)], images=images)
