"""Training: ``TrainConfig``, ``train`` (one loop for every method), ``evaluate``; the run folder layout.

``softprompt.train`` re-exports the public names; the pieces live here by concern:

    config.py      TrainConfig (checked fields)
    batches.py     which examples / prompts make up each micro-step (deterministic, resumable)
    jobs.py        TrainJob (a prompt, its task and data) and TrainResult
    loop.py        the loop on Accelerate: accumulation, clipping, evaluation, early stopping, checkpoints
    devices.py     the Accelerator: hardware checks, CPU ranks under torchrun
    evaluation.py  predict / evaluate (sharded over processes inside the loop)
    records.py     run.json, log.jsonl, the out_dir checks
"""

from .config import TrainConfig
from .evaluation import evaluate, predict
from .jobs import TrainJob, TrainResult, describe_task
from .loop import train
from .records import read_log

__all__ = ["TrainConfig", "TrainJob", "TrainResult", "describe_task", "evaluate", "predict", "read_log", "train"]
