"""What the engine refuses, as our own exception types (the HTTP app maps each to a status code)."""

from __future__ import annotations

from softprompt.errors import ConfigError, SoftPromptError


class UnknownPrompt(ConfigError):
    """A request names a prompt the store does not hold (HTTP 404)."""

    def __init__(self, name: str, known: list[str]):
        super().__init__(f"no prompt named {name!r} is served (served: {', '.join(['base', *known])})")
        self.name = name


class BaseNotRemovable(ConfigError):
    """A request to delete ``base``, the plain backbone, which is always served (HTTP 409)."""

    def __init__(self):
        super().__init__(
            "'base' is the plain backbone (the model without a prompt), not a prompt: it is always served and "
            "cannot be deleted; DELETE /v1/prompts/{name} removes a prompt by its name"
        )


class QueueFull(SoftPromptError):
    """The bounded request queue is full (HTTP 429)."""


class RequestTimeout(SoftPromptError):
    """A request ran past its time limit (HTTP 504)."""


class Cancelled(SoftPromptError):
    """The client went away (or the server stopped) before the request finished."""
