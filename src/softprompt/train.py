"""Train prompts: one loop for every method (the code lives in ``softprompt.training``).

Example::

    from softprompt.train import TrainConfig, TrainJob, train, evaluate

    job = TrainJob(prompt="sst", task=task, train=data.train, validation=data.validation)
    result = train(model, job, TrainConfig(steps=200, lr=3e-2), "runs/sst")
    evaluate(model, task, data.test, "sst")   # {"accuracy": ..., "macro_f1": ...}
"""

from .training import (
    TrainConfig,
    TrainJob,
    TrainResult,
    evaluate,
    predict,
    read_log,
    train,
)

__all__ = ["TrainConfig", "TrainJob", "TrainResult", "evaluate", "predict", "read_log", "train"]
