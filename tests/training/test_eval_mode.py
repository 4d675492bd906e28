"""evaluate / predict run prompts and heads in eval mode under no_grad, and restore the caller's modes."""

import torch
from torch import nn

from conftest import make_model
from softprompt.training.evaluation import evaluate, predict


class _Task:
    """A minimal task: one dropout head; predictions record the modes seen."""

    main_metric = "seen"

    def __init__(self):
        self.head = nn.Dropout(0.5)

    def modules(self):
        return {"head": self.head}

    def collate(self, chunk):
        return chunk

    def predict(self, model, batch, prompts):
        prompt = model.bank.get(prompts[0])
        return [(torch.is_grad_enabled(), prompt.training, self.head.training) for _ in batch]

    def gold(self, examples):
        return [None] * len(examples)

    def metrics(self, preds, gold):
        return {"seen": float(sum(any(p) for p in preds))}


def test_predict_and_evaluate_run_in_eval_mode_and_restore():
    model = make_model("llama", ["p-tuning-v2"])
    task = _Task()
    model.train()
    task.head.train()
    assert predict(model, task, [{}] * 3, "p_tuning_v2", batch_size=2) == [(False, False, False)] * 3
    assert evaluate(model, task, [{}] * 2, "p_tuning_v2") == {"seen": 0.0}
    assert model.training and model.bank.get("p_tuning_v2").training and task.head.training
