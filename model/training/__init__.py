"""Training of the matting GAN: the train step, the loop, checkpoints and callbacks.

Pieces, in the order a run uses them (``train.py`` wires them together through :func:`train`),
one module each:

* ``settings`` -- :class:`TrainSettings`, every training default in one place, stored in
  ``config.json``; run folders (:func:`new_run_name`, :func:`start_run`, :func:`resume_target`).
* ``plan`` -- :func:`plan_run`: ``train.py``'s flags to a new or a resumed run (model config,
  settings, dataset, checkpoint), checked before anything is written.
* ``distribute`` -- :func:`make_strategy`: ``tf.distribute`` strategy: none, Mirrored over the
  local GPUs (or logical CPUs), or MultiWorkerMirrored from ``TF_CONFIG``.
* ``gan`` -- :class:`MattingGAN`, a ``keras.Model`` holding the generator G and the
  discriminator D (keras-io DCGAN pattern): ``compile`` takes both optimisers, ``train_step``
  runs one GAN step and returns the loss dict, ``metrics`` exposes the ``keras.metrics.Mean``
  trackers.
* ``checkpoint`` -- :class:`RunCheckpoint`: ``tf.train.Checkpoint(generator, discriminator,
  g_optimizer, d_optimizer, step)`` with a ``CheckpointManager`` for ``checkpoints/`` and one
  for ``best/``.
* ``summaries`` -- TensorBoard scalars and images.
* ``callbacks`` -- ``keras.callbacks.Callback`` subclasses: :class:`ProgressCallback` (tqdm),
  :class:`ScalarCallback` (TensorBoard), :class:`CheckpointCallback`,
  :class:`ValidationCallback` (SAD/MSE/Grad/Conn, best checkpoint), :class:`ImageCallback`
  (image grids and PNG strips for the timelapse).
* ``loop`` -- :func:`train_loop`, a custom loop rather than ``Model.fit``: checkpoints,
  interruption and resumption are exact to the step, and it runs under
  MultiWorkerMirroredStrategy, which Keras 3's ``fit`` does not support (keras-team/keras#20585).
* ``timelapse`` -- :func:`make_timelapse` from the sample strips.

Run layout (see ``model/checkpoints.py``)::

    log/<run>/config.json            {"model", "train" (TrainSettings + data), "seed", "version"}
    log/<run>/checkpoints/ckpt-<step>.index/.data-*
    log/<run>/best/ckpt-<step>.*     best validation SAD so far; best/best.json says which
    log/<run>/tensorboard/           scalars train/<loss>, val/<metric>; images samples
    log/<run>/samples/step_<step>.png
    log/<run>/validation.jsonl       one line per validation: step and the four metrics
    log/<run>/timelapse.gif          made on request by :func:`make_timelapse`

Example
-------
>>> settings = TrainSettings(steps=1000, batch_size=4, crop_size=320)
>>> run_dir = start_run("log", new_run_name("log"), ModelConfig(), settings, "scripts/data")
>>> result = train("scripts/data", run_dir, ModelConfig(), settings)
"""

# read_run_config lives with the other config.json readers; re-exported for train.py.
from model.checkpoints import read_run_config
from model.training.callbacks import (
    PANEL_HEIGHT,
    VALIDATION_KEYS,
    CheckpointCallback,
    ImageCallback,
    ProgressCallback,
    ScalarCallback,
    ValidationCallback,
    sample_strip,
)
from model.training.checkpoint import RunCheckpoint
from model.training.distribute import is_chief, make_strategy
from model.training.gan import (
    D_KEYS,
    G_KEYS,
    MattingGAN,
    build_model,
    data_seed,
    make_distributed_dataset,
    make_optimizer,
    make_train_function,
    model_inputs,
    warm_start,
)
from model.training.loop import StopRequest, TrainResult, train, train_loop
from model.training.plan import (
    MODEL_FLAGS,
    RunPlan,
    check_data,
    model_config,
    older_checkpoint_hint,
    plan_run,
)
from model.training.settings import (
    CONFIG_VERSION,
    DISTRIBUTE_CHOICES,
    RunError,
    TrainSettings,
    check_run_name,
    new_run_name,
    resume_target,
    start_run,
    write_run_config,
)
from model.training.timelapse import make_timelapse, read_validation_history

__all__ = [
    "CONFIG_VERSION",
    "DISTRIBUTE_CHOICES",
    "D_KEYS",
    "G_KEYS",
    "MODEL_FLAGS",
    "PANEL_HEIGHT",
    "VALIDATION_KEYS",
    "CheckpointCallback",
    "ImageCallback",
    "MattingGAN",
    "ProgressCallback",
    "RunCheckpoint",
    "RunError",
    "RunPlan",
    "ScalarCallback",
    "StopRequest",
    "TrainResult",
    "TrainSettings",
    "ValidationCallback",
    "build_model",
    "check_data",
    "check_run_name",
    "data_seed",
    "is_chief",
    "make_distributed_dataset",
    "make_optimizer",
    "make_strategy",
    "make_timelapse",
    "make_train_function",
    "model_config",
    "model_inputs",
    "new_run_name",
    "older_checkpoint_hint",
    "plan_run",
    "read_run_config",
    "read_validation_history",
    "resume_target",
    "sample_strip",
    "start_run",
    "train",
    "train_loop",
    "warm_start",
    "write_run_config",
]
