"""The report's plots (matplotlib, written as PNG): training curves and a held-out comparison."""

from __future__ import annotations

from pathlib import Path

MAIN_METRICS = ("accuracy", "p_at_1", "token_f1", "rougeL")


def main_metric(metrics: dict) -> float:
    """The headline number of a metrics dict (first of MAIN_METRICS present)."""
    return next(metrics[k] for k in MAIN_METRICS if k in metrics)


def metric_name(metrics: dict) -> str:
    return next(k for k in MAIN_METRICS if k in metrics)


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def run_label(run: dict) -> str:
    """A run's legend entry: its label (folder), and its method when the label does not say it."""
    label, method = run.get("label") or run["name"], run.get("method")
    return label if not method or method in label else f"{label} ({method})"


def plot_curves(runs: list[dict], path: Path) -> None:
    """Training loss and the validation metric against steps: one line (and legend entry) per run."""
    plt = _plt()
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    metrics = set()
    for i, r in enumerate(runs):
        color = f"C{i % 10}"
        loss = [(e["step"], e["loss"]) for e in r["log"] if "loss" in e]
        evals = [(e["step"], m) for e in r["log"] for m in e.get("eval", {}).values()]
        metrics |= {metric_name(m) for _, m in evals}
        if loss:
            a.plot(*zip(*loss), color=color, label=run_label(r))
        if evals:
            b.plot([s for s, _ in evals], [main_metric(m) for _, m in evals], "o-", color=color,
                   label=run_label(r))  # fmt: skip
    name = " / ".join(sorted(metrics)) or "metric"
    a.set(xlabel="optimizer step", ylabel="training loss", title="Training loss")
    b.set(xlabel="optimizer step", ylabel=f"validation {name}", title=f"Validation {name}")
    for ax in (a, b):
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_comparison(rows: list[dict], metric: str, path: Path) -> None:
    """Held-out ``metric`` against trainable parameters (log scale): a point per row, named by its run (or
    method) and dataset/split."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4.4))
    for r in rows:
        x = max(r.get("trainable_params") or 0, 1)
        ax.scatter(x, r[metric], s=50)
        where = " · ".join(str(r[k]) for k in ("dataset", "split") if r.get(k))
        name = r.get("run") or r.get("method") or ""
        ax.annotate(f"{name}" + (f" [{where}]" if where else ""), (x, r[metric]), textcoords="offset points",
                    xytext=(5, 4), fontsize=7)  # fmt: skip
    ax.set_xscale("log")
    ax.set(xlabel="trainable parameters (log scale)", ylabel=f"held-out {metric}", title="Runs compared")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
