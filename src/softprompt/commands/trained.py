"""Loading a trained prompt for a command: ``tasks.trained.load_trained`` with the backbone loaded the way every
command loads it (``--model`` / ``--device`` / ``--dtype``, and their error messages)."""

from __future__ import annotations

from softprompt.commands.devices import load_backbone
from softprompt.errors import ConfigError


def load_trained(
    path: str,
    model_name: str | None,
    *,
    device: str = "auto",
    dtype: str = "float32",
    **task,
):
    """(model, prompt name, metadata, task) for a saved prompt; ``task``: the keywords of ``read_trained``.

    The folder is read and checked before the model loads, so a broken prompt.json fails fast.
    """
    from softprompt.tasks.trained import load_trained as load
    from softprompt.tasks.trained import read_trained

    plan = read_trained(path, **task)
    model_name = model_name or plan.model_name
    if not model_name:
        raise ConfigError(f"{plan.folder} does not record its model; pass --model")
    return load(plan, load_backbone(model_name, device=device, dtype=dtype))
