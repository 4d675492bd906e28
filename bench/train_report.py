"""What bench/train.py prints: the side-by-side table (softprompt / PEFT ratios per method) and the summary after
the last method."""

from __future__ import annotations

import floor


def table(rows: list[dict]) -> str:
    head = (
        f"{'method':<15}{'step ms sp/peft':>18}{'step':>7}{'cpu':>6}{'mem MiB sp/peft':>18}{'mem':>7}"
        f"{'+train':>8}{'infer':>7}{'gen':>7}{'dloss0':>9}"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        t = r["train_step"]["median_ms"]
        m = r.get("memory", {})
        mem = (
            f"{m['softprompt']['train_peak_rss_mib']:.0f}/{m['peft']['train_peak_rss_mib']:.0f}" if m else "-"
        )
        lines.append(
            f"{r['method']:<15}{t['softprompt']:>8.0f}/{t['peft']:<9.0f}{r['step_time_ratio_vs_peft']:>7.2f}"
            f"{r['step_cpu_time_ratio_vs_peft']:>6.2f}"
            f"{mem:>18}{r.get('peak_mem_ratio_vs_peft', float('nan')):>7.2f}"
            f"{r.get('train_mem_increase_ratio_vs_peft', float('nan')):>8.2f}"
            f"{r['inference_ratio_vs_peft']:>7.2f}{r.get('generation_ratio_vs_peft', float('nan')):>7.2f}"
            f"{r['train_loss']['step0_abs_diff']:>9.1e}"
        )
    return "\n".join(lines)


def print_summary(rows: list[dict], args, stamp: dict) -> None:
    print(f"\n{stamp['date']}  {stamp['machine']}  {stamp['versions']}")
    print(
        f"batch {args.batch}, seq_len {args.seq_len}, {args.num_virtual_tokens} virtual tokens, "
        f"{args.steps} timed steps after {args.warmup} warm-up, {args.threads} torch thread(s); "
        "ratios = softprompt / PEFT (wall-time medians; cpu = CPU-time medians)"
    )
    print(table(rows))
    print(
        "step/cpu: train-step time ratio (wall / CPU); mem: peak RSS ratio over the steps; +train: ratio of the "
        "RSS the steps add; infer/gen: forward / greedy-generation time ratios; dloss0: |loss difference| at "
        "the first step (same parameters, same batch)"
    )
    for r in rows:
        gap = r["padding_gap_max_abs_logit"]
        print(
            f"{r['method']}: left-padded row vs the same row alone, max |next-token logit diff|: "
            f"softprompt {gap['softprompt']:.1e}, PEFT {gap['peft']:.1e}"
        )
    print(floor.floor_table(rows))
    print(f"wrote {args.out}")
