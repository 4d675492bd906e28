"""Where ``softprompt train`` starts without ``--template``: the zero-shot best template, soft prompts from its
lead-in text (``softprompt.tasks.choose``), printed and recorded so the user sees what was used."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from softprompt.commands.runconfig import RunSettings
    from softprompt.core.model import PromptedModel
    from softprompt.core.prompt import MethodConfig
    from softprompt.data.spec import TaskData
    from softprompt.tasks.choose import TemplateChoice
    from softprompt.training.config import TrainConfig


def choose_start(
    s: RunSettings, data: TaskData, model: PromptedModel, progress: bool
) -> tuple[TemplateChoice | None, str | None, MethodConfig, TrainConfig]:
    """(choice, template, method config, train config): without --template, the best candidate template
    scored zero-shot on the validation split (tasks.choose), soft prompts started from its lead-in."""
    import sys
    from dataclasses import replace

    from softprompt.commands.taskflags import cli_text
    from softprompt.methods import make_config
    from softprompt.tasks.base import tokenizer_of
    from softprompt.tasks.choose import choose_template

    say = (lambda line: print(line, file=sys.stderr, flush=True)) if progress else (lambda line: None)
    sizes = {k: len(v) for k, v in data.splits().items()}
    say(
        f"data: {sizes['train']:,} train / {sizes['validation']:,} validation / {sizes['test']:,} test examples"
    )
    choice = None
    if s.task.template is None and s.task.head in (None, "auto", "lm"):
        held_out = "validation" if data.validation else "train"
        choice = choose_template(
            model, data.spec, data.splits()[held_out], verbalizer=s.task.verbalizer, split=held_out,
            progress=progress,
        )  # fmt: skip
    if choice is None:  # a --template typed in a shell: \n and \t are newline and tab
        return None, cli_text(s.task.template), s.method_config, s.train
    template, fields, lr = choice.start(s.method, tokenizer_of(model), s.method_args)
    config = make_config(s.method, **fields)
    use_lr = lr is not None and "lr" not in s.train_given  # an --lr of your own wins
    say(
        f"template: {choice.full_template!r} (zero-shot {choice.metric} {choice.score:.3f} on "
        f"{choice.examples} {choice.split} examples, best of {len(choice.candidates)} candidates; "
        "--template overrides)"
    )
    if lr is not None:  # started from the lead-in text
        say(
            f"{s.method}: {config.num_virtual_tokens} virtual tokens start from {choice.soft_lead!r}"
            + (f", lr {lr:g} (--lr overrides)" if use_lr else "")
        )
    return choice, template, config, replace(s.train, lr=lr) if use_lr and lr is not None else s.train
