"""``/v1/classify`` with ``"prompt": [a, b]``: each member's probabilities equal the library's for that prompt, the
ensemble's are their mean, and mistakes (a repeated name, an unknown one) are named."""

import httpx
import pytest
import torch

import softprompt
from softprompt.cli import main
from softprompt.commands.predict import label_probabilities

from .serving import write_model_dir, write_reviews

METHODS = {"pt": ["--method", "prompt-tuning"], "px": ["--method", "prefix-tuning", "--dropout", 0.0]}
TEXTS = ["the movie was good and great", "the movie was dull and awful", "a film"]


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    from softprompt.serve.server import BackgroundServer, build_app, build_engine

    root = tmp_path_factory.mktemp("ens")
    model_dir, data = write_model_dir(root / "model"), write_reviews(root / "reviews.jsonl")
    for name, flags in METHODS.items():
        argv = ["train", "--model", model_dir, "--dataset", data, "--out", root / "prompts" / name, *flags]
        argv += ["--steps", 2, "--batch-size", 4, "--num-virtual-tokens", 3, "--lr", 0.1, "--quiet"]
        argv += ["--verbalizer", "positive=good;negative=bad", "--eval-every", 0]
        assert main([str(a) for a in argv]) == 0
    engine = build_engine(str(model_dir), str(root / "prompts"), device="cpu")
    server = BackgroundServer(build_app(engine))
    yield {"url": server.url, "root": root}
    server.close()
    engine.stop()


def _library(root, name):
    trained = softprompt.load_trained(root / "prompts" / name)
    with torch.no_grad():
        return label_probabilities(trained.model, trained.task, [{"text": t} for t in TEXTS], trained.name, 8)


def test_members_equal_the_library_and_the_ensemble_is_their_mean(live):
    body = {"model": "pt", "input": TEXTS, "prompt": list(METHODS)}
    r = httpx.post(live["url"] + "/v1/classify", json=body, timeout=60)
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    want = {name: _library(live["root"], name) for name in METHODS}
    for i, row in enumerate(data):
        for name in METHODS:
            assert row["members"][name] == pytest.approx(want[name][i], abs=1e-5)
        mean = {k: sum(want[n][i][k] for n in METHODS) / 2 for k in ("positive", "negative")}
        assert row["scores"] == pytest.approx(mean, abs=1e-5)
        assert row["label"] == max(mean, key=mean.get) and sum(row["votes"].values()) == 2
    single = httpx.post(live["url"] + "/v1/classify", json={"model": "pt", "input": TEXTS}, timeout=60).json()
    assert (
        "members" not in single["data"][0]
    )  # without "prompt": the one prompt's raw label scores, as before


@pytest.mark.parametrize(
    "prompt,status,fragment", [(["pt", "pt"], 400, "distinct"), (["pt", "nope"], 404, "nope")]
)
def test_mistakes_are_named(live, prompt, status, fragment):
    r = httpx.post(
        live["url"] + "/v1/classify", json={"model": "pt", "input": TEXTS, "prompt": prompt}, timeout=60
    )
    assert r.status_code == status and fragment in r.json()["error"]["message"]
