"""Helpers of the serve tests: a tiny Llama + word-level tokenizer saved to a folder, and a prompts folder holding 8 prompts of mixed
methods (one of them a real `softprompt train` run folder with a classification task)."""

import json
import random
from pathlib import Path

import torch

from softprompt.core.generation import generate
from softprompt.serve.server import BackgroundServer

POS = ["good", "great", "fine", "excellent", "amazing", "wonderful"]
NEG = ["bad", "awful", "boring", "terrible", "poor", "dull"]
WORDS = ["the", "movie", "was", "good", "and", "it", "is", "not", "a", "bad", "film", "i", "you", "this"]
CHAT = (
    "{% for m in messages %}{{ m['role'] }} : {{ m['content'] }} . {% endfor %}"
    "{% if add_generation_prompt %}assistant :{% endif %}"
)
PROMPTS = {  # name -> (method, config fields, saved form)
    "pt": ("prompt-tuning", {"num_virtual_tokens": 4}, "training"),
    "pt_long": ("prompt-tuning", {"num_virtual_tokens": 9}, "training"),
    "ptune": ("p-tuning", {"num_virtual_tokens": 3, "encoder_hidden": 8}, "training"),
    "prefix": ("prefix-tuning", {"num_virtual_tokens": 5, "mlp_hidden": 16, "dropout": 0.0}, "inference"),
    "v2": ("p-tuning-v2", {"num_virtual_tokens": 4, "dropout": 0.0}, "training"),
    "hard": ("hard", {}, "training"),
    "static": ("prompt-tuning", {"num_virtual_tokens": 6}, "inference"),
}


def write_model_dir(path: Path) -> Path:
    from softprompt.testing.models import tiny_model
    from softprompt.testing.tokenizer import tiny_tokenizer

    tiny_model("llama").save_pretrained(path)
    tok = tiny_tokenizer("causal")
    tok.chat_template = CHAT
    tok.save_pretrained(path)
    return path


def write_reviews(path: Path, n: int = 24) -> Path:
    rng = random.Random(0)
    with open(path, "w") as f:
        for i in range(n):
            word = rng.choice(POS if i % 2 == 0 else NEG)
            f.write(
                json.dumps(
                    {"text": f"the movie was {word}", "label": "positive" if i % 2 == 0 else "negative"}
                )
            )
            f.write("\n")
    return path


def write_prompts(root: Path, model_dir: Path) -> Path:
    from softprompt.cli import main
    from softprompt.core.loading import load_model
    from softprompt.files.prompts import save_prompt
    from softprompt.methods import make_config

    model = load_model(str(model_dir))
    for i, (name, (method, fields, form)) in enumerate(PROMPTS.items()):
        model.add_prompt(name, make_config(method, **fields), seed=i)
        with torch.no_grad():  # random prompts far from the init, so each changes the output
            for p in model.bank.get(name).parameters():
                p.add_(torch.randn(p.shape, generator=torch.Generator().manual_seed(i)) * 0.5)
        save_prompt(model, name, root / name, form=form)
    data = write_reviews(root.parent / "reviews.jsonl")
    argv = [
        "train",
        "--model",
        model_dir,
        "--method",
        "prompt-tuning",
        "--dataset",
        data,
        "--out",
        root / "run",
    ]
    argv += ["--steps", 2, "--batch-size", 4, "--num-virtual-tokens", 3, "--lr", 0.1, "--quiet"]
    argv += ["--verbalizer", "positive=good;negative=bad"]
    assert main([str(a) for a in argv]) == 0
    return root


def texts(n: int, seed: int = 0) -> list[str]:
    """``n`` short random texts (1..8 words of the tiny vocabulary)."""
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 8))) for _ in range(n)]


def alone(model, key: str | None, text: str, max_tokens: int, eos: set[int]) -> list[int]:
    """What core.generation.generate gives for this one request (cut at the first EOS)."""
    ids = torch.tensor([model.tokenizer(text)["input_ids"]])
    out = generate(model, ids, torch.ones_like(ids), [key], max_new_tokens=max_tokens)[0].tolist()
    for i, t in enumerate(out):
        if t in eos:
            return out[:i]
    return out


class LiveServer(BackgroundServer):
    """A real uvicorn server on 127.0.0.1 and a free port, plus the official openai client for it."""

    def client(self, api_key: str = "none"):
        from openai import OpenAI

        return OpenAI(base_url=self.url + "/v1", api_key=api_key, max_retries=0, timeout=60)


def start(serve_assets, hook=None, api_key=None, **limits):
    from softprompt.serve import EngineConfig
    from softprompt.serve.server import build_app, build_engine

    engine = build_engine(
        serve_assets["model"], serve_assets["prompts"], device="cpu", config=EngineConfig(**limits)
    )
    if hook is not None:
        engine.model.backbone.register_forward_pre_hook(hook)
    live = LiveServer(build_app(engine, api_key=api_key, parent="tiny-llama"))
    live.engine = engine
    return live
