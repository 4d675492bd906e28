"""The long run of the property and fault tests (``make fuzz``): hypothesis's "fuzz" profile and 20 kill points.

    .venv/bin/python bench/fuzz.py                     # make fuzz
    .venv/bin/python bench/fuzz.py --kill-points 3 --profile default --out /tmp/fuzz.json   # smoke run
    .venv/bin/python bench/fuzz.py --only faults       # the fault phase alone; properties kept from the last run

Counts what was tried (hypothesis examples per property, kill points, injected disk faults) and what failed, from
pytest's own report; writes bench/results/fuzz.{json,md}.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from common import machine

ROOT = Path(__file__).resolve().parent.parent
PROPERTIES = [
    "tests/prompting/test_template_properties.py",
    "tests/data/test_reader_properties.py",
    "tests/files/test_folder_properties.py",
    "tests/training/test_config_bounds.py",
    "tests/serve/test_schemathesis.py",  # SOFTPROMPT_SCHEMATHESIS_EXAMPLES (make fuzz: 200 per operation and mode)
]
FAULTS = [
    "tests/training/test_kill_anywhere.py",
    "tests/training/test_dead_runs.py",
    "tests/io/test_disk_full.py",
]
EXAMPLES = re.compile(r"- (\d+) passing, (\d+) failing, and (\d+) invalid")


def _pytest(files: list[str], env: dict, extra: list[str]) -> tuple[str, float]:
    start = time.perf_counter()
    cmd = [sys.executable, "-m", "pytest", *files, "-q", "-p", "no:cacheprovider", "-rfE", *extra]
    run = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    return run.stdout + run.stderr, time.perf_counter() - start


def _outcomes(text: str) -> dict[str, int]:
    last = [line for line in text.splitlines() if re.search(r"\d+ (passed|failed)", line)][-1:]
    return {k: int(n) for line in last for n, k in re.findall(r"(\d+) (passed|failed|skipped|error)", line)}


def _examples(text: str) -> dict[str, dict[str, int]]:
    """Examples per property test, summed over hypothesis's phases (--hypothesis-show-statistics)."""
    out, current = {}, None
    for line in text.splitlines():
        if "::" in line and line.rstrip().endswith(":") and line.startswith("tests/"):
            current = line.rstrip()[:-1]
        elif current and (m := EXAMPLES.search(line)):
            tot = out.setdefault(current, {"passing": 0, "failing": 0, "invalid": 0})
            for key, n in zip(("passing", "failing", "invalid"), m.groups()):
                tot[key] += int(n)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="fuzz")
    ap.add_argument("--kill-points", type=int, default=20)
    ap.add_argument(
        "--only", choices=["properties", "faults"], help="one phase (the other's figures are kept)"
    )
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "fuzz.json")
    args = ap.parse_args()
    env = {**os.environ, "HYPOTHESIS_PROFILE": args.profile, "SOFTPROMPT_KILL_POINTS": str(args.kill_points),
           "PYTHONPATH": str(ROOT / "src")}  # fmt: skip
    kept = json.loads(args.out.read_text()) if args.only and args.out.exists() else {}
    if args.only == "faults":
        props = kept.get("properties", {"not run": True})
    else:
        text, seconds = _pytest(PROPERTIES, env, ["--hypothesis-show-statistics"])
        props = _properties(text, seconds, args.profile)
        _write(args, props, kept.get("faults", {"tests": "still running", "kill_points": args.kill_points}))
    if args.only == "properties":
        return
    start = _load()
    text, seconds = _pytest(FAULTS, env, [])
    faults = {"tests": _outcomes(text), "seconds": round(seconds, 1), "kill_points": args.kill_points,
              "failures": _failed(text), "load_average": {"start": start, "end": _load()}}  # fmt: skip
    _write(args, props, faults)


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _failed(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(("FAILED", "ERROR"))]


def _properties(text: str, seconds: float, profile: str) -> dict:
    examples = _examples(text)
    return {"date": _now(), "profile": profile, "tests": _outcomes(text), "seconds": round(seconds, 1),
            "examples": examples, "cases_tried": sum(e["passing"] + e["failing"] for e in examples.values()),
            "failures": _failed(text)}  # fmt: skip


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def _write(args, props: dict, faults: dict) -> None:
    result = {"date": _now(), "machine": machine(), "profile": props.get("profile", args.profile),
              "properties": props, "faults": faults,
              "failures": props.get("failures", []) + faults.get("failures", [])}  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    args.out.with_suffix(".md").write_text(_markdown(result))
    print(_markdown(result), flush=True)


def _markdown(r: dict) -> str:
    p, f = r["properties"], r["faults"]
    rows = [f"| `{name.split('::')[-1]}` | {e['passing'] + e['failing']} | {e['failing']} |"
            for name, e in sorted(p.get("examples", {}).items())]  # fmt: skip
    when = f" (run {p['date']})" if "date" in p else ""
    load = (
        f"; load average {f['load_average']['start']} at start, {f['load_average']['end']} at end (shared machine)"
        if "load_average" in f
        else ""
    )
    return "\n".join([
        f"# make fuzz, {r['date']} ({r['machine']}), profile {r['profile']}", "",
        f"Property tests{when}: {p.get('cases_tried', '-')} cases in {p.get('seconds', '-')} s; outcome {p.get('tests')}.",
        f"Fault tests ({', '.join(FAULTS)}): {f['kill_points']} kill points + the dead-run and disk-full cases in "
        f"{f.get('seconds', '-')} s; outcome {f['tests']}{load}.",
        f"Failures in this run: {len(r['failures'])}", *[f"- {x}" for x in r["failures"]], "",
        "| property | cases | failing |", "|---|---|---|", *rows, "",
    ])  # fmt: skip


if __name__ == "__main__":
    main()
