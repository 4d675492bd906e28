"""``softprompt generate``: continue a text with a trained prompt (causal or seq2seq backbones)."""

from __future__ import annotations

NAME = "generate"
HELP = "generate text with a trained prompt"
EPILOG = """examples:
  softprompt generate --prompt runs/headlines --text "The city council voted on Tuesday to ..."
  softprompt generate --prompt runs/pt --text "The movie was" --max-new-tokens 10 --raw
A prompt trained for generation formats the text with its template; --raw (and any prompt trained for another
task, or recording none: PEFT imports, save_prompt) continues the text as given, after the prompt's virtual
tokens.
"""


def add_arguments(parser) -> None:
    parser.add_argument("--prompt", required=True, metavar="DIR", help="a prompt folder, or a run folder")
    parser.add_argument("--text", required=True, help="input text")
    parser.add_argument("--max-new-tokens", type=int, default=24, help="(default: 24)")
    parser.add_argument("--raw", action="store_true", help="ignore the template; continue the text as is")
    parser.add_argument("--model", help="backbone (default: the one recorded with the prompt)")
    parser.add_argument("--json", action="store_true", help="print JSON")


def run(args) -> int:
    from softprompt.commands.common import load_trained, print_json
    from softprompt.errors import UnsupportedModel, check_range

    check_range("max_new_tokens", args.max_new_tokens, low=1, high=4096)
    model, name, meta, task = load_trained(args.prompt, args.model, need_task=False)
    if model.info.kind not in ("causal", "seq2seq"):
        raise UnsupportedModel(
            f"generate needs a causal or seq2seq language model; {model.info.family} is {model.info.kind}"
        )
    if task is not None and meta["spec"]["task"] == "generation" and not args.raw:
        from softprompt.commands.predict import text_example
        from softprompt.training import predict

        task.max_new = args.max_new_tokens
        text = predict(model, task, [text_example(meta, args.text)], name)[0]
    else:
        text = _continue(model, name, args.text, args.max_new_tokens)
    print_json({"prompt": name, "input": args.text, "output": text}) if args.json else print(text)
    return 0


def _continue(model, name: str, text: str, max_new_tokens: int) -> str:
    import torch

    from softprompt.core.generation import generate

    tok = model.tokenizer
    ids = torch.tensor([tok(text)["input_ids"]], device=model.backbone.get_input_embeddings().weight.device)
    model.eval()
    out = generate(
        model, ids, torch.ones_like(ids), [name], max_new_tokens=max_new_tokens, eos_token_id=tok.eos_token_id
    )[0].tolist()
    if tok.eos_token_id in out:
        out = out[: out.index(tok.eos_token_id)]
    return tok.decode(out, skip_special_tokens=True).strip()
