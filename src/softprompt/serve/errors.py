"""What the engine refuses, as our own exception types (the HTTP app maps each to a status code)."""

from __future__ import annotations

from softprompt.errors import ConfigError, SoftPromptError


class UnknownPrompt(ConfigError):
    """A request names a prompt the store does not hold (HTTP 404)."""

    def __init__(self, name: str, known: list[str]):
        super().__init__(f"no prompt named {name!r} is served (served: {', '.join(['base', *known])})")
        self.name = name


class QueueFull(SoftPromptError):
    """The bounded request queue is full (HTTP 429)."""


class RequestTimeout(SoftPromptError):
    """A request ran past its time limit (HTTP 504)."""


class Cancelled(SoftPromptError):
    """The client went away (or the server stopped) before the request finished."""
