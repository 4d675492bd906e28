"""bench/parity.py's summary: mean ± standard error of each side and of the gap, from recorded numbers (no
model is run)."""

import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from quality_parts import parity_report
from quality_parts.recording import run_record

V2 = "P-tuning v2 (16 tokens, lr 0.03)"


def _run(label, seed, value):
    lib = "torch" if label == "full fine-tuning" else "softprompt"
    return run_record(
        label=label, library=lib, method="m", seed=seed, metric="accuracy", value=value, params=10
    )


def _part(v2, ft):
    runs = [_run(V2, s, v) for s, v in enumerate(v2)] + [
        _run("full fine-tuning", s, v) for s, v in enumerate(ft)
    ]
    return {"chosen": {"length": 16, "lr": 3e-2}, "runs": runs}


def test_gap_and_standard_errors():
    s = parity_report.summary(_part((0.80, 0.82, 0.84), (0.83, 0.83, 0.86)))
    assert s["seeds"] == [0, 1, 2]
    assert s["p_tuning_v2"]["mean"] == pytest.approx(82.0)
    assert s["p_tuning_v2"]["se"] == pytest.approx(2 / math.sqrt(3))  # std 2.0 over 3 seeds
    assert s["gap"] == pytest.approx(-2.0)
    assert s["gap_se"] == pytest.approx(math.hypot(s["p_tuning_v2"]["se"], s["full_ft"]["se"]))
    assert s["gap_se_paired"] == pytest.approx(1 / math.sqrt(3))  # differences -3, -1, -2
    assert s["met"] is False
    md = parity_report.markdown({"parts": {parity_report.PART: _part((0.8,) * 3, (0.8,) * 3)}})
    assert "within 1 point of full fine-tuning, on 3 seed(s): met" in md


def test_only_seeds_with_both_sides_and_nothing_before_a_choice():
    s = parity_report.summary(_part((0.80, 0.90), (0.80,)))
    assert s["seeds"] == [0] and s["gap"] == pytest.approx(0.0) and s["gap_se"] == 0.0
    assert parity_report.summary({"runs": [_run(V2, 0, 0.8)]}) is None
    assert "No comparison yet" in parity_report.markdown({"parts": {}})


def test_a_reparameterized_choice_compares_its_own_runs():
    mlp = parity_report.v2_label(16, 1e-4, 1e-3, True)
    assert mlp == "P-tuning v2 (16 tokens, lr 0.0001, head lr 0.001, MLP)"
    runs = [_run(V2, 0, 0.50), _run(mlp, 0, 0.70), _run("full fine-tuning", 0, 0.75)]
    part = {"chosen": {"length": 16, "lr": 1e-4, "head_lr": 1e-3, "mlp": True}, "runs": runs}
    s = parity_report.summary(part)
    assert s["label"] == mlp and s["gap"] == pytest.approx(-5.0)


def test_a_trial_file_compares_against_the_base_files_full_fine_tuning(tmp_path):
    import json

    base = tmp_path / "base.json"
    runs = [_run("full fine-tuning", 0, 0.80), _run(V2, 0, 0.5)]
    base.write_text(json.dumps({"parts": {parity_report.PART: {"runs": runs}}}))
    name, ft = parity_report.full_ft_runs(base)
    assert name == "base.json" and [r["label"] for r in ft] == ["full fine-tuning"]
    trial = {"chosen": {"length": 16, "lr": 3e-2}, "runs": [_run(V2, 0, 0.75)]}
    assert parity_report.summary(trial) is None  # no full fine-tuning of its own
    assert parity_report.summary(trial, ft)["gap"] == pytest.approx(-5.0)
    md = parity_report.markdown({"parts": {parity_report.PART: trial}}, (name, ft))
    assert "the runs in `base.json`" in md and "-5.0" in md
    assert parity_report.full_ft_runs(tmp_path / "missing.json") == ("missing.json", [])
