"""Fact probing on SmolLM2-135M: the best hand-written template vs P-tuning v1 vs prompt tuning (P@1).

As in LAMA / the P-tuning paper, each relation (capital-of, currency-of, state-of) gets its own prompt and
is scored over its own candidate objects (``spec.relation_labels``: 116 capitals, 28 currencies, 27 states);
P@1 is pooled over the test facts of all relations. The three relation prompts of a method train together
in one ``train`` call (one job each). Candidates are multi-token words, so each (fact, candidate) pair is its
own forward row: this part costs far more per example than any other (see bench/quality.py's docstring).
"""

from __future__ import annotations

import statistics
import time

import torch

from .common import SMOLLM, Context, run_record, slug, timed_predict, train_prompts

PART = "facts"
EVAL_BATCH = 2
"""Facts per scoring forward: 2 x 116 capital rows already hold ~0.7 GB of full-vocabulary logits."""
GENERIC = "The {attribute} of {subject} is {mask}."

# label -> (method, fields, lr); templates per relation from ``method_template``
METHODS: dict[str, tuple[str, dict, float]] = {
    # the demo's recipe: the hand-written words become soft tokens started at those words, through a residual
    # bi-LSTM whose last layer starts at zero, so training starts exactly at the generic template
    "P-tuning v1 (LSTM)": ("p-tuning", {"encoder": "lstm", "encoder_hidden": 64, "residual": True}, 1e-3),
    "prompt tuning": ("prompt-tuning", {"num_virtual_tokens": 8}, 1e-2),
}


def method_template(label: str, attribute: str) -> str:
    """The template ``label`` trains for a relation: P-tuning turns the generic template's words soft."""
    if label.startswith("P-tuning"):  # "The capital of {subject} is {mask}." with its words soft
        return '{soft:"The ' + attribute + ' of"} {subject}{soft:" is"} {mask}.'
    return GENERIC


def round_robin(examples: list[dict], relations: list[str], n: int) -> list[dict]:
    """The first ``n`` facts taking each relation in turn (so a small ``n`` still covers every relation)."""
    queues = {r: [e for e in examples if e["relation"] == r] for r in relations}
    out, i = [], 0
    while len(out) < n and any(i < len(q) for q in queues.values()):
        out += [q[i] for q in queues.values() if i < len(q)][: n - len(out)]
        i += 1
    return out


def run(ctx: Context) -> None:
    from softprompt.core.loading import load_model
    from softprompt.data import load_dataset

    p = ctx.preset
    model = load_model(SMOLLM)
    data = load_dataset("facts")
    spec = data.spec
    relations = sorted(spec.relation_labels)
    test = round_robin(data.test, relations, p.facts_eval or len(data.test))
    val = data.validation[: p.facts_val]
    sets = {f"generic: {GENERIC}": dict.fromkeys(relations, GENERIC)}
    for i in range(p.facts_sets):
        sets[f"relation-worded set {i + 1}"] = {r: spec.relation_templates[r][i] for r in relations}
    part = ctx.recorder.start(
        PART,
        {
            "model": SMOLLM,
            "dataset": "facts",
            "steps": p.facts_steps,
            "batch_per_relation": p.facts_batch,
            "test_examples": len(test),
            "validation_examples": len(val),
            "eval_every": p.facts_eval_every,
            "relations": {r: len(spec.relation_labels[r]) for r in relations},
            "template_sets": sets,
            "methods": {
                k: {"method": m, **f, "lr": lr, "template": method_template(k, "{attribute}")}
                for k, (m, f, lr) in METHODS.items()
            },
        },
    )
    if not part.get("templates"):
        _templates(ctx, part, model, spec, sets, test)
    for seed in ctx.seeds:
        for label in METHODS:
            if not ctx.recorder.done(PART, label, "softprompt", seed):
                one_method(ctx, model, data, relations, test, val, label, seed)


def _templates(ctx: Context, part: dict, model, spec, sets: dict, test: list[dict]) -> None:
    rows = []
    for name, by_relation in sets.items():
        score, per_rel, secs = score_set(model, spec, by_relation, test, None)
        rows.append({"template": name, "p_at_1": score, "per_relation": per_rel, "eval_s": round(secs, 2)})
        print(f"  [{PART}] template set {score:.3f} {name!r} {per_rel}", flush=True)
    values = [r["p_at_1"] for r in rows]
    part["templates"] = {
        "metric": "p_at_1",
        "examples": len(test),
        "rows": rows,
        "min": min(values),
        "median": statistics.median(values),
        "max": max(values),
    }
    ctx.recorder.save()


def _task(model, spec, template: str, relation: str, virtual: int = 0):
    from softprompt.tasks import make_task

    return make_task(
        model,
        spec,
        template=template,
        verbalizer=list(spec.relation_labels[relation]),
        virtual_tokens=virtual,
    )


def score_set(model, spec, templates: dict[str, str], test: list[dict], prompts: dict[str, str] | None):
    """(pooled P@1, P@1 per relation, seconds): each relation's facts through its template (and prompt)."""
    correct, per_rel, t0 = 0, {}, time.perf_counter()
    for r, template in templates.items():
        facts = [e for e in test if e["relation"] == r]
        if not facts:
            continue
        virtual = 0 if prompts is None else model.bank.get(prompts[r]).config.num_virtual_tokens
        task = _task(model, spec, template, r, virtual)
        _, metrics, _ = timed_predict(model, task, facts, None if prompts is None else prompts[r], EVAL_BATCH)
        per_rel[r] = round(metrics["p_at_1"], 4)
        correct += round(metrics["p_at_1"] * len(facts))
    return correct / max(len(test), 1), per_rel, time.perf_counter() - t0


def one_method(
    ctx: Context, model, data, relations: list[str], test: list[dict], val: list[dict], label: str, seed: int
) -> None:
    from softprompt.methods import make_config
    from softprompt.prompting.templates import parse_template
    from softprompt.training import TrainJob

    p = ctx.preset
    method, fields, lr = METHODS[label]
    names = {r: f"{slug(label)}_{slug(r)}" for r in relations}
    templates = {r: method_template(label, _attribute(data, r)) for r in relations}
    jobs = []
    for r in relations:
        if names[r] in model.bank:
            model.bank.remove(names[r])
        soft = parse_template(templates[r]).bind(model.tokenizer)
        n = fields.get("num_virtual_tokens", soft.num_soft)
        task = _task(model, data.spec, templates[r], r, n)
        torch.manual_seed(seed)
        model.add_prompt(
            names[r],
            make_config(method, **{"num_virtual_tokens": n, **fields}),
            seed=seed,
            init_token_ids=soft.init_token_ids(model.tokenizer),
        )
        train = [e for e in data.train if e["relation"] == r]
        v = [e for e in val if e["relation"] == r]
        jobs.append(TrainJob(prompt=names[r], task=task, train=train, validation=v))
    result, losses, curve = train_prompts(
        model,
        jobs,
        steps=p.facts_steps,
        batch=p.facts_batch,
        lr=lr,
        seed=seed,
        out=ctx.work / f"{PART}-{slug(label)}-{seed}",
        eval_every=p.facts_eval_every,
    )
    score, per_rel, secs = score_set(model, data.spec, templates, test, names)
    for name in names.values():
        model.bank.remove(name)
    ctx.recorder.add_run(
        PART,
        run_record(
            label=label,
            library="softprompt",
            method=method,
            seed=seed,
            metric="p_at_1",
            value=score,
            params=result.trainable_params,
            train_s=result.train_time_s,
            steps=result.steps,
            eval_s=secs,
            n_eval=len(test),
            lr=lr,
            per_relation=per_rel,
            templates=templates,
            losses=losses,
            curve=_pooled(curve, names, val),
        ),
    )


def _pooled(curve: list[dict], names: dict[str, str], val: list[dict]) -> list[dict]:
    """Validation P@1 pooled over the relations (each weighted by its validation facts), per check."""
    n = {r: sum(e["relation"] == r for e in val) for r in names}
    total = sum(n.values()) or 1
    return [
        {"step": c["step"], "value": round(sum(c.get(names[r], 0.0) * n[r] for r in names) / total, 4)}
        for c in curve
    ]


def _attribute(data, relation: str) -> str:
    return next(e["attribute"] for e in data.train if e["relation"] == relation)
