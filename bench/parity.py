"""P-tuning v2 against full fine-tuning of the same model, SmolLM2-135M (real weights) as a sequence classifier
with a trained last-token head, on Rotten Tomatoes (issue 23, "at the scale the paper covers").

    python bench/parity.py --preset parity-smollm2 --all        # grid, then each seed, one process per stage
    python bench/parity.py --preset parity-smollm2 --stage ft --seed 1    # one stage (resumes; skips what is done)
    python bench/parity.py --preset parity-smollm2 --render     # rewrite the .md from the .json
    # two chains side by side on 2 cores (1 thread each): the grid then --stage ptv2 for seeds 1 and 2, beside
    # --stage ft for seeds 0, 1, 2 (they merge into one .json)

Stages: ``grid`` (P-tuning v2 at every prompt length x lr of the preset on seed 0, scored on validation; the
best on validation is chosen), ``ptv2`` (the chosen setting on one seed) and ``ft`` (full fine-tuning on one
seed). P-tuning v2 trains with the library's loop (``train_prompts`` -> ``softprompt.training.train``); full
fine-tuning with the quality benchmark's one full fine-tuning loop (``quality_parts.full_ft``). Both use the
same training subset, batches, order, validation checks, early stopping, head class / init and test reviews.
Results: bench/results/<preset>.{json,md}, rewritten after every run (partial results survive).

The budget is reduced to fit a shared 2-core CPU machine (see PRESETS and the .md): it is not the paper's.
"""

from __future__ import annotations

import argparse
import datetime
import os
import random
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import asdict
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from quality_parts import parity_report
from quality_parts.common import SMOLLM, Recorder, machine, run_record, slug, timed_predict, train_prompts
from quality_parts.full_ft import FullFT, train_full
from quality_parts.parity_presets import PRESETS, ParityPreset
from quality_parts.parity_report import v2_label
from quality_parts.recording import read_document, same_run, versions

RESULTS = Path(__file__).resolve().parent / "results"
PART = "rt-smollm2-parity"


def _document(p: ParityPreset, path: Path) -> dict:
    doc = {
        "benchmark": "softprompt parity: P-tuning v2 vs full fine-tuning",
        "format": 2,
        "preset": p.name,
        "preset_config": _budget(p) | {"steps": p.steps},
        "seeds": list(p.seeds),
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": machine(),
        "versions": versions(),
        "parts": {},
    }
    old = read_document(path)
    if old and same_run(old, doc):
        doc["parts"] = old.get("parts", {})
        doc["first_started"] = old.get("first_started", old.get("date"))
    return doc


def _split(p: ParityPreset):
    from softprompt.data import load_dataset

    data = load_dataset("rotten-tomatoes")
    train = random.Random(p.subset_seed).sample(list(data.train), min(p.train_n, len(data.train)))
    return data, train, data.validation[: p.val_n], data.test[: p.test_n]


def _task(model, data, p: ParityPreset, seed: int):
    from softprompt.tasks import make_task

    torch.manual_seed(seed)  # the head's initial weights: the same for both sides of one seed
    return make_task(model, data.spec, template="{text}", head=p.pool, max_length=p.max_length)


def _load_avg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _add(rec: Recorder, run: dict) -> None:
    """Record ``run`` after taking in the runs another stage process recorded meanwhile (two stages may run
    side by side, e.g. a seed's chain beside another's; each owns the part and would otherwise write over)."""
    disk = read_document(rec.json_path) or {}
    mine = rec.part(PART)
    have = {(r["label"], r["library"], r["seed"]) for r in mine["runs"]}
    theirs = disk.get("parts", {}).get(PART, {})
    mine["runs"] += [r for r in theirs.get("runs", []) if (r["label"], r["library"], r["seed"]) not in have]
    mine.setdefault("chosen", theirs.get("chosen"))
    rec.add_run(PART, run)


def prompt_run(rec: Recorder, model, p: ParityPreset, split, setting: tuple, seed: int, work: Path) -> None:
    from softprompt.methods import make_config
    from softprompt.training import TrainJob

    n, lr, head_lr, *mlp = setting
    reparameterize = bool(mlp and mlp[0])
    label = v2_label(*setting)
    if rec.done(PART, label, "softprompt", seed):
        return
    data, train, val, test = split
    t0, load0 = time.perf_counter(), _load_avg()
    name = slug(label)
    if name in model.bank:
        model.bank.remove(name)
    model.add_prompt(
        name, make_config("p-tuning-v2", num_virtual_tokens=n, reparameterize=reparameterize), seed=seed
    )
    task = _task(model, data, p, seed)
    job = TrainJob(prompt=name, task=task, train=train, validation=val)
    result, losses, curve = train_prompts(
        model, job, steps=p.steps, batch=p.batch, lr=lr, seed=seed, out=work / f"{name}-{seed}",
        eval_every=p.eval_every, patience=p.patience, head_lr=head_lr,
    )  # fmt: skip
    _, metrics, secs = timed_predict(model, task, test, name, 32)
    model.bank.remove(name)
    total = sum(q.numel() for q in model.backbone.parameters()) + result.trainable_params
    _add(
        rec,
        run_record(
            label=label, library="softprompt", method="p-tuning-v2", seed=seed, metric=task.main_metric,
            value=metrics[task.main_metric], params=result.trainable_params, train_s=result.train_time_s,
            steps=result.steps, eval_s=secs, n_eval=len(test), lr=lr, head_lr=head_lr, virtual_tokens=n, reparameterize=reparameterize, metrics=metrics,
            losses=losses[-5:], stopped_early=result.stopped_early, total_params=total,
            curve=[{"step": c["step"], "value": c[name]} for c in curve],
            wall_s=round(time.perf_counter() - t0, 1), load_avg=[load0, _load_avg()],
        ),
    )  # fmt: skip


def ft_run(rec: Recorder, model, p: ParityPreset, split, seed: int) -> None:
    if rec.done(PART, "full fine-tuning", "torch", seed):
        return
    data, train, val, test = split
    t0, load0 = time.perf_counter(), _load_avg()
    task = _task(model, data, p, seed)
    spec = FullFT(
        backbone=SMOLLM, steps=p.steps, batch=p.batch, seed=seed, lr=p.ft_lr, head_lr=p.ft_head_lr,
        eval_every=p.eval_every, patience=p.patience,
    )  # fmt: skip
    out = train_full(task, train, val, test, spec)
    _add(
        rec,
        run_record(
            label="full fine-tuning", library="torch", method="full-ft", seed=seed, metric=task.main_metric,
            lr=p.ft_lr, head_lr=p.ft_head_lr, total_params=out["params"],
            wall_s=round(time.perf_counter() - t0, 1), load_avg=[load0, _load_avg()], **out,
        ),
    )  # fmt: skip


def chosen(rec: Recorder, p: ParityPreset) -> tuple | None:
    """The grid setting best on validation at its last check (ties: the earlier in the grid); None until
    every grid run of seed 0 is recorded."""
    score = {}
    for setting in p.grid:
        r = rec.done(PART, v2_label(*setting), "softprompt", 0)
        if r is None:
            return None
        score[setting] = r["curve"][-1]["value"] if r.get("curve") else float("-inf")
    best = max(p.grid, key=lambda k: (score[k], -p.grid.index(k)))
    rec.part(PART)["chosen"] = {
        "length": best[0], "lr": best[1], "head_lr": best[2], "mlp": bool(best[3:] and best[3]), "on_seed": 0,
        "validation": {v2_label(*k): v for k, v in score.items()},
    }  # fmt: skip
    return best


def part_config(p: ParityPreset) -> dict:
    return {"model": SMOLLM, "dataset": "rotten-tomatoes", **_budget(p), "steps": p.steps}


def _budget(p: ParityPreset) -> dict:
    return {k: v for k, v in asdict(p).items() if k != "full_ft_from"}


def _base(p: ParityPreset, out: Path) -> Path | None:
    """A trial preset's full fine-tuning results file (see ``ParityPreset.full_ft_from``)."""
    return out / f"{p.full_ft_from}.json" if p.full_ft_from else None


def run_stage(p: ParityPreset, stage: str, seed: int, out: Path) -> int:
    from softprompt.core.loading import load_model

    path = out / f"{p.name}.json"
    base = _base(p, out)

    def render(data: dict) -> str:
        return parity_report.markdown(data, parity_report.full_ft_runs(base) if base else None)

    rec = Recorder(json_path=path, render=render, data=_document(p, path))
    rec.start(PART, part_config(p))
    model = load_model(SMOLLM)
    split = _split(p)
    rec.part(PART)["sizes"] = {"train": len(split[1]), "validation": len(split[2]), "test": len(split[3])}
    with tempfile.TemporaryDirectory(prefix="softprompt-parity-") as work:
        if stage == "grid":
            for setting in p.grid:
                prompt_run(rec, model, p, split, setting, 0, Path(work))
            print(f"chosen on validation: {chosen(rec, p)}", flush=True)
        elif stage == "ptv2":
            best = chosen(rec, p)
            if best is None:
                print("the grid (seed 0) is not finished: run --stage grid first", file=sys.stderr)
                return 2
            prompt_run(rec, model, p, split, best, seed, Path(work))
        else:
            ft_run(rec, model, p, split, seed)
    rec.part(PART)["status"] = "running"
    rec.save()
    return 0


def plan(p: ParityPreset) -> list[tuple[str, int]]:
    """Stages in the order ``--all`` runs them: the grid (seed 0), full fine-tuning seed 0, then per seed the
    chosen P-tuning v2 setting and full fine-tuning."""
    rest = [(s, seed) for seed in p.seeds[1:] for s in ("ptv2", "ft")]
    return [("grid", 0), ("ft", p.seeds[0]), *rest]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", choices=list(PRESETS), default="parity-smollm2")
    ap.add_argument("--stage", choices=("grid", "ptv2", "ft"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--all", action="store_true", help="every stage, each in its own process, in order")
    ap.add_argument("--render", action="store_true", help="only rewrite the .md from the .json")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1: a shared machine)")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    p = PRESETS[args.preset]
    if args.render:
        return parity_report.render(args.out / f"{p.name}.json", _base(p, args.out))
    if args.all:
        for stage, seed in plan(p):
            cmd = [sys.executable, __file__, "--preset", p.name, "--stage", stage, "--seed", str(seed)]
            cmd += ["--threads", str(args.threads), "--out", str(args.out)]
            print(f"== {stage} seed {seed} ({datetime.datetime.now():%H:%M:%S})", flush=True)
            rc = subprocess.call(cmd)
            if rc:
                print(f"stage {stage} seed {seed} exited {rc}", flush=True)
        return 0
    if args.stage is None:
        ap.error("give --stage, --all or --render")
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", message=".*max_length.*")
    return run_stage(p, args.stage, args.seed, args.out)


if __name__ == "__main__":
    raise SystemExit(main())
