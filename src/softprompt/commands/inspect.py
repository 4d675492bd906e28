"""``softprompt inspect``: a trained prompt read back as words (nearest vocabulary tokens per virtual token)."""

from __future__ import annotations

import argparse

NAME = "inspect"
HELP = "read a prompt back as words: each virtual token's nearest vocabulary tokens (cosine)"
EPILOG = """examples:
  softprompt inspect --prompt runs/pt                  # a table: position, norm, nearest tokens (cosine)
  softprompt inspect --prompt runs/pt -k 10 --json
Input embeddings are compared with the embedding matrix; a key/value prefix's first-layer keys with the keys
that layer gives each vocabulary token alone (deeper layers' keys and all values are contextual: not read
back); an adaption prompt lives in a top layer's hidden space and is not read back.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from softprompt.commands.common import add_model_flags

    parser.add_argument("--prompt", required=True, metavar="DIR", help="a prompt folder, or a run folder")
    parser.add_argument("--model", help="backbone (default: the one recorded with the prompt)")
    parser.add_argument("-k", type=int, default=5, help="nearest tokens per virtual token (default: 5)")
    parser.add_argument("--json", action="store_true", help="print JSON")
    add_model_flags(parser)


def run(args: argparse.Namespace) -> int:
    from softprompt.commands.backbone import load_trained
    from softprompt.commands.common import model_flags, print_json, table
    from softprompt.errors import check_range
    from softprompt.experiments.readback import read_back

    check_range("k", args.k, low=1, high=1000)
    model, name, _, _ = load_trained(args.prompt, args.model, need_task=False, **model_flags(args))
    out = read_back(model, name, k=args.k)
    if args.json:
        print_json(out)
        return 0
    print(f"{out['prompt']} ({out['method']})")
    for key, what in (("embeds", "virtual input tokens"), ("layer0_keys", "first layer's prefix keys")):
        if out[key] is None:
            continue
        rows = [
            [
                r["position"],
                f"{r['norm']:.3f}",
                "  ".join(f"{n['token']!r} {n['cosine']:.3f}" for n in r["nearest"]),
            ]
            for r in out[key]
        ]
        print(f"\n{what}:")
        print(table(rows, ["pos", "norm", "nearest tokens (cosine)"]))
    for note in out["not_read"]:
        print(f"\nnot read back: {note}")
    return 0
