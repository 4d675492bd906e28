"""Serving many prompts on one frozen backbone: the engine (scheduler, continuous batching) and the HTTP API.

- ``store``: the prompt store (prompt folders and run folders of a directory; each load gets a new version).
- ``batch``: a running batch of generation rows on one KV cache that rows join and leave between steps.
- ``engine``: the scheduler thread that owns the model; completions and classification requests.
- ``intake``: an API call made a checked request (token ids, lengths, the prompt), before it is queued.
- ``app``: the OpenAI-compatible FastAPI app; ``ray_app``: the same app as a Ray Serve deployment.
"""

from softprompt.serve.engine import Engine
from softprompt.serve.limits import EngineConfig
from softprompt.serve.store import PromptStore

__all__ = ["Engine", "EngineConfig", "PromptStore"]
