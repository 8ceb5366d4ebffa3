"""Training: jitted epochs over optax optimizers, evaluation, checkpoints.

Example (the article's experiment)::

    (train, test) = make_shapes()
    model = shapes_cnn()
    _, params = model.init(jax.random.key(0), (-1, 28, 28, 1))
    params, history = fit(model, params, train, optimizer=make_optimizer("sgd", 0.25),
                          epochs=20, batch_size=32, key=jax.random.key(1), val=test)
    evaluate(model, params, test).accuracy  # >= 0.995

See docs/training.md for the design (padded, masked batches; one compile per
epoch; exact resume; the checkpoint format).
"""

from jaxcnn._epoch import Metrics, batch_plan, epoch_order, evaluate, make_epoch_fn
from jaxcnn._fit import EpochEnd, FitResult, History, TrainingDivergedError, fit
from jaxcnn._run_config import TrainConfig, make_optimizer
from jaxcnn.checkpoint import Checkpoint, CheckpointError, load_checkpoint, save_checkpoint

__all__ = [
    "Checkpoint",
    "CheckpointError",
    "EpochEnd",
    "FitResult",
    "History",
    "Metrics",
    "TrainConfig",
    "TrainingDivergedError",
    "batch_plan",
    "epoch_order",
    "evaluate",
    "fit",
    "load_checkpoint",
    "make_epoch_fn",
    "make_optimizer",
    "save_checkpoint",
]
