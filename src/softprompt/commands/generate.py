"""``softprompt generate``: continue a text with a trained prompt (causal or seq2seq backbones)."""

from __future__ import annotations

import argparse
from typing import Annotated

NAME = "generate"
HELP = "generate text with a trained prompt"
EPILOG = """examples:
  softprompt generate --prompt runs/headlines --text "The city council voted on Tuesday to ..."
  softprompt generate --prompt runs/pt --text "The movie was" --max-new-tokens 10 --raw
A prompt trained for generation formats the text with its template; --raw (and any prompt trained for another
task, or recording none: PEFT imports, save_prompt) continues the text as given, after the prompt's virtual
tokens.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from softprompt.commands.common import add_model_flags

    parser.add_argument("--prompt", required=True, metavar="DIR", help="a prompt folder, or a run folder")
    parser.add_argument("--text", required=True, help="input text")
    parser.add_argument("--max-new-tokens", type=int, default=24, help="(default: 24)")
    parser.add_argument("--raw", action="store_true", help="ignore the template; continue the text as is")
    parser.add_argument(
        "--truncate",
        action="store_true",
        help="cut a text too long for the model's context (with a warning) instead of stopping with an error",
    )
    parser.add_argument("--model", help="backbone (default: the one recorded with the prompt)")
    parser.add_argument("--json", action="store_true", help="print JSON")
    add_model_flags(parser)


def run(args: argparse.Namespace) -> int:
    from annotated_types import Interval

    from softprompt.commands.backbone import load_trained
    from softprompt.commands.common import model_flags, print_json
    from softprompt.errors import ConfigError, UnsupportedModel, check_value

    check_value("max_new_tokens", args.max_new_tokens, Annotated[int, Interval(ge=1, le=4096)])
    if not args.text.strip():
        raise ConfigError('--text is empty; give the text to continue, e.g. --text "The movie was"')
    model, name, meta, task = load_trained(args.prompt, args.model, need_task=False, **model_flags(args))
    if model.info.kind not in ("causal", "seq2seq"):
        raise UnsupportedModel(
            f"generate needs a causal or seq2seq language model; {model.info.family} is {model.info.kind}"
        )
    if task is not None and meta["spec"]["task"] == "generation" and not args.raw:
        from softprompt.commands.predict import text_example
        from softprompt.tasks.generative import GenerationTask
        from softprompt.training import predict

        assert isinstance(task, GenerationTask)  # (a generation spec)
        task.max_new = args.max_new_tokens
        example = text_example(meta, args.text)
        _fit_template(model, name, task, example, args.max_new_tokens, args.truncate)
        text = predict(model, task, [example], name)[0]
    else:
        text = _continue(model, name, args.text, args.max_new_tokens, args.truncate)
    print_json({"prompt": name, "input": args.text, "output": text}) if args.json else print(text)
    return 0


def _room(model, name: str, n_input: int, max_new: int, truncate: bool) -> int | None:
    """How many input tokens fit the context with the prompt's virtual tokens and ``max_new`` new ones
    (None: no limit or they all fit). Raises InputTooLong unless ``truncate`` (then warns)."""
    import sys

    from softprompt.errors import InputTooLong
    from softprompt.tasks.base import context_limit

    limit = context_limit(model)
    virtual = model.bank.get(name).config.num_virtual_tokens
    new = max_new if model.info.kind == "causal" else 0  # seq2seq: new tokens go to the decoder
    total = n_input + virtual + new
    if limit is None or total <= limit:
        return None
    room = limit - virtual - new
    sizes = f"{n_input} input tokens + {virtual} virtual tokens + {new} new tokens = {total} positions"
    if not truncate or room < 1:
        hint = (
            "shorten the text, lower --max-new-tokens, or pass --truncate"
            if room >= 1
            else "lower --max-new-tokens"
        )
        raise InputTooLong(f"{sizes} > the model's context of {limit}; {hint}")
    print(f"softprompt: warning: {sizes} > the model's context of {limit}; kept the last {room} input tokens",
          file=sys.stderr)  # fmt: skip
    return room


def _fit_template(model, name: str, task, example: dict, max_new: int, truncate: bool) -> None:
    """Lower the task's input budget so template + virtual + new tokens fit the context."""
    kw = {k: v for k, v in task.enc_kw.items() if k in ("answer",)}
    n = len(task.template.encode(example, model.tokenizer, **kw).input_ids)
    room = _room(model, name, n, max_new, truncate)
    if room is not None:
        task.enc_kw = {**task.enc_kw, "max_length": room, "reserved": 0, "on_overflow": "truncate"}


def _continue(model, name: str, text: str, max_new_tokens: int, truncate: bool = False) -> str:
    import torch

    from softprompt.core.generation import generate

    tok = model.tokenizer
    ids = tok(text)["input_ids"]
    room = _room(model, name, len(ids), max_new_tokens, truncate)
    ids = ids[-room:] if room is not None else ids
    ids = torch.tensor([ids], device=model.backbone.get_input_embeddings().weight.device)
    model.eval()
    out = generate(
        model, ids, torch.ones_like(ids), [name], max_new_tokens=max_new_tokens, eos_token_id=tok.eos_token_id
    )[0].tolist()
    if tok.eos_token_id in out:
        out = out[: out.index(tok.eos_token_id)]
    return tok.decode(out, skip_special_tokens=True).strip()
