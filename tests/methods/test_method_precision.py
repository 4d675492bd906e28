"""Training every method in bf16: autocast over a float32 backbone (mixed_precision="bf16") and a bfloat16
backbone; prompts keep float32 parameters and the losses follow the float32 run's."""

import pytest
import torch

from conftest import SOFT_METHODS
from softprompt.core.model import PromptedModel
from softprompt.data import TaskSpec
from softprompt.methods import make_config
from softprompt.tasks import make_task
from softprompt.testing.models import tiny_model
from softprompt.testing.tokenizer import tiny_tokenizer
from softprompt.training import TrainConfig, TrainJob, read_log, train

SPEC = TaskSpec(
    name="toy",
    task="classification",
    text_fields=("text",),
    label_field="label",
    labels=("negative", "positive"),
    default_templates=("{text} it was {mask}",),
    default_verbalizer={"positive": ["good"], "negative": ["bad"]},
)
TRAIN = [
    {"text": f"the movie was {w}", "label": lab}
    for w, lab in [("great", "positive"), ("awful", "negative"), ("fine", "positive"), ("boring", "negative")]
    * 3
]


def _losses(method, tmp_path, *, mixed="no", dtype=torch.float32):
    backbone = tiny_model("llama").to(dtype)
    model = PromptedModel(backbone, tokenizer=tiny_tokenizer("causal"))
    model.add_prompt("p", make_config(method, num_virtual_tokens=3), seed=0)
    task = make_task(model, SPEC, virtual_tokens=3)
    config = TrainConfig(
        steps=3, batch_size=4, lr=1e-3, eval_every=0, save_every=0, log_every=1, mixed_precision=mixed
    )
    train(model, TrainJob("p", task, TRAIN, []), config, tmp_path, progress=False)
    assert all(p.dtype == torch.float32 for p in model.bank.get("p").parameters())
    return [r["loss"] for r in read_log(tmp_path) if "loss" in r]


@pytest.mark.parametrize("method", SOFT_METHODS)
def test_bf16_training_follows_the_float32_run(method, tmp_path):
    ref = _losses(method, tmp_path / "fp32")
    autocast = _losses(method, tmp_path / "autocast", mixed="bf16")
    bf16 = _losses(method, tmp_path / "bf16", dtype=torch.bfloat16)
    assert len(ref) == len(autocast) == len(bf16) == 3
    for run in (autocast, bf16):
        assert all(abs(a - b) <= 0.03 * abs(b) for a, b in zip(run, ref)), (run, ref)  # bf16: ~1 % per loss
