import os
import warnings

import pytest
import torch
from hypothesis import HealthCheck, settings

from softprompt.core.model import PromptedModel
from softprompt.methods import METHODS, TRAINABLE, make_config
from softprompt.testing.models import FAMILIES, tiny_model

warnings.filterwarnings("ignore", message=".*Model config.*")

# Property tests: a bounded run in `make test`, a long one in `make fuzz` (HYPOTHESIS_PROFILE=fuzz).
_SLOW_OK = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture]
settings.register_profile("default", max_examples=50, deadline=None, suppress_health_check=_SLOW_OK)
settings.register_profile("fuzz", max_examples=500, deadline=None, suppress_health_check=_SLOW_OK)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

SOFT_METHODS = [m for m in TRAINABLE if METHODS[m].train is not None]
"""Every method registered when the tests start that trains (all but hard): a new method cannot escape the
invariant suite. A test file that registers its own method runs the suite for it by importing the suite's tests
and naming the method in ``METHODS_UNDER_TEST`` (tests/methods/test_one_file_method.py)."""
FAMILY_NAMES = list(FAMILIES)
REFUSED = {"adaption-prompt": {"gpt2", "bert", "roberta", "t5", "bart"}}
"""Method -> the families it refuses by design (with UnsupportedModel when added; tests/methods checks each
refusal): the invariant suite skips those pairs, naming them."""


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


@pytest.fixture(autouse=True)
def refused_pairs(request):
    """Skip a (method, family) pair the method refuses by design (``REFUSED``), naming it."""
    params = getattr(getattr(request.node, "callspec", None), "params", {})
    method, family = params.get("method"), params.get("family")
    if family in REFUSED.get(method, ()):
        pytest.skip(f"{method} refuses {family} by design (UnsupportedModel; tests/methods checks it)")


def pytest_generate_tests(metafunc):
    """A test taking ``method`` (and not parametrizing it itself) runs for every soft method, or for the
    module's ``METHODS_UNDER_TEST``."""
    own = {n for m in metafunc.definition.iter_markers("parametrize") for n in _argnames(m)}
    if "method" in metafunc.fixturenames and "method" not in own:
        metafunc.parametrize("method", getattr(metafunc.module, "METHODS_UNDER_TEST", SOFT_METHODS))


def _argnames(mark) -> list[str]:
    names = mark.args[0] if mark.args else mark.kwargs["argnames"]
    return [n.strip() for n in names.split(",")] if isinstance(names, str) else list(names)
