"""The markdown table of bench/quantize.py's results (memory, saved for backward, accuracy)."""

from __future__ import annotations


def markdown(res: dict) -> str:
    lines = [f"# Quantized backbones, SmolLM2-135M ({res['when']}, {res['machine']})", ""]
    mem = res.get("memory")
    if mem:
        ref = mem.get("float32") or next(iter(mem.values()))  # ratios to float32 when it was measured
        lines += [
            "| backbone | after load, above start MiB | train step peak above start | / float32 "
            "| with checkpointing | / float32 | inference peak above start | / float32 | step s |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for label, m in mem.items():
            cells = [f"{m['rss_after_load_mib'] - m['rss_before_load_mib']:.0f}"]
            for key in ("train_peak", "train_ckpt_peak", "infer_peak"):
                v = m[f"{key}_above_start_mib"]
                cells += [f"{v:.0f}", f"{v / ref[f'{key}_above_start_mib']:.2f}"]
            lines.append(f"| {label} | {' | '.join(cells)} | {m['train_step_s']:.1f} |")
        lines.append("")
    saved = res.get("saved_for_backward")
    if saved:
        lines += [
            "What one step's forward keeps for backward (batch 8):",
            "",
            "| backbone | activations MiB | of them float32 | bfloat16 | weights kept (alive anyway) MiB |",
            "|---|---|---|---|---|",
        ]
        for label, m in saved.items():
            cells = [m["activations_mib"], m.get("float32", 0.0), m.get("bfloat16", 0.0), m["parameters"]]
            lines.append(f"| {label} | {' | '.join(f'{v:.0f}' for v in cells)} |")
        lines.append("")
    acc = res.get("accuracy")
    if acc:
        lines += ["| trained on | accuracy on its backbone | on float32 | train s |", "|---|---|---|---|"]
        for label, a in acc.items():
            cross = a["accuracy"] if label == "float32" else a.get("accuracy_on_float32")
            shown = "not measured" if cross is None else f"{cross:.3f}"
            lines.append(f"| {label} | {a['accuracy']:.3f} | {shown} | {a['train_s']:.0f} |")
    for label, why in res.get("accuracy_not_measured", {}).items():
        lines += ["", f"Accuracy of {label}: not measured: {why}."]
    for note in res.get("notes", []):  # added by hand when rows come from several runs
        lines += ["", note]
    return "\n".join(lines) + "\n"
