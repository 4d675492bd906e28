"""Which examples (and which prompt per row) make up micro-step ``k`` on process ``rank``.

The order is a pure function of (seed, epoch, position): epoch ``e`` is a ``torch.randperm`` drawn from a
generator seeded by (seed, stream, e), and micro-step ``k`` takes stream positions ``[k*B, (k+1)*B)`` (an
epoch boundary may fall inside a batch). So a resumed run needs nothing but its step counter, and every
process computes the same global batch, of which process ``r`` of ``N`` takes rows ``[r*B/N, (r+1)*B/N)``.

Two ways to train several prompts at once:

* **mixed** (the jobs share one task object and one training list): the stream runs over (example,
  prompt) pairs, each epoch showing every prompt every example once; a batch mixes rows of different
  prompts, each row naming its own.
* **separate** (anything else): each job has its own stream; a micro-step takes one batch from each job
  and the loss is the sum of the jobs' losses.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from softprompt.tasks.base import Task
    from softprompt.training.jobs import TrainJob


def permutation(n: int, seed: int, stream: int, epoch: int) -> list[int]:
    """The seeded order of ``n`` items in ``epoch`` of ``stream``."""
    digest = hashlib.sha256(f"{seed}/{stream}/{epoch}".encode()).digest()
    g = torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") >> 1)
    return torch.randperm(n, generator=g).tolist()


class Stream:
    """An endless sequence of item indices: epoch after epoch of seeded permutations of ``range(n)``."""

    def __init__(self, n: int, seed: int, stream: int = 0):
        self.n, self.seed, self.stream = n, seed, stream
        self._cache: dict[int, list[int]] = {}

    def take(self, start: int, count: int) -> list[int]:
        out = []
        for pos in range(start, start + count):
            epoch, i = divmod(pos, self.n)
            if epoch not in self._cache:
                self._cache = {epoch: permutation(self.n, self.seed, self.stream, epoch)}
            out.append(self._cache[epoch][i])
        return out


@dataclass
class Group:
    """Rows one task scores together: its examples and one prompt name per row."""

    task: Task
    examples: list[dict]
    prompts: list[str]


class Plan:
    """Micro-batches for a list of ``TrainJob``s (see the module docstring for mixed vs separate)."""

    def __init__(self, jobs: list[TrainJob], batch_size: int, seed: int, world: int = 1) -> None:
        self.jobs, self.batch, self.world = jobs, batch_size, world
        first = jobs[0]
        self.mixed = len(jobs) > 1 and all(
            j.task is first.task and (j.train is first.train or j.train == first.train) for j in jobs
        )
        if self.mixed:
            self.streams = [Stream(len(first.train) * len(jobs), seed)]
        else:
            self.streams = [Stream(len(j.train), seed, stream=i) for i, j in enumerate(jobs)]

    @property
    def mode(self) -> str:
        return "mixed" if self.mixed else "separate"

    def examples_per_micro_step(self) -> int:
        return self.batch * len(self.streams)

    def epoch(self, micro_step: int) -> int:
        return micro_step * self.batch // self.streams[0].n

    def micro_batch(self, k: int, rank: int = 0) -> list[Group]:
        """The groups process ``rank`` scores at global micro-step ``k``."""
        per = self.batch // self.world
        start = k * self.batch + rank * per
        if self.mixed:
            jobs = len(self.jobs)
            pairs = self.streams[0].take(start, per)
            return [
                Group(
                    self.jobs[0].task,
                    [self.jobs[0].train[p // jobs] for p in pairs],
                    [self.jobs[p % jobs].prompt for p in pairs],
                )
            ]
        return [
            Group(j.task, [j.train[i] for i in s.take(start, per)], [j.prompt] * per)
            for j, s in zip(self.jobs, self.streams)
        ]
