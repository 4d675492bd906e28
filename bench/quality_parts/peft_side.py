"""The PEFT peer: the same soft-prompt methods in PEFT, trained exactly like softprompt trains them.

Same examples in the same order (softprompt's own ``Plan`` for the seed), same batch, steps, learning rate,
AdamW without weight decay, linear schedule with 6 % warmup, gradient clipping at 1.0, and the same loss:
the cross-entropy over label scores, a label's score being the log-probability of its verbalizer word right
after the template (mirrors ``tasks/classify.py``'s single-token path). The token ids come from the
softprompt task's own encoder, so both libraries see identical inputs.
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F

from .common import SMOLLM

ADAPTED_LAYERS = 30
"""SmolLM2-135M's depth: PEFT's adaption prompt on every layer, as softprompt's default (top 30, capped)."""


def peft_config(kind: str, *, n: int, init_text: str | None = None):
    """PEFT's config for one of our method kinds (see rt_smollm.METHODS)."""
    import peft

    from softprompt.assets import resolve_model

    common = {"task_type": "CAUSAL_LM", "num_virtual_tokens": n}
    if kind == "prompt-random":
        return peft.PromptTuningConfig(**common, prompt_tuning_init=peft.PromptTuningInit.RANDOM)
    if kind == "prompt-vocab":  # softprompt's default init: tokens sampled from the vocabulary
        return peft.PromptTuningConfig(**common, prompt_tuning_init=peft.PromptTuningInit.SAMPLE_VOCAB)
    if kind == "prompt-labels":
        return peft.PromptTuningConfig(
            **common,
            prompt_tuning_init=peft.PromptTuningInit.TEXT,
            prompt_tuning_init_text=init_text,
            tokenizer_name_or_path=str(resolve_model(SMOLLM)),
        )
    if kind == "p-tuning":
        return peft.PromptEncoderConfig(
            **common, encoder_reparameterization_type="MLP", encoder_hidden_size=128
        )
    if kind == "p-tuning-lstm":  # softprompt's default encoder: bi-LSTM + MLP as wide as the model
        return peft.PromptEncoderConfig(
            **common, encoder_reparameterization_type="LSTM", encoder_hidden_size=576
        )
    if kind == "prefix":
        return peft.PrefixTuningConfig(**common, prefix_projection=True, encoder_hidden_size=512)
    if kind == "p-tuning-v2":
        return peft.PrefixTuningConfig(**common, prefix_projection=False)
    if kind == "mpt":  # one task (task_ids 0, label_scores), rank 1, PEFT's RANDOM init
        return peft.MultitaskPromptTuningConfig(**common, num_tasks=1, num_ranks=1)
    if kind == "adaption":  # PEFT calls the prompt length adapter_len; every layer of SmolLM2 (30)
        return peft.AdaptionPromptConfig(task_type="CAUSAL_LM", adapter_len=n, adapter_layers=ADAPTED_LAYERS)
    raise ValueError(f"no PEFT config for {kind!r}")


def label_scores(model, task, batch: dict) -> torch.Tensor:
    """(B, C) label scores from PEFT's logits at the answer position (after the last real token)."""
    import peft

    from softprompt.tasks.base import pad_id, pad_rows

    enc = batch["encoded"]
    ids, mask = pad_rows([e.input_ids for e in enc], pad_id(task.tok))  # (B, L) right-padded
    extra = {}
    if isinstance(model.peft_config.get("default"), peft.MultitaskPromptTuningConfig):
        extra["task_ids"] = torch.zeros(len(enc), dtype=torch.long)  # every row is task 0
    logits = model(input_ids=ids, attention_mask=mask, **extra).logits  # (B, P + L, V) or (B, L, V)
    offset = logits.shape[1] - ids.shape[1]  # virtual input tokens PEFT prepended
    last = offset + mask.sum(1) - 1  # (B,)
    word_ids = task.table.token_ids[:, 0]  # (W,) single-token label words
    lp = logits[torch.arange(len(enc)), last].float().log_softmax(-1)[:, word_ids]  # (B, W)
    return task.table.label_scores(lp[..., None])  # (B, C)


def train_and_score(
    kind: str,
    task,
    train_examples: list[dict],
    test: list[dict],
    *,
    n: int,
    steps: int,
    batch: int,
    lr: float,
    seed: int,
    eval_batch: int = 16,
    init_text: str | None = None,
) -> dict:
    """Train a PEFT prompt of ``kind`` on ``train_examples`` with softprompt's recipe; score it on ``test``."""
    import peft
    from accelerate.utils import set_seed
    from transformers import AutoModelForCausalLM, get_scheduler

    from softprompt.assets import resolve_model
    from softprompt.training import TrainJob
    from softprompt.training.batches import Plan

    if not task.single:
        raise ValueError("the PEFT mirror scores single-token label words only")
    torch.manual_seed(seed)
    base = AutoModelForCausalLM.from_pretrained(resolve_model(SMOLLM), dtype=torch.float32)
    model = peft.get_peft_model(base, peft_config(kind, n=n, init_text=init_text))
    params = [p for p in model.parameters() if p.requires_grad]
    set_seed(seed)
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    sched = get_scheduler("linear", opt, num_warmup_steps=round(0.06 * steps), num_training_steps=steps)
    plan = Plan([TrainJob(prompt="peft", task=task, train=train_examples, validation=[])], batch, seed)
    model.train()
    losses, t0 = [], time.perf_counter()
    for k in range(steps):
        examples = plan.micro_batch(k)[0].examples
        b = task.collate(examples)
        loss = F.cross_entropy(label_scores(model, task, b), b["labels"])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad()
        sched.step()
        losses.append(round(loss.item(), 4))
    train_s = time.perf_counter() - t0
    model.eval()
    t0, preds = time.perf_counter(), []
    with torch.no_grad():
        for i in range(0, len(test), eval_batch):
            preds += label_scores(model, task, task.collate(test[i : i + eval_batch])).argmax(-1).tolist()
    metrics = task.metrics(preds, task.gold(test))
    return {
        "metrics": metrics,
        "params": sum(p.numel() for p in params),
        "train_s": train_s,
        "eval_s": time.perf_counter() - t0,
        "losses": losses,
    }
