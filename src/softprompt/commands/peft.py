"""``softprompt peft import|export``: convert between PEFT prompt checkpoints and softprompt prompt folders."""

from __future__ import annotations

import argparse

NAME = "peft"
HELP = "import a PEFT prompt checkpoint, or export a softprompt prompt to PEFT's format"
EPILOG = """examples:
  softprompt peft import --model smollm2-135m --peft ./peft-adapter --out prompts/from-peft
  softprompt peft export --prompt runs/pt/best/rotten-tomatoes --out ./peft-adapter
Import: PROMPT_TUNING, P_TUNING, PREFIX_TUNING (adapter_config.json + adapter_model.safetensors).
Export: input-token prompts as PROMPT_TUNING, key/value prefixes as PREFIX_TUNING (ejected values).
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from softprompt.commands.common import add_model_flags

    sub = parser.add_subparsers(dest="direction", required=True, metavar="import|export")
    imp = sub.add_parser("import", help="PEFT checkpoint -> softprompt prompt folder")
    imp.add_argument("--model", required=True, help="the backbone the checkpoint was trained on")
    imp.add_argument("--peft", required=True, metavar="DIR", help="PEFT checkpoint folder")
    imp.add_argument("--out", required=True, metavar="DIR", help="softprompt prompt folder to write")
    add_model_flags(imp)
    exp = sub.add_parser("export", help="softprompt prompt folder -> PEFT checkpoint")
    exp.add_argument("--prompt", required=True, metavar="DIR", help="prompt folder (or run folder)")
    exp.add_argument("--model", help="backbone (default: the one recorded with the prompt)")
    exp.add_argument("--out", required=True, metavar="DIR", help="PEFT checkpoint folder to write")
    add_model_flags(exp)


def run(args: argparse.Namespace) -> int:
    from softprompt.assets import MODELS
    from softprompt.commands.backbone import load_trained
    from softprompt.commands.common import (
        check_replaceable,
        load_backbone,
        model_flags,
        quiet_loading,
    )
    from softprompt.files.peft import import_peft
    from softprompt.files.peft_export import export_peft, peft_base
    from softprompt.files.prompts import save_prompt

    quiet_loading()
    if args.direction == "import":
        check_replaceable(args.out, ("prompt.json", "prompt.safetensors"), "prompt")
        model = load_backbone(args.model, **model_flags(args))
        name = import_peft(model, args.peft)
        recorded = peft_base(args.model) if args.model not in MODELS else args.model  # a path made absolute
        save_prompt(model, name, args.out, extra={"model": recorded, "source": f"peft:{args.peft}"})
        print(f"imported {args.peft} as {name!r} -> {args.out}")
        print(
            f"next: softprompt generate --prompt {args.out} --text '...'; eval/predict need "
            "--labels (or --verbalizer) and --template, as it records no task"
        )
        return 0
    check_replaceable(args.out, ("adapter_config.json", "adapter_model.safetensors", "README.md"), "PEFT")
    model, name, meta, _ = load_trained(args.prompt, args.model, need_task=False, **model_flags(args))
    base = peft_base(args.model or meta.get("model"))
    export_peft(model, name, args.out, base_model_name_or_path=base or "")
    print(f"exported {name!r} -> {args.out} (PEFT format; base model {base})")
    return 0
