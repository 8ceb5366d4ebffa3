"""Training: jitted epochs over optax optimizers, evaluation, checkpoints, data parallelism.

Example (the article's experiment, with ``jaxcnn train shapes``' defaults)::

    (train, test) = make_shapes()
    model = shapes_cnn()
    _, params = model.init(jax.random.key(0), (-1, 28, 28, 1))
    params, history = fit(model, params, train, optimizer=make_optimizer("adam", 0.01),
                          epochs=20, batch_size=32, key=jax.random.key(1))
    evaluate(model, params, test).accuracy  # >= 0.995

Held-out validation: ``train, val = validation_split(train, 0.1, key=...)``;
``fit(..., val=val, patience=5)`` stops early, and its result carries the
best epoch's parameters and the final optimizer state. The test split is for
the end only: it never chooses anything.

Compiled epochs are cached on the model (by value for jaxcnn's layers), the
optimizer object (``make_optimizer`` returns one per setting), the batch size
and the data shapes: equal arguments never compile twice.

See docs/training.md for the design (padded, masked batches; one compile per
epoch; exact resume; the checkpoint format) and docs/scaling.md for several
devices and several processes (``init_distributed``).
"""

from jaxcnn.train._checkpoint import (
    Checkpoint,
    CheckpointError,
    load_checkpoint,
    save_checkpoint,
)
from jaxcnn.train._config import (
    ARTICLE_SETTINGS,
    DEFAULT_WEIGHT_DECAY,
    MODEL_DEFAULTS,
    OPTIMIZERS,
    SCHEDULES,
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
from jaxcnn.train._distributed import Cluster, DistributedError, init_distributed
from jaxcnn.train._epoch import GRADS, Grads, Metrics, batch_plan, epoch_order, make_epoch_fn
from jaxcnn.train._fit import EpochEnd, FitResult, History, TrainingDivergedError, evaluate, fit
from jaxcnn.train._loss import Loss
from jaxcnn.train._precision import PRECISIONS, Precision
from jaxcnn.train._predict import predict, probabilities
from jaxcnn.train._preprocessing import Preprocessing, preprocessing
from jaxcnn.train._split import validation_split
from jaxcnn.train._stopping import MONITORS, Best, best_epoch, should_stop
from jaxcnn.train._xla_options import EPOCH_COMPILER_OPTIONS

__all__ = [
    "ARTICLE_SETTINGS",
    "DEFAULT_WEIGHT_DECAY",
    "EPOCH_COMPILER_OPTIONS",
    "GRADS",
    "MODEL_DEFAULTS",
    "MONITORS",
    "OPTIMIZERS",
    "PRECISIONS",
    "SCHEDULES",
    "Best",
    "Checkpoint",
    "CheckpointError",
    "Cluster",
    "Dataset",
    "Defaults",
    "DistributedError",
    "EpochEnd",
    "FitResult",
    "Grads",
    "History",
    "Loss",
    "Metrics",
    "Precision",
    "Preprocessing",
    "TrainConfig",
    "TrainingDivergedError",
    "batch_plan",
    "best_epoch",
    "check_dataset",
    "check_images",
    "check_input_shape",
    "effective_batch_size",
    "epoch_order",
    "evaluate",
    "fit",
    "init_distributed",
    "load_checkpoint",
    "make_epoch_fn",
    "make_optimizer",
    "output_classes",
    "predict",
    "preprocessing",
    "probabilities",
    "save_checkpoint",
    "should_stop",
    "validation_split",
]
