"""``tf.distribute`` strategies: none, Mirrored over the local devices, or MultiWorker from
TF_CONFIG."""

from __future__ import annotations

import json
import os

import tensorflow as tf

from model.training.settings import DISTRIBUTE_CHOICES, RunError


def _tf_config_workers() -> int:
    try:
        cluster = json.loads(os.environ.get("TF_CONFIG", "{}")).get("cluster", {})
    except json.JSONDecodeError:
        raise RunError("TF_CONFIG: not valid JSON") from None
    return sum(len(tasks) for kind, tasks in cluster.items() if kind in ("chief", "worker"))


def make_strategy(kind: str = "auto") -> tf.distribute.Strategy:
    """The ``tf.distribute`` strategy for ``--distribute``.

    Create it before any other TensorFlow work: MultiWorkerMirroredStrategy must configure the
    runtime first.

    Parameters
    ----------
    kind : {"auto", "none", "mirrored", "multiworker"}
        ``none``: the default (single-device) strategy. ``mirrored``: MirroredStrategy over
        every local GPU, or every logical CPU device when there is no GPU (a test splits the
        CPU in two). ``multiworker``: MultiWorkerMirroredStrategy with the cluster in
        ``TF_CONFIG``. ``auto``: multiworker when ``TF_CONFIG`` lists more than one task,
        else mirrored with more than one GPU, else none.

    Raises
    ------
    RunError
        ``multiworker`` without a ``TF_CONFIG`` cluster.
    """
    if kind == "auto":
        if _tf_config_workers() > 1:
            kind = "multiworker"
        elif len(tf.config.list_physical_devices("GPU")) > 1:
            kind = "mirrored"
        else:
            kind = "none"
    if kind == "none":
        return tf.distribute.get_strategy()
    if kind == "mirrored":
        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy(devices=[device.name for device in devices])
    if kind == "multiworker":
        if _tf_config_workers() < 1:
            raise RunError("--distribute multiworker: TF_CONFIG names no cluster of workers")
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(f"unknown strategy {kind!r}; expected one of {DISTRIBUTE_CHOICES}")


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """True on the worker that writes logs and checkpoints (worker 0 unless a chief is named)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    if resolver.task_type == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return resolver.task_type == "worker" and resolver.task_id == 0 and not has_chief
