"""The serving engine: one scheduler thread owns the model and runs every request.

Each step (under the store's lock): expired and cancelled rows leave; waiting classification requests are scored
(up to ``classify_rows`` texts, every prompt and task in one forward: ``tasks.score_mixed``); then the running rows
decode one token together (whatever their prompts) and the joining completions advance their prefill by one chunk
of at most ``max_tokens_per_step`` tokens — both in one forward where the backbone allows (``prefill.Prefill``,
which also states the bound on the steps a joining request waits). When a group's last chunk ran, its rows take
their first token and their cache is merged into the running batch (``batch.RowBatch``). Greedy output equals
the request run alone, however its prefill was split and whatever shared its forward.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch

from softprompt.core import decoding
from softprompt.errors import SoftPromptError
from softprompt.serve import tasks
from softprompt.serve.families import new_batch
from softprompt.serve.intake import Intake
from softprompt.serve.limits import EngineConfig
from softprompt.serve.prefill import Prefill
from softprompt.serve.prometheus import Metrics
from softprompt.serve.refusals import Cancelled, QueueFull, RequestTimeout
from softprompt.serve.requests import Classification, Completion, Request
from softprompt.serve.sampling import top_logprobs
from softprompt.serve.store import PromptStore
from softprompt.tasks.base import tokenizer_of


class Engine:
    """Owns ``store.model``; ``submit`` queues a request, the scheduler thread reports through its sink."""

    def __init__(self, store: PromptStore, config: EngineConfig | None = None):
        self.store, self.model = store, store.model
        self.config = config or EngineConfig()
        self.metrics = Metrics()
        self.tok = tokenizer_of(self.model)  # (serving tokenizes every request)
        self._waiting: collections.deque[Request] = collections.deque()
        self._cond = threading.Condition()
        self._running: list[Completion] = []
        self._batch = new_batch(self.model)
        self._prefill = Prefill(self.config)  # the joining rows' prefill in progress
        self._thread: threading.Thread | None = None
        self._stop = False
        self.intake = Intake(store, self.config)
        self.eos = self.intake.eos

    # ----- lifecycle ------------------------------------------------------------------------------------
    def start(self) -> Engine:
        self.model.eval()
        self._thread = threading.Thread(target=self._loop, name="softprompt-scheduler", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=30)
        for r in [*self._waiting, *self._prefill.joining, *self._running]:
            self._fail(r, Cancelled("the server is shutting down"))

    # ----- requests (checked by ``intake``) -------------------------------------------------------------
    def completion(
        self, ids: list[int], prompt: str | None, *, sink: Callable[[dict], None], **params: Any
    ) -> Completion:
        """A checked completion request for token ``ids`` (holds its prompt version until it ends)."""
        return self.intake.completion(ids, prompt, sink=sink, **params)

    def classification(
        self, texts: list[str], prompt: str, *, sink: Callable[[dict], None]
    ) -> Classification:
        """A checked classification request (label scores of ``prompt``'s task for each text)."""
        return self.intake.classification(texts, prompt, sink=sink)

    def submit(self, req: Request) -> None:
        """Queue ``req``; QueueFull when ``max_queue`` requests already wait."""
        with self._cond:
            if len(self._waiting) >= self.config.max_queue:
                req.finished = True
                self.store.release(req.entry)
                raise QueueFull(
                    f"{len(self._waiting)} requests wait already (max_queue={self.config.max_queue})"
                )
            self._waiting.append(req)
            self.metrics.queue.set(len(self._waiting))
            self._cond.notify()

    def stats(self) -> dict:
        return {
            "waiting": len(self._waiting),
            "prefilling": len(self._prefill.joining),
            "running": len(self._running),
        }

    # ----- the scheduler --------------------------------------------------------------------------------
    def _loop(self) -> None:
        torch.set_grad_enabled(False)
        while True:
            with self._cond:
                while (
                    not self._stop and not self._waiting and not self._running and not self._prefill.joining
                ):
                    self._cond.wait(timeout=0.5)
                if self._stop:
                    return
                waiting = list(self._waiting)
            with self.store.lock:
                try:
                    self._step(waiting)
                except Exception as e:  # never let a bad batch kill the server: fail its rows, start over
                    for r in [*self._prefill.joining, *self._running]:
                        self._fail(r, e)
                    self._running, self._batch = [], new_batch(self.model)
                    self._prefill.clear()

    def _take(self, taken: Sequence[Request]) -> None:
        with self._cond:
            gone = set(map(id, taken))
            self._waiting = collections.deque(r for r in self._waiting if id(r) not in gone)
            self.metrics.queue.set(len(self._waiting))

    def _step(self, waiting: list[Request]) -> None:
        self.store.collect()
        now = time.monotonic()
        dead = [r for r in waiting if r.cancelled or r.expired(now)]
        self._take(dead)
        for r in dead:
            self._fail(r, self._why(r))
        waiting = [r for r in waiting if not (r.cancelled or r.expired(now))]
        self._classify([r for r in waiting if isinstance(r, Classification)])
        self._drop([i for i, r in enumerate(self._running) if r.cancelled or r.expired(now)])
        joining = self._prefill.joining
        if joining and all(r.cancelled or r.expired(now) for r in joining):
            for r in joining:  # nobody waits for this prefill any more
                self._fail(r, self._why(r))
            self._prefill.clear()
        last = torch.tensor([r.tokens[-1] for r in self._running]) if self._running else None
        if self._prefill.filling is None:
            self._start_filling([r for r in waiting if isinstance(r, Completion)])
        logits, joined = self._prefill.step(
            self._batch, last
        )  # (B, V) then (n, V) once the joiners' last chunk ran
        if joined:
            self._running += joined
            self.metrics.running.set(len(self._running))
        if not self._running:
            return
        self.metrics.batch.observe(len(self._running))
        step = torch.cat(logits)
        greedy = step.argmax(-1).tolist()  # one device sync per step
        t = time.monotonic()
        finished = [i for i, r in enumerate(self._running) if self._advance(r, step[i], greedy[i], t)]
        self._drop(finished)
        self.metrics.tokens_per_s.set(len(greedy) / max(time.monotonic() - now, 1e-9))

    def _start_filling(self, waiting: list[Completion]) -> None:
        """The first waiting completions start their prefill together (``Prefill.group``); a refused input fails
        them."""
        joining = self._prefill.group(waiting, self.config.max_rows - len(self._running))
        if not joining:
            return
        self._take(joining)
        try:
            self._prefill.start(self._batch, joining)
        except SoftPromptError as e:
            for r in joining:
                self._fail(r, e)

    def _why(self, r: Request) -> SoftPromptError:
        if r.cancelled:
            return Cancelled("the client disconnected")
        return RequestTimeout(f"the request took longer than request_timeout={self.config.request_timeout} s")

    def _drop(self, index: list[int]) -> None:
        if not index:
            return
        gone = set(index)
        for i in index:
            r = self._running[i]
            if not r.finished:
                self._fail(r, self._why(r))
        keep = [i for i in range(len(self._running)) if i not in gone]
        self._batch.keep(keep)
        self._running = [self._running[i] for i in keep]
        self.metrics.running.set(len(self._running))

    def _advance(self, r: Completion, logits: torch.Tensor, greedy: int, now: float) -> bool:
        """Choose and report row ``r``'s next token; True when the row is finished."""
        token = greedy if r.sampler is None else self._draw(r, logits)
        if r.first_token is None:
            r.first_token = now
            self.metrics.ttft.observe(now - r.submitted)
        r.tokens.append(token)
        self.metrics.tokens.inc()
        assert r.detok is not None  # (intake gives every completion one)
        reason = "stop" if token in r.eos else None
        text, stopped = ("", False) if reason else r.detok.add(token)
        reason = reason or ("stop" if stopped else None)
        reason = reason or ("length" if len(r.tokens) >= r.max_tokens else None)
        if reason:
            text += r.detok.flush()
        event = {"type": "token", "text": text, "token": token}
        if r.logprobs is not None:
            event["logprob"], event["top"] = top_logprobs(logits.cpu(), token, r.logprobs)
        if token not in r.eos:
            self._send(r, event)
        if reason:
            self._finish(
                r,
                {
                    "type": "done",
                    "finish_reason": reason,
                    "prompt_tokens": len(r.ids),
                    "completion_tokens": len(r.tokens),
                },
            )
        return reason is not None

    @staticmethod
    def _draw(r: Completion, logits: torch.Tensor) -> int:
        """Row ``r``'s sampled token: ``softprompt.generate``'s draw on the row alone, with its own generator."""
        so_far = torch.tensor([r.tokens], dtype=torch.long, device=logits.device)  # (1, N)
        return int(decoding.pick(logits[None], r.sampler, so_far, r.generator)[0])

    def _classify(self, waiting: list[Classification]) -> None:
        """Score the first waiting classifications (``classify_rows`` texts, at least one request) together, every
        prompt and task in one forward; when that fails, each request alone, so a bad input fails only its own."""
        reqs: list[Classification] = []
        budget = self.config.classify_rows
        for r in waiting:
            if reqs and len(r.texts) > budget:
                break
            reqs.append(r)
            budget -= len(r.texts)
        self._take(reqs)
        if not reqs:
            return
        rows = self.config.classify_rows
        try:
            out: list[torch.Tensor | None] = list(
                tasks.score_mixed(self.model, [(r.entry, r.texts) for r in reqs], rows)
            )
        except Exception:
            out = []
            for r in reqs:
                try:
                    out += tasks.score_mixed(self.model, [(r.entry, r.texts)], rows)
                except Exception as e:
                    self._fail(r, e)
                    out.append(None)
        self.metrics.batch.observe(sum(len(r.texts) for r in reqs))
        for r, scores in zip(reqs, out):
            if scores is not None:
                self._finish(r, {"type": "scores", "scores": scores.tolist()})

    # ----- reporting ------------------------------------------------------------------------------------
    def _send(self, r: Request, event: dict) -> None:
        if not r.cancelled:
            try:
                r.sink(event)
            except Exception:  # a sink whose loop is gone: treat as a disconnect
                r.cancelled = True

    def _finish(self, r: Request, event: dict) -> None:
        r.finished = True
        self._send(r, event)
        kind = "classify" if isinstance(r, Classification) else "completion"
        self.metrics.requests.labels(r.prompt, kind, "ok").inc()
        self.metrics.latency.observe(time.monotonic() - r.submitted)
        self.store.release(r.entry)

    def _fail(self, r: Request, error: Exception) -> None:
        if r.finished:
            return
        r.finished = True
        self._send(r, {"type": "error", "error": error})
        kind = "classify" if isinstance(r, Classification) else "completion"
        self.metrics.requests.labels(r.prompt, kind, type(error).__name__).inc()
        self.store.release(r.entry)
