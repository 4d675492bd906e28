"""A method registered for the length of a ``with`` block: a test file's own method, so that the other test files
(collected in the same process) see only the built-in ones."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from softprompt.core.prompt import _REGISTRY, Method, register


@contextmanager
def registered(method: Method) -> Iterator[Method]:
    """``softprompt.register(method)``, undone when the block ends."""
    register(method)
    try:
        yield method
    finally:
        _REGISTRY.pop(method.name, None)
