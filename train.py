"""Train the GAN matting model on a dataset folder written by scripts/combine.py.

Examples
--------
    python3 train.py scripts/data                       # defaults (U-Net 32x4, 320 px crops, GAN,
                                                        # closed-form prior)
    python3 train.py scripts/data --prior none          # RGB + trimap only (ablation)
    python3 train.py scripts/data --init-from log/pretrained --lap-weight 1   # fine-tune
    python3 train.py scripts/data --run hair --steps 20000 --batch-size 16 --lr 1e-4
    python3 train.py scripts/data --no-gan               # the same generator without D (ablation)
    python3 train.py scripts/data --task plate --base-filters 16 --crop-size 256
                                                        # image + clean plate -> alpha
    python3 train.py scripts/data --encoder mobilenetv2 --mixed-precision   # on a GPU
    python3 train.py scripts/data --task trimap --crop-size 256 --base-filters 8
                                                        # image -> 3-class trimap (MobileNetV2)
    python3 scripts/duts.py --zip DUTS-TR.zip --out data/duts    # or --url URL to download
    python3 train.py data/duts --task trimap             # the trimap network on DUTS
    python3 train.py scripts/data --task plate --clips --run plate-video --steps 1000
                                                        # plate model + previous alpha, on clips
    python3 train.py --resume                            # continue the newest run where it stopped
    python3 train.py --run hair --resume --steps 40000   # continue 'hair' up to step 40000
    python3 train.py --run hair --resume --checkpoint -2 # restart from the checkpoint before last
    python3 train.py --timelapse log/hair                # log/hair/samples/*.png -> timelapse.gif
    tensorboard --logdir log                             # losses, validation metrics, samples

    # Two machines (run on each, index 0 and 1; the log folder must be shared):
    TF_CONFIG='{"cluster": {"worker": ["host1:2222", "host2:2222"]},
                "task": {"type": "worker", "index": 0}}' \\
        python3 train.py scripts/data --run big --distribute multiworker

A damaged sample (say a truncated PNG) stops training with one line naming the file and exit
status 2, after saving a checkpoint at the step reached; a damaged checkpoint given to
``--resume`` stops it with one line before anything is written.

Ctrl-C or SIGTERM stops after the current step, saves a checkpoint there and exits with 130 or
143; ``--resume`` continues from it.
"""

from __future__ import annotations

# ruff: noqa: E402 -- the imports below load TensorFlow, so its start-up must be quieted first.
from model.tf_startup import install as quiet_tensorflow

quiet_tensorflow()

import argparse
import signal
import sys
import threading
from pathlib import Path

import tensorflow as tf

from model.checkpoints import (
    CheckpointError,
    resolve_checkpoint,
    restore_generator,
    trained_runs,
)
from model.classical import PRIORS
from model.cli import ArgumentParser, fraction, non_negative_int, positive_int
from model.dataset import DatasetError
from model.losses import GAN_MODES
from model.networks import ENCODERS, NORMS, TASKS, ModelConfig
from model.networks.config import TRAINING_PRIOR
from model.training import (
    DISTRIBUTE_CHOICES,
    RunError,
    StopRequest,
    TrainSettings,
    check_data,
    is_chief,
    make_strategy,
    make_timelapse,
    older_checkpoint_hint,
    plan_run,
    read_run_config,
    train,
    write_run_config,
)


def build_parser() -> argparse.ArgumentParser:
    model, train = ModelConfig(), TrainSettings()
    parser = ArgumentParser(
        description="Train the GAN matting model (see the examples in train.py).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )

    # data
    data = parser.add_argument_group(
        "data",
        "A sample that cannot be decoded stops training: one line 'error: <file>: <problem>',"
        " exit status 2, the steps done saved. Repair or delete it (scripts/combine.py remakes a"
        " deleted sample) and --resume.",
    )
    data.add_argument(
        "data",
        nargs="?",
        help="dataset folder written by scripts/combine.py (default: scripts/data; with"
        " --resume, the run's own)",
    )
    data.add_argument(
        "--crop-size",
        type=positive_int,
        default=train.crop_size,
        help="training crop side (%(default)s)",
    )
    data.add_argument(
        "--no-augment",
        dest="augment",
        action="store_false",
        help="no colour jitter, re-composition or re-drawn trimaps",
    )
    data.add_argument(
        "--max-val-samples",
        type=non_negative_int,
        default=train.max_val_samples,
        help="validate on the first N val samples (%(default)s)",
    )

    # model
    arch = parser.add_argument_group("model (fixed for a run; --resume keeps the run's)")
    arch.add_argument(
        "--task",
        choices=TASKS,
        default=model.task,
        help="matting: image + trimap -> alpha; plate: image + clean background plate -> alpha"
        " (U-Net, no prior; plates are made from the dataset's bg/); trimap: image -> 3-class"
        " trimap (no prior, no GAN; DATA may also be images/ + masks/ or DUTS, see"
        " model/trimap_data.py) (%(default)s)",
    )
    arch.add_argument("--encoder", choices=ENCODERS, default=model.encoder, help="(%(default)s)")
    arch.add_argument(
        "--base-filters",
        type=positive_int,
        default=model.base_filters,
        help="U-Net channels at full resolution (%(default)s)",
    )
    arch.add_argument(
        "--depth", type=positive_int, default=model.depth, help="U-Net downsamplings (%(default)s)"
    )
    arch.add_argument("--norm", choices=NORMS, default=model.norm, help="(%(default)s)")
    arch.add_argument(
        "--disc-filters",
        type=positive_int,
        default=model.disc_filters,
        help="first PatchGAN layer channels (%(default)s)",
    )
    arch.add_argument(
        "--disc-layers",
        type=positive_int,
        default=model.disc_layers,
        help="PatchGAN stride-2 layers (%(default)s)",
    )
    arch.add_argument(
        "--encoder-weights",
        choices=("imagenet", "none"),
        default=model.encoder_weights or "none",
        help="MobileNetV2 start weights, from Keras' cache ~/.keras/models (%(default)s)",
    )
    arch.add_argument(
        "--prior",
        choices=(*PRIORS, "none"),
        default=TRAINING_PRIOR,
        help="classical matte the generator sees and corrects; needs the dataset's prior/"
        " folder, which scripts/combine.py writes (%(default)s)",
    )

    # optimisation
    optim = parser.add_argument_group("optimisation")
    length = optim.add_mutually_exclusive_group()
    length.add_argument(
        "--epochs",
        type=positive_int,
        default=train.epochs,
        help="passes over the train split (%(default)s)",
    )
    length.add_argument(
        "--steps", type=non_negative_int, help="train until this global step instead"
    )
    optim.add_argument(
        "--batch-size",
        type=positive_int,
        default=train.batch_size,
        help="crops per replica per step (%(default)s)",
    )
    optim.add_argument(
        "--lr", type=float, default=train.lr, help="Adam learning rate (%(default)s)"
    )
    optim.add_argument("--seed", type=int, default=train.seed, help="(%(default)s)")
    optim.add_argument(
        "--mixed-precision", action="store_true", help="float16 compute with loss scaling (GPU)"
    )
    optim.add_argument("--jit", action="store_true", help="XLA-compile the train step")
    optim.add_argument(
        "--distribute",
        choices=DISTRIBUTE_CHOICES,
        default=train.distribute,
        help="mirrored: all local GPUs; multiworker: TF_CONFIG cluster (%(default)s)",
    )

    # losses and GAN
    gan = parser.add_argument_group("losses and GAN")
    gan.add_argument("--no-gan", dest="gan", action="store_false", help="train the generator alone")
    gan.add_argument(
        "--d-coeff",
        type=float,
        default=train.d_coeff,
        help="weight of the adversarial loss (%(default)s)",
    )
    gan.add_argument("--gan-mode", choices=GAN_MODES, default=train.gan_mode, help="(%(default)s)")
    gan.add_argument(
        "--alpha-weight", type=float, default=train.alpha_weight, help="alpha L1 (%(default)s)"
    )
    gan.add_argument(
        "--comp-weight",
        type=float,
        default=train.comp_weight,
        help="composition L1 (%(default)s)",
    )
    gan.add_argument(
        "--grad-weight",
        type=float,
        default=train.grad_weight,
        help="alpha-gradient L1, forward differences (%(default)s)",
    )
    gan.add_argument(
        "--sobel-weight",
        type=float,
        default=train.sobel_weight,
        help="L1 between Sobel gradient magnitudes of predicted and true alpha (%(default)s)",
    )
    gan.add_argument(
        "--lap-weight",
        type=float,
        default=train.lap_weight,
        help="Laplacian-pyramid L1, 5 levels; crop sides must be multiples of 16 (%(default)s)",
    )

    # checkpoints
    ckpt = parser.add_argument_group("checkpoints")
    ckpt.add_argument("--log-dir", default="log", help="where runs live (%(default)s)")
    ckpt.add_argument("--run", help="run name under --log-dir (default: run-<date>-<time>)")
    ckpt.add_argument(
        "--resume",
        action="store_true",
        help="continue --run (default: the newest run) from its newest checkpoint; one that"
        " cannot be restored stops with one line suggesting --checkpoint -2, nothing written",
    )
    ckpt.add_argument(
        "--checkpoint",
        default="-1",
        help="with --resume: -1 newest, -2 the one before, N the one saved at step N, or a"
        " path (%(default)s)",
    )
    ckpt.add_argument(
        "--init-from",
        metavar="CHECKPOINT",
        help="a new run starts its generator from this checkpoint's (same selectors as"
        " --checkpoint; a run directory or log/pretrained works); layers that gained input"
        " channels get zeros for them",
    )
    ckpt.add_argument(
        "--save-every",
        type=positive_int,
        default=train.save_every,
        help="checkpoint every N steps (%(default)s)",
    )
    ckpt.add_argument(
        "--keep", type=positive_int, default=train.keep, help="checkpoints kept (%(default)s)"
    )

    # video clips
    clips = parser.add_argument_group(
        "video clips (--task plate --clips: model.training.clip_run; its own defaults for"
        " --crop-size 128, --batch-size 4, --lr 1e-4, --save-every 50, --steps 400)"
    )
    clips.add_argument(
        "--clips",
        action="store_true",
        help="fine-tune a plate model (--init-from, default log/pretrained-plate) on short clips,"
        " feeding it its own previous alpha",
    )
    clips.add_argument("--clip-frames", type=positive_int, default=4, help="frames per clip (4)")
    clips.add_argument(
        "--temporal-weight", type=float, default=1.0, help="temporal-difference L1 (1.0)"
    )
    clips.add_argument(
        "--previous-drop", type=fraction, default=0.15, help="chance a frame gets none (0.15)"
    )
    clips.add_argument(
        "--max-minutes", type=float, default=0.0, help="stop after this wall time (0: none)"
    )

    # logging
    logs = parser.add_argument_group("logging")
    logs.add_argument(
        "--val-every",
        type=non_negative_int,
        default=train.val_every,
        help="validate every N steps, 0 never (%(default)s)",
    )
    logs.add_argument(
        "--image-every",
        type=non_negative_int,
        default=train.image_every,
        help="sample strip every N steps, 0 never (%(default)s)",
    )
    logs.add_argument(
        "--image-samples",
        type=non_negative_int,
        default=train.image_samples,
        help="val samples in each strip (%(default)s)",
    )
    logs.add_argument(
        "--log-every",
        type=positive_int,
        default=train.log_every,
        help="average losses over N steps for TensorBoard (%(default)s)",
    )
    logs.add_argument("--quiet", action="store_true", help="no progress bar")
    logs.add_argument(
        "--timelapse",
        nargs="?",
        const="",
        metavar="RUN_DIR",
        help="assemble RUN_DIR/samples/*.png (default: --run, else the newest run) into"
        " RUN_DIR/timelapse.gif and exit",
    )
    return parser


def _explicit(parser: argparse.ArgumentParser, argv: list[str], dests) -> set[str]:
    """The dests the command line set (so that --resume can tell them from defaults)."""
    # argparse fills in a default only where the namespace lacks the attribute.
    unset = object()
    given = parser.parse_args(argv, namespace=argparse.Namespace(**dict.fromkeys(dests, unset)))
    return {dest for dest, value in vars(given).items() if value is not unset}


def _install_signal_handlers(stop: StopRequest) -> dict:
    """SIGINT and SIGTERM request a stop after the current step; a second one acts at once."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    previous = {}

    def handler(signum, frame):
        stop.request(signum)
        signal.signal(signum, previous[signum])
        name = signal.Signals(signum).name
        print(f"\n{name}: stopping after this step (send it again to abort)", file=sys.stderr)

    for signum in (signal.SIGINT, signal.SIGTERM):
        previous[signum] = signal.signal(signum, handler)
    return previous


def _timelapse(opts: argparse.Namespace) -> int:
    if opts.timelapse:
        run_dir = Path(opts.timelapse)
    elif opts.run:
        run_dir = Path(opts.log_dir) / opts.run
    else:
        runs = trained_runs(opts.log_dir)
        if not runs:
            print(f"error: {opts.log_dir}: no run to make a timelapse of", file=sys.stderr)
            return 2
        run_dir = runs[0]
    try:
        path = make_timelapse(run_dir)
    except RunError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(path)
    return 0


def _resume_hint(data: Path, run_dir: Path) -> str:
    return f"python3 train.py {data} --run {run_dir.name} --log-dir {run_dir.parent} --resume"


def main(args: list[str] | None = None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if args is None else list(args)
    opts = parser.parse_args(argv)
    explicit = _explicit(parser, argv, vars(opts))
    if opts.task in ("plate", "trimap") and "prior" not in explicit:
        opts.prior = "none"  # the plate generator and the trimap network have no prior
    if opts.task == "trimap" and "encoder" not in explicit:
        opts.encoder = "mobilenetv2"  # ImageNet features carry over to real photos
    if opts.timelapse is not None:
        return _timelapse(opts)
    clip_only = explicit & {"clip_frames", "temporal_weight", "previous_drop", "max_minutes"}
    if clip_only and not opts.clips:
        flag = "--" + sorted(clip_only)[0].replace("_", "-")
        parser.error(f"{flag} is for clip training: add --task plate --clips")
    if opts.clips:
        if opts.task != "plate":
            parser.error("--clips needs --task plate")
        from model.training.clip_run import run_clip_training

        return run_clip_training(opts, explicit)

    try:
        data, run_dir, cfg, settings, ref = plan_run(opts, explicit)
        check_data(data, settings, cfg)
        source = None
        if ref is None and settings.init_from is not None:
            source_ref = resolve_checkpoint(settings.init_from, opts.log_dir)
            source = restore_generator(source_ref, read_run_config(source_ref.run_dir)[0])
        strategy = make_strategy(settings.distribute)
        chief = is_chief(strategy)
    except (RunError, CheckpointError, DatasetError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2

    replicas = strategy.num_replicas_in_sync
    where = (
        f"{replicas} replica(s), global batch {replicas * settings.batch_size},"
        f" {'chief' if chief else 'worker'}"
    )
    if ref is not None:
        print(f"resuming {run_dir} from step {ref.step} ({ref.path}); {where}", file=sys.stderr)
    else:
        print(f"training {run_dir}; {where}", file=sys.stderr)
    stop = StopRequest()
    previous = _install_signal_handlers(stop)
    try:
        result = train(
            data,
            run_dir,
            cfg,
            settings,
            resume=ref.path if ref else None,
            init_from=source,
            strategy=strategy,
            stop=stop,
            progress=not opts.quiet,
            # Only once the checkpoint is restored: a damaged one leaves config.json as it was.
            on_restored=(lambda: write_run_config(run_dir, cfg, settings, data)) if chief else None,
        )
    except CheckpointError as error:
        hint = older_checkpoint_hint(ref) if ref and str(error).startswith(f"{ref.path}:") else ""
        print(f"error: {error}{hint}", file=sys.stderr)
        return 2
    except DatasetError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"aborted; resume with: {_resume_hint(data, run_dir)}", file=sys.stderr)
        return 130
    except tf.errors.InternalError as error:
        if "mixed precision is disallowed" not in str(error):
            raise
        # XLA cannot compile the float16 gradient of bilinear upsampling (keras-team/keras#20931).
        print(
            "error: --jit with --mixed-precision: XLA cannot compile this model's float16"
            " upsampling gradient; drop one of the two flags",
            file=sys.stderr,
        )
        return 1
    except tf.errors.ResourceExhaustedError:
        print(
            f"error: out of memory at --batch-size {settings.batch_size} --crop-size"
            f" {settings.crop_size}; try smaller ones",
            file=sys.stderr,
        )
        return 1
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)

    if result.interrupted_by is not None:
        name = signal.Signals(result.interrupted_by).name
        print(
            f"interrupted by {name} at step {result.step}; saved {result.checkpoint};"
            f" resume with: {_resume_hint(data, run_dir)}",
            file=sys.stderr,
        )
        return 128 + result.interrupted_by
    if chief:
        best = ""
        if result.best_sad is not None:
            best = f"; best val SAD {result.best_sad:.4f} in {run_dir / 'best'}"
        print(f"done: step {result.step}, saved {result.checkpoint}{best}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
