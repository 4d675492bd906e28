"""quality.json -> quality.png (metric against trainable parameters) and quality-curves.png (validation curves)."""

from __future__ import annotations

from pathlib import Path

from .report import ORDER, POINTS, summarize

# ----- plot ----------------------------------------------------------------------------------------------------
MARKERS = {"softprompt": "o", "peft": "s", "torch": "^", "hard": "x"}


def plot(data: dict, path: Path) -> None:
    """Metric against trainable parameters (log x), one panel per part; dashed = best template."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [
        n
        for n in ORDER
        if data.get("parts", {}).get(n, {}).get("runs") or data.get("parts", {}).get(n, {}).get("templates")
    ]
    if not names:
        return
    fig, panels = _panels(plt, names, height=4.4)
    for ax, name in panels:
        part = data["parts"][name]
        colors: dict[str, str] = {}
        for r in summarize(part):
            color = colors.setdefault(r["label"], f"C{len(colors) % 10}")
            x = max(r["params"], 1) * (
                1.25 if r["library"] == "peft" else 1.0
            )  # PEFT beside its softprompt twin
            ax.errorbar(
                x,
                r["mean"] * POINTS,
                yerr=(r["std"] or 0) * POINTS,
                marker=MARKERS.get(r["library"], "o"),
                color=color,
                capsize=3,
                ls="none",
                label=f"{r['label']} ({r['library']})",
            )
        if part.get("templates"):
            ax.axhline(part["templates"]["max"] * POINTS, ls="--", c="gray", lw=1, label="best template")
            ax.axhline(part["templates"]["median"] * POINTS, ls=":", c="gray", lw=1, label="median template")
        ax.set_xscale("log")
        metric = part["runs"][0]["metric"] if part.get("runs") else part["templates"]["metric"]
        ax.set(xlabel="trainable parameters (log; 0 drawn at 1)", ylabel=f"{metric} (points)", title=name)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_curves(data: dict, path: Path) -> None:
    """Validation curves (main metric against step), one panel per part, every recorded run (seeds thin)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    parts = data.get("parts", {})
    names = [n for n in ORDER if any(r.get("curve") for r in parts.get(n, {}).get("runs", []))]
    if not names:
        return
    fig, panels = _panels(plt, names, height=4.0)
    for ax, name in panels:
        colors: dict[str, str] = {}
        for r in parts[name]["runs"]:
            if not r.get("curve"):
                continue
            key = f"{r['label']} ({r['library']})"
            first = key not in colors
            color = colors.setdefault(key, f"C{len(colors) % 10}")
            xs, ys = zip(*((c["step"], c["value"] * POINTS) for c in r["curve"]))
            ax.plot(xs, ys, color=color, lw=1, marker=".", ms=3, label=key if first else None)
        ax.set(xlabel="step", ylabel=f"validation {parts[name]['runs'][0]['metric']} (points)", title=name)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _panels(plt, names: list[str], height: float):
    """(figure, [(axes, part name)]): up to 3 panels a row, unused ones hidden."""
    cols = min(3, len(names))
    rows = -(-len(names) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, height * rows), squeeze=False)
    for ax in axes.flat[len(names) :]:
        ax.axis("off")
    return fig, list(zip(axes.flat, names))


def render(out: Path) -> int:
    """Rewrite quality.md, quality.png and quality-curves.png from ``out``/quality.json (``--render``); the
    .json is left to the running benchmarks."""
    from softprompt.io.atomic import atomic_write_text

    from . import report
    from .recording import read_document

    path = out / "quality.json"
    data = read_document(path)
    if data is None:
        print(f"no readable {path}")
        return 1
    data["goals"] = report.goals(data)
    atomic_write_text(path.with_suffix(".md"), report.markdown(data))
    plot(data, out / "quality.png")
    plot_curves(data, out / "quality-curves.png")
    for g in data["goals"]:
        print(
            f"  {report.verdict(g['met']):>12}  {g['text']}" + (f"  [{g['detail']}]" if g["detail"] else "")
        )
    return 0
