import warnings

import pytest
import torch

from softprompt.core.model import PromptedModel
from softprompt.methods import TRAINABLE, make_config
from softprompt.testing.models import FAMILIES, tiny_model

warnings.filterwarnings("ignore", message=".*Model config.*")

SOFT_METHODS = [m for m in TRAINABLE if m != "hard"]
"""Every registered trainable soft method: a new method cannot escape the invariant suite."""
FAMILY_NAMES = list(FAMILIES)


def method_config(method: str, n: int = 3):
    extra = {"dropout": 0.0} if method in ("p-tuning-v2", "prefix-tuning") else {}
    if method in ("prefix-tuning",):
        extra["mlp_hidden"] = 16
    if method == "p-tuning":
        extra["encoder_hidden"] = 8
    return make_config(method, num_virtual_tokens=n, **extra)


def make_model(family: str, methods=(), n: int = 3, seed: int = 0) -> PromptedModel:
    model = PromptedModel(tiny_model(family, seed=seed))
    for i, m in enumerate(methods):
        model.add_prompt(m.replace("-", "_"), method_config(m, n + i), seed=i)
    return model


def batch(model: PromptedModel, rows: int = 3, length: int = 6, seed: int = 0, left: bool = False):
    """Random ids with ragged lengths; returns kwargs for model(...) incl. decoder inputs for seq2seq."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, 200, (rows, length), generator=g)
    mask = torch.ones_like(ids)
    for r in range(rows):
        cut = r % 3
        if cut:
            if left:
                mask[r, :cut] = 0
            else:
                mask[r, length - cut :] = 0
    kw = {"input_ids": ids, "attention_mask": mask}
    if model.info.kind == "seq2seq":
        kw["decoder_input_ids"] = torch.randint(5, 200, (rows, 4), generator=g)
    return kw


def loss_of(model, kw, prompts):
    if model.info.kind == "seq2seq":
        return model(**kw, prompts=prompts, labels=kw["decoder_input_ids"]).loss
    labels = kw["input_ids"].masked_fill(kw["attention_mask"] == 0, -100)
    return model(**kw, prompts=prompts, labels=labels).loss


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models run fastest on one thread (two threads contend on a busy 2-core machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(params=FAMILY_NAMES)
def family(request):
    return request.param


@pytest.fixture(params=SOFT_METHODS)
def method(request):
    return request.param
