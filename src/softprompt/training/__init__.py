"""Training: ``TrainConfig``, ``train`` (one loop for every method), ``evaluate``; the run folder layout.

``softprompt.training`` re-exports the public names; the pieces live here by concern:

    config.py      TrainConfig (checked fields)
    batches.py     which examples / prompts make up each micro-step (deterministic, resumable)
    jobs.py        TrainJob (a prompt, its task and data) and TrainResult
    loop.py        the loop on Accelerate: accumulation, clipping, evaluation, early stopping, checkpoints
    resume.py      RunState (step, best/last evaluations, early stopping) and checkpoint save / restore
    devices.py     the Accelerator: hardware checks, CPU ranks under torchrun
    evaluation.py  predict / evaluate (sharded over processes inside the loop)
    ensemble.py    predict_ensemble: N prompts scored in one mixed batch, combined
    records.py     run.json, log.jsonl, the out_dir checks
"""

from softprompt.training.config import TrainConfig
from softprompt.training.evaluation import evaluate, predict
from softprompt.training.jobs import TrainJob, TrainResult, describe_task
from softprompt.training.loop import train
from softprompt.training.records import read_log

__all__ = [
    "TrainConfig",
    "TrainJob",
    "TrainResult",
    "describe_task",
    "evaluate",
    "predict",
    "read_log",
    "train",
]
