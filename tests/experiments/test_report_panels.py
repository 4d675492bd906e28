"""The report's panels: each run's prompt read back as words in report.html and report.md (a prompt that barely
moved from its init words shows them, cosine ~1), ``--nearest 0`` leaves them out, and a run whose backbone is
gone gets a panel that says why instead of failing the report."""

import html
import json
import re
import shutil

import pytest

from commands.test_cli import write_model_dir
from softprompt.cli import main


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("panels")
    model = write_model_dir(root / "model")
    with open(root / "reviews.jsonl", "w") as f:
        for i in range(16):
            f.write(json.dumps({"text": "the movie was " + ("good" if i % 2 else "bad"),
                                "label": "positive" if i % 2 else "negative"}) + "\n")  # fmt: skip
    argv = ["train", "--model", model, "--method", "prompt-tuning", "--dataset", root / "reviews.jsonl"]
    argv += ["--template", "{text} it was {mask}", "--num-virtual-tokens", 2, "--init", "text"]
    argv += ["--init-text", "wonderful", "--steps", 1, "--lr", 1e-6, "--out", root / "pt", "--quiet"]
    assert main([str(a) for a in argv]) == 0
    return root


def _panel_rows(page: str) -> list[list[str]]:
    panels = page.split('<div class="panels">', 1)[1]
    rows = re.findall(
        r"<tr><td>(.*?)</td><td[^>]*>(\d+)</td><td[^>]*>([\d.]+)</td><td>(.*?)</td></tr>", panels
    )
    return [[html.unescape(c) for c in r] for r in rows]


def test_html_and_markdown_show_each_virtual_token_nearest_words(run, capsys):
    out = run / "report"
    assert main(["report", str(run / "pt"), "--out", str(out), "--nearest", "2"]) == 0
    rows = _panel_rows((out / "report.html").read_text())
    assert [r[:2] for r in rows] == [["input", "0"], ["input", "1"]]  # one row per virtual token
    for r in rows:  # "wonderful" cycled over both tokens; lr 1e-6 for one step keeps it the nearest word
        first, second = r[3].split(", ")
        assert first.startswith("'wonderful'") and float(first.split()[-1]) > 0.999
        assert float(second.split()[-1]) < 0.999  # k=2: a second, farther token
    md = (out / "report.md").read_text()
    assert "## Prompts read back as words" in md and "| input | 0 |" in md and "'wonderful' 1.000" in md


def test_nearest_zero_writes_no_panels(run):
    out = run / "report0"
    assert main(["report", str(run / "pt"), "--out", str(out), "--nearest", "0"]) == 0
    assert 'class="panels"' not in (out / "report.html").read_text()
    assert "read back as words" not in (out / "report.md").read_text()


def test_a_run_whose_backbone_is_gone_gets_a_panel_saying_why(run, tmp_path):
    copy = tmp_path / "pt"
    shutil.copytree(run / "pt", copy)
    for meta in copy.rglob("prompt.json"):
        doc = json.loads(meta.read_text())
        meta.write_text(json.dumps(doc | {"model": str(tmp_path / "no-such-model")}))
    assert main(["report", str(copy), "--out", str(tmp_path / "r")]) == 0
    page = (tmp_path / "r" / "report.html").read_text()
    assert "not read back:" in page and "no-such-model" in html.unescape(page)
    assert "<h2>Runs</h2>" in page  # the rest of the report is written


def test_a_prefix_panel_reads_its_first_layer_keys_and_says_what_it_does_not_read(tmp_path):
    import softprompt
    from softprompt.experiments.panels import panel_markdown, run_panels

    model = softprompt.load_model(str(write_model_dir(tmp_path / "model")))
    cfg = softprompt.make_config(
        "prefix-tuning", num_virtual_tokens=2, init="text", init_text="great", dropout=0.0
    )
    model.add_prompt("px", cfg)
    softprompt.save_prompt(model, "px", tmp_path / "px")
    (panel,) = run_panels([tmp_path / "px"], ["px"], k=2, model=model)
    assert [r["kind"] for r in panel.rows] == ["layer-0 key", "layer-0 key"]
    assert panel.rows[0]["nearest"].startswith("'great'")  # started from the model's own keys for the word
    assert panel.notes and "contextual" in panel.notes[0]
    assert "| layer-0 key | 0 |" in panel_markdown(panel)
    assert "px" in model.bank.names()  # the caller's prompt stays; the panel's copy is removed
    assert len(model.bank.names()) == 1
