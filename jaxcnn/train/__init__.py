"""Training: jitted epochs over optax optimizers, evaluation, checkpoints, data parallelism.

Example (the article's experiment)::

    (train, test) = make_shapes()
    model = shapes_cnn()
    _, params = model.init(jax.random.key(0), (-1, 28, 28, 1))
    params, history = fit(model, params, train, optimizer=make_optimizer("sgd", 0.25),
                          epochs=20, batch_size=32, key=jax.random.key(1), val=test)
    evaluate(model, params, test).accuracy  # >= 0.995

Compiled epochs are cached on the model (by value for jaxcnn's layers), the
optimizer object (``make_optimizer`` returns one per setting), the batch size
and the data shapes: equal arguments never compile twice.

See docs/training.md for the design (padded, masked batches; one compile per
epoch; exact resume; the checkpoint format).
"""

from jaxcnn.train._checkpoint import (
    Checkpoint,
    CheckpointError,
    load_checkpoint,
    save_checkpoint,
)
from jaxcnn.train._config import (
    MODEL_DEFAULTS,
    OPTIMIZERS,
    Defaults,
    TrainConfig,
    make_optimizer,
)
from jaxcnn.train._dataset import (
    Dataset,
    check_dataset,
    check_images,
    check_input_shape,
    effective_batch_size,
    output_classes,
)
from jaxcnn.train._epoch import GRADS, Grads, Metrics, batch_plan, epoch_order, make_epoch_fn
from jaxcnn.train._fit import EpochEnd, FitResult, History, TrainingDivergedError, evaluate, fit
from jaxcnn.train._loss import Loss
from jaxcnn.train._precision import PRECISIONS, Precision
from jaxcnn.train._predict import predict
from jaxcnn.train._xla_options import EPOCH_COMPILER_OPTIONS

__all__ = [
    "EPOCH_COMPILER_OPTIONS",
    "GRADS",
    "MODEL_DEFAULTS",
    "OPTIMIZERS",
    "PRECISIONS",
    "Checkpoint",
    "CheckpointError",
    "Dataset",
    "Defaults",
    "EpochEnd",
    "FitResult",
    "Grads",
    "History",
    "Loss",
    "Metrics",
    "Precision",
    "TrainConfig",
    "TrainingDivergedError",
    "batch_plan",
    "check_dataset",
    "check_images",
    "check_input_shape",
    "effective_batch_size",
    "epoch_order",
    "evaluate",
    "fit",
    "load_checkpoint",
    "make_epoch_fn",
    "make_optimizer",
    "output_classes",
    "predict",
    "save_checkpoint",
]
