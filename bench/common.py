"""Shared pieces of the side-by-side benchmarks: the data batch and the two sides (softprompt, PEFT); the machine
(its description, versions, memory) is host.py's, re-exported here.

Both sides load the same float32 SmolLM2-135M through ``softprompt.assets`` and see identical token batches.
``Side`` hides which library runs a step, so the timing loop interleaves them without asking.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import transformers

from host import machine, reset_peak_rss, rss_mib, versions  # noqa: F401  (re-exported: their home before host.py)

transformers.logging.set_verbosity_error()  # no per-load progress bars / deprecation notes in the table output
transformers.utils.logging.disable_progress_bar()
warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*")
warnings.filterwarnings(
    "ignore", message="Position ids are not supported"
)  # PEFT, on every prompt-learning call

MODEL = "smollm2-135m"

# name -> (softprompt method, softprompt fields, PEFT config class name, PEFT fields, note)
METHODS: dict[str, tuple[str, dict, str, dict, str]] = {
    "prompt-tuning": ("prompt-tuning", {}, "PromptTuningConfig", {}, "prepended input embeddings"),
    "p-tuning": (
        "p-tuning",
        {"encoder": "mlp"},
        "PromptEncoderConfig",
        {"encoder_reparameterization_type": "MLP"},
        "PromptEncoder, 3-layer MLP (PEFT's default)",
    ),
    "p-tuning-lstm": (
        "p-tuning",
        {"encoder": "lstm"},
        "PromptEncoderConfig",
        {"encoder_reparameterization_type": "LSTM"},
        "PromptEncoder, bi-LSTM + MLP (the paper)",
    ),
    "prefix-tuning": (
        "prefix-tuning",
        {"reparameterize": True, "mlp_hidden": 512, "init": "random"},  # PEFT's form: zero base prefix
        "PrefixTuningConfig",
        {"prefix_projection": True, "encoder_hidden_size": 512},
        "per-layer K/V prefix through Embedding->Linear(512)->Tanh->Linear",
    ),
    "p-tuning-v2": (
        "p-tuning-v2",
        {"init": "random"},
        "PrefixTuningConfig",
        {"prefix_projection": False},
        "per-layer K/V prefix, no reparameterization (PEFT: prefix tuning without projection)",
    ),
    "multitask-prompt-tuning": (
        "multitask-prompt-tuning",
        {"init": "random"},
        "MultitaskPromptTuningConfig",
        {"num_tasks": 1, "num_ranks": 1},
        "shared prompt x rank-1 task matrix, 1 task (PEFT: task_ids passed)",
    ),
    "adaption-prompt": (
        "adaption-prompt",
        {},
        "AdaptionPromptConfig",
        {},
        "gated prompts on every layer's attention (30 of 30), adapter_len = the virtual tokens",
    ),
}
SAME_START = ("prompt-tuning", "p-tuning", "p-tuning-lstm", "prefix-tuning")
"""Methods whose PEFT prompt is given softprompt's initial values (``copy_prompt``); the others start from
each library's own initialization (the parameter layouts differ), which does not change the cost of a step."""


# ----- data ------------------------------------------------------------------------------------------------
def tokenizer():
    from transformers import AutoTokenizer

    from softprompt.assets import resolve_model

    tok = AutoTokenizer.from_pretrained(resolve_model(MODEL))
    tok.pad_token = tok.pad_token or tok.eos_token
    return tok


def _encode(tok, ex: dict, seq_len: int, with_label: bool) -> list[int]:
    """'Review: {text}\\nSentiment: {label}' with the review cut so the whole line fits in seq_len tokens."""
    tail = tok("\nSentiment:" + (f" {ex['label']}" if with_label else ""), add_special_tokens=False)[
        "input_ids"
    ]
    head = tok("Review: " + ex["text"], add_special_tokens=False)["input_ids"]
    return head[: seq_len - len(tail)] + tail


def batches(tok, n: int, batch: int, seq_len: int, split: str = "train") -> list[dict]:
    """``n`` fixed (batch, seq_len) right-padded training batches of real Rotten Tomatoes reviews.

    Labels are the tokens themselves (-100 on padding and on each row's first token, which no prefix-only
    method can score, so every method and both libraries average over the same tokens).
    """
    from softprompt.data import load_dataset

    rows = getattr(load_dataset("rotten-tomatoes"), split)[: n * batch]
    out = []
    for i in range(n):
        ids = [_encode(tok, ex, seq_len, True) for ex in rows[i * batch : (i + 1) * batch]]
        x = torch.full((batch, seq_len), tok.pad_token_id)
        mask = torch.zeros(batch, seq_len, dtype=torch.long)
        for r, seq in enumerate(ids):
            x[r, : len(seq)] = torch.tensor(seq)
            mask[r, : len(seq)] = 1
        labels = x.masked_fill(mask == 0, -100)
        labels[:, 0] = -100
        out.append({"input_ids": x, "attention_mask": mask, "labels": labels})
    return out


def prompts_batch(tok, batch: int, seq_len: int) -> dict:
    """Left-padded 'Review: …\\nSentiment:' prompts (validation split) for generation."""
    from softprompt.data import load_dataset

    rows = load_dataset("rotten-tomatoes").validation[:batch]
    ids = [_encode(tok, ex, seq_len, False) for ex in rows]
    width = max(map(len, ids))
    x = torch.full((batch, width), tok.pad_token_id)
    mask = torch.zeros(batch, width, dtype=torch.long)
    for r, seq in enumerate(ids):
        x[r, width - len(seq) :] = torch.tensor(seq)
        mask[r, width - len(seq) :] = 1
    return {"input_ids": x, "attention_mask": mask}


# ----- the two sides ---------------------------------------------------------------------------------------
@dataclass
class Side:
    """One library's model for one method: a train step, a no-grad forward, greedy generation."""

    name: str
    model: torch.nn.Module
    params: list
    loss_fn: Callable[[dict], torch.Tensor]
    infer_fn: Callable[[dict], torch.Tensor]
    generate_fn: Callable[[dict, int], torch.Tensor]
    next_fn: Callable[[dict], torch.Tensor]
    """(B, V) next-token logits of a left-padded batch."""
    lr: float
    losses: list[float] = field(default_factory=list)
    """The loss of every train step taken, in order."""

    def __post_init__(self):
        self.opt = torch.optim.AdamW(self.params, lr=self.lr)

    def step(self, b: dict) -> float:
        self.model.train()
        self.opt.zero_grad(set_to_none=True)
        loss = self.loss_fn(b)
        loss.backward()
        self.opt.step()
        self.losses.append(float(loss.detach()))
        return self.losses[-1]

    @torch.no_grad()
    def infer(self, b: dict) -> torch.Tensor:
        self.model.eval()
        return self.infer_fn(b)

    @torch.no_grad()
    def eval_loss(self, b: dict) -> float:
        self.model.eval()
        return float(self.loss_fn(b))

    @torch.no_grad()
    def next_logits(self, b: dict) -> torch.Tensor:
        self.model.eval()
        return self.next_fn(b)

    @torch.no_grad()
    def generate(self, b: dict, new_tokens: int) -> torch.Tensor:
        self.model.eval()
        return self.generate_fn(b, new_tokens)


def softprompt_side(method: str, num_virtual_tokens: int, lr: float, seed: int) -> Side:
    from softprompt.core.generation import generate
    from softprompt.core.loading import load_model
    from softprompt.methods import make_config

    sp_method, fields, *_ = METHODS[method]
    torch.manual_seed(seed)
    m = load_model(MODEL)
    m.add_prompt("p", make_config(sp_method, num_virtual_tokens=num_virtual_tokens, **fields), seed=seed)

    def loss(b):
        return m(b["input_ids"], b["attention_mask"], prompts="p", labels=b["labels"]).loss

    def infer(b):
        return m(b["input_ids"], b["attention_mask"], prompts="p").logits

    def gen(b, n):  # eos -1 never matches: exactly n tokens, like PEFT's min_new_tokens=n
        return generate(m, b["input_ids"], b["attention_mask"], "p", max_new_tokens=n, eos_token_id=-1)

    def nxt(b):
        return m(b["input_ids"], b["attention_mask"], prompts="p").next_logits

    return Side("softprompt", m, m.trainable_parameters(), loss, infer, gen, nxt, lr)


def peft_side(method: str, num_virtual_tokens: int, lr: float, seed: int) -> Side:
    import peft
    from transformers import AutoModelForCausalLM

    from softprompt.assets import resolve_model

    _, _, cls_name, fields, _ = METHODS[method]
    torch.manual_seed(seed)
    base = AutoModelForCausalLM.from_pretrained(resolve_model(MODEL), dtype=torch.float32)
    if cls_name == "AdaptionPromptConfig":  # PEFT calls the prompt length adapter_len; adapt every layer
        length = {"adapter_len": num_virtual_tokens, "adapter_layers": base.config.num_hidden_layers}
    else:
        length = {"num_virtual_tokens": num_virtual_tokens}
    cfg = getattr(peft, cls_name)(task_type="CAUSAL_LM", **length, **fields)
    m = peft.get_peft_model(base, cfg)
    pad = base.config.pad_token_id if base.config.pad_token_id is not None else base.config.eos_token_id

    def task(b) -> dict:  # multitask prompt tuning: every row is task 0
        if cls_name != "MultitaskPromptTuningConfig":
            return {}
        return {"task_ids": torch.zeros(b["input_ids"].shape[0], dtype=torch.long)}

    def loss(b):
        return m(
            input_ids=b["input_ids"], attention_mask=b["attention_mask"], labels=b["labels"], **task(b)
        ).loss

    def infer(b):
        return m(input_ids=b["input_ids"], attention_mask=b["attention_mask"], **task(b)).logits

    def gen(b, n):
        return m.generate(
            input_ids=b["input_ids"],
            attention_mask=b["attention_mask"],
            max_new_tokens=n,
            min_new_tokens=n,
            do_sample=False,
            pad_token_id=pad,
            **task(b),
        )

    def nxt(b):  # left-padded: every row ends in the last column
        return m(input_ids=b["input_ids"], attention_mask=b["attention_mask"], **task(b)).logits[:, -1]

    return Side("peft", m, [p for p in m.parameters() if p.requires_grad], loss, infer, gen, nxt, lr)


SIDES = {"softprompt": softprompt_side, "peft": peft_side}
"""The two libraries compared, by name."""


def copy_prompt(sp: Side, pf: Side) -> None:
    """Give the PEFT prompt softprompt's initial values (module names match PEFT's), so both start equal.

    Prefix tuning on a grouped-query backbone: PEFT's embedding is (P, H_kv * D) (192 here), softprompt's is
    (P, H) (576), so the first layer is refactored: PEFT gets E' = [I_P | 0] and W1' = [(E W1^T)^T | 0], which
    gives the same pre-activations E W1^T, hence the same prefix at step 0 (the parameterizations then differ).
    """
    src = {
        ("embedding.weight" if k == "embedding" else k): v
        for k, v in sp.model.bank.get("p").state_dict().items()
    }
    base = src.pop("base", None)  # prefix tuning's fixed prefix: zero in PEFT's form, which PEFT lacks
    if base is not None and base.any():
        raise RuntimeError(
            "softprompt's prefix has a non-zero base (init='words'); PEFT has none: use init='random'"
        )
    dst = pf.model.prompt_encoder["default"]
    target = dst.state_dict()
    if set(target) ^ set(src):
        raise RuntimeError(f"prompt parameters do not map one to one: {sorted(set(target) ^ set(src))}")
    if "transform.0.weight" in src and src["embedding.weight"].shape != target["embedding.weight"].shape:
        e, w1 = src["embedding.weight"], src["transform.0.weight"]  # (P, H), (M, H)
        p, m, width = e.shape[0], w1.shape[0], target["embedding.weight"].shape[1]
        if p > width:
            raise RuntimeError(f"cannot refactor {p} virtual tokens into PEFT's width {width}")
        src["embedding.weight"] = torch.eye(p, width)
        src["transform.0.weight"] = torch.zeros(m, width)
        src["transform.0.weight"][:, :p] = (e @ w1.T).T
    dst.load_state_dict(src)
