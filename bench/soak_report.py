"""The figures and verdicts of a soak run (bench/soak.py), written to bench/results/soak.{json,md}."""

from __future__ import annotations

import collections
import json
from pathlib import Path

from soak_requests import judge

RSS_TOLERANCE = 0.10


def write(result: dict, out: Path) -> int:
    """Write the JSON and markdown results; returns 0 when every check passed, else 1."""
    reqs = result.pop("requests")
    verdicts = [judge(r) for r in reqs]
    outcomes: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for r in reqs:
        a = r["answer"]
        what = "disconnected" if a.get("disconnected") else f"{a.get('status')} {a.get('code') or ''}".strip()
        outcomes[r["kind"]][what] += 1
    broken = [
        {"kind": r["kind"], "model": r["body"].get("model"), "answer": r["answer"], "why": v}
        for r, v in zip(reqs, verdicts)
        if v != "ok"
    ]
    rss_ratio = result["rss_end_mib"] / result["rss_start_mib"]
    checks = {
        "no stuck slots (/health waiting, prefilling, running and /metrics queue depth, running rows all 0)": (
            all(result["health"][k] == 0 for k in ("waiting", "prefilling", "running"))
            and all(v == 0 for v in result["gauges"].values())
        ),
        f"RSS back within {RSS_TOLERANCE:.0%} of its start": abs(rss_ratio - 1) <= RSS_TOLERANCE,
        "every completed greedy answer equals the request sent alone": not result["mismatches"],
        "every refused request refused with its documented code, in the API's error shape": not broken,
    }
    summary = {
        **{k: v for k, v in result.items() if k != "server_log_tail"},
        "total_requests": len(reqs),
        "outcomes": {k: dict(sorted(v.items())) for k, v in sorted(outcomes.items())},
        "rss_ratio": round(rss_ratio, 4),
        "broken": broken[:50],
        "broken_count": len(broken),
        "checks": checks,
        "passed": all(checks.values()),
        "server_log_tail": result["server_log_tail"],
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=1, default=str) + "\n")
    out.with_suffix(".md").write_text(_markdown(summary))
    print(out.with_suffix(".md").read_text())
    return 0 if summary["passed"] else 1


def _markdown(s: dict) -> str:
    lines = [
        "# Server soak (`make soak`, bench/soak.py)",
        "",
        f"{s['date']}; {s['machine']}. Load average {s['load_average_start']} at start, "
        f"{s['load_average_end']} at end.",
        "",
        f"Model: {s['model']}. Server limits: {s['limits']}. {s['total_requests']} requests "
        f"(after {s['warmup_requests']} warm-up requests) in {s['seconds']:.0f} s, at most "
        f"{s['churn']['most_in_flight']} in flight at once; prompt churn: "
        f"{ {k: v for k, v in s['churn'].items() if k != 'most_in_flight'} }.",
        "",
        "| check | result |",
        "|---|---|",
        *[f"| {k} | {'**yes**' if v else '**NO**'} |" for k, v in s["checks"].items()],
        "",
        f"Server RSS: {s['rss_start_mib']:.0f} MiB at start (after the warm-up), {s['rss_end_mib']:.0f} MiB "
        f"after the load (ratio {s['rss_ratio']:.3f}), peak {s['rss_peak_mib']:.0f} MiB. Greedy answers compared "
        f"with the same request alone: {s['greedy_compared']} ({s['greedy_distinct']} distinct requests), "
        f"{len(s['mismatches'])} differ.",
        "",
        "| kind | answers |",
        "|---|---|",
        *[
            f"| {k} | {', '.join(f'{what}: {n}' for what, n in v.items())} |"
            for k, v in s["outcomes"].items()
        ],
        "",
        f"Answers breaking the contract: {s['broken_count']}"
        + ("" if not s["broken"] else " (first: " + json.dumps(s["broken"][0], default=str)[:400] + ")"),
        "",
    ]
    return "\n".join(lines)
