"""The quality benchmark's results document: run-by-run resume, two processes on one file, and the goals
computed from the recorded numbers (no model is run)."""

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from quality_parts import report
from quality_parts.recording import Recorder, run_record, same_run


def _doc():
    return {"format": 2, "preset": "standard", "seeds": [0, 1, 2], "parts": {}}


def _run(label, library, seed, value, metric="accuracy"):
    return run_record(
        label=label, library=library, method="m", seed=seed, metric=metric, value=value, params=10
    )


def test_resume_keeps_runs_of_unchanged_methods_only(tmp_path):
    path = tmp_path / "quality.json"
    a = Recorder(path, report.markdown, _doc())
    a.start("rt-smollm", {"steps": 200, "methods": {"x": {"lr": 1e-2}, "y": {"lr": 1e-3}}})
    a.add_run("rt-smollm", _run("x", "softprompt", 0, 0.8))
    a.add_run("rt-smollm", _run("y", "softprompt", 0, 0.7))
    b = Recorder(path, report.markdown, json.loads(path.read_text()))
    b.start("rt-smollm", {"steps": 200, "methods": {"x": {"lr": 1e-2}, "y": {"lr": 3e-3}}})
    assert b.done("rt-smollm", "x", "softprompt", 0)["value"] == 0.8
    assert b.done("rt-smollm", "y", "softprompt", 0) is None  # its lr changed: trained again
    c = Recorder(path, report.markdown, json.loads(path.read_text()))
    c.start("rt-smollm", {"steps": 100, "methods": {"x": {"lr": 1e-2}}})
    assert c.part("rt-smollm")["runs"] == []  # another budget: a new part


def test_seeds_added_to_a_part_keep_its_runs(tmp_path):
    path = tmp_path / "quality.json"
    a = Recorder(path, report.markdown, _doc())
    a.start("rt-smollm2-parity", {"steps": 192, "seeds": [0]})
    a.add_run("rt-smollm2-parity", _run("x", "softprompt", 0, 0.8))
    b = Recorder(path, report.markdown, json.loads(path.read_text()))
    b.start("rt-smollm2-parity", {"steps": 192, "seeds": [0, 1, 2]})
    assert b.done("rt-smollm2-parity", "x", "softprompt", 0)["value"] == 0.8
    assert b.done("rt-smollm2-parity", "x", "softprompt", 1) is None
    one, three = {"format": 2, "preset": "p", "seeds": [0]}, {"format": 2, "preset": "p", "seeds": [0, 1, 2]}
    assert same_run(one, three) and not same_run(three, one)  # seeds dropped: another benchmark
    assert not same_run(one, three | {"preset": "q"})


def test_two_processes_fill_one_document(tmp_path):
    path = tmp_path / "quality.json"
    a, b = Recorder(path, report.markdown, _doc()), Recorder(path, report.markdown, _doc())
    a.start("facts", {"steps": 1})
    b.start("rt-smollm", {"steps": 2})
    a.add_run("facts", _run("P-tuning v1 (LSTM)", "softprompt", 0, 0.5, "p_at_1"))
    b.add_run("rt-smollm", _run("x", "peft", 0, 0.7))
    a.add_run("facts", _run("prompt tuning", "softprompt", 0, 0.4, "p_at_1"))
    parts = json.loads(path.read_text())["parts"]
    assert [len(parts[k]["runs"]) for k in ("facts", "rt-smollm")] == [2, 1]
    assert "rt-smollm" in path.with_suffix(".md").read_text()


def test_two_processes_fill_one_part(tmp_path):
    path = tmp_path / "quality.json"
    x, y = {"lr": 1e-2, "init_note": "n"}, {"lr": 1e-3, "init_note": "n"}
    config = {"steps": 200, "methods": {"x": x, "y": y}}
    a, b = Recorder(path, report.markdown, _doc()), Recorder(path, report.markdown, _doc())
    a.start("rt-smollm", config)  # e.g. --methods x and --methods y side by side
    b.start("rt-smollm", config)
    a.add_run("rt-smollm", _run("x", "softprompt", 0, 0.8))
    b.add_run("rt-smollm", _run("y", "softprompt", 0, 0.7))
    a.add_run("rt-smollm", _run("x", "softprompt", 1, 0.9))
    runs = json.loads(path.read_text())["parts"]["rt-smollm"]["runs"]
    assert sorted((r["label"], r["seed"], r["value"]) for r in runs) == [
        ("x", 0, 0.8),
        ("x", 1, 0.9),
        ("y", 0, 0.7),
    ]
    c = Recorder(path, report.markdown, json.loads(path.read_text()))
    c.start("rt-smollm", {**config, "methods": {"x": x, "y": {**y, "lr": 3e-3}}})
    b.add_run("rt-smollm", _run("y", "softprompt", 1, 0.6))  # b still trains y at the old lr
    c.add_run("rt-smollm", _run("x", "peft", 0, 0.5))
    kept = json.loads(path.read_text())["parts"]["rt-smollm"]["runs"]
    assert all(r["label"] != "y" for r in kept)  # c's config of y differs: b's runs of y are not merged in


def _goal(data, key):
    return next(g for g in report.goals(data) if g["goal"] == key)


def test_goals_from_numbers():
    runs = [
        _run("P-tuning (defaults)", lib, s, v)
        for lib, vals in (("softprompt", (0.80, 0.82, 0.84)), ("peft", (0.79, 0.81, 0.86)))
        for s, v in enumerate(vals)
    ]
    runs += [_run("prefix tuning (defaults: real words + MLP)", "softprompt", s, 0.70) for s in range(3)]
    data = {"parts": {"rt-smollm": {"runs": runs, "majority": 0.56}}}
    majority = _goal(data, "majority")
    assert majority["met"] is False and "+26.0" in majority["detail"] and "+14.0" in majority["detail"]
    parity = _goal(data, "parity")  # diff 0.0 points: within one standard error
    assert parity["met"] is True and "+0.0" in parity["detail"] and "within" in parity["detail"]
    runs[3:6] = [_run("P-tuning (defaults)", "peft", s, v) for s, v in enumerate((0.60, 0.61, 0.62))]
    parity = _goal(data, "parity")
    assert (
        parity["met"] is False
        and "+21.0 vs SE" in parity["detail"]
        and "softprompt above" in parity["detail"]
    )
    del runs[4:6]  # PEFT on seed 0 only: compared on that seed alone, no standard error
    parity = _goal(data, "parity")
    assert parity["met"] is None and "+20.0 (seed 0 only, no standard error)" in parity["detail"]
    assert _goal({"parts": {}}, "majority")["met"] is None


@pytest.mark.parametrize(("v2", "met"), [(0.78, True), (0.70, False)])
def test_minilm_goal_uses_the_length_trained_on_every_seed(v2, met):
    def part(v2_value):
        runs = [_run("P-tuning v2 (32 tokens)", "softprompt", 0, 0.99)]  # compared on seed 0 only
        runs += [_run("P-tuning v2 (16 tokens)", "softprompt", s, v2_value) for s in range(3)]
        runs += [_run("full fine-tuning", "torch", s, 0.785) for s in range(3)]
        return {"runs": runs}

    g = _goal({"parts": {"rt-minilm": part(v2), "punct": part(v2)}}, "minilm")
    assert g["met"] is met and "16 tokens" in g["detail"]
