"""Benchmark: eval.py's cut-out against pymatting closed-form matting, in seconds and peak RSS.

Each size gets one procedural test image made here with scripts/procedural.py: a ``fur``
foreground (soft strands on a silhouette) composited over a cluttered textured background, and
a trimap from ``model.compositing.trimap_from_alpha`` (kernel 15 px at 1 megapixel, scaled with
the image side). Both methods run on the same image and trimap:

* ``ours`` -- ``Matter.extract`` as ``eval.py --engine tensorflow`` runs it: the network at its
  working resolution (``--network-pixels``, 384 x 384 pixels) on the window around the unknown
  region, a guided filter back to full resolution, then pymatting's ``estimate_foreground_ml``;
  timed after an untimed warm-up run on the same image, which traces the network for its shape
  and compiles the numba kernels;
* ``ours-full-res`` -- the same with the network at full resolution (``--network-pixels 0``:
  one pass up to 2 megapixels, tiles above), for comparison;
* ``ours-onnx`` -- ``ours`` run by onnxruntime, no TensorFlow in the process: on the run's own
  ``model.onnx`` when it matches the checkpoint (what eval.py runs by default; the shipped
  snapshot's has float16 weights), else on a float32 ``scripts/export.py --format onnx``
  export made here (``eval.py --checkpoint m.onnx``);
* ``plate`` -- ``PlateMatter.extract`` as ``eval.py IMG OUT --background-plate PLATE`` runs
  it: the same photo with a plate made from its background (shifted 2 px, 6 % brighter,
  noise 0.01), the plate model at its working resolution over the whole photo, a guided filter,
  then ``estimate_foreground_ml`` around the soft edges; model from ``--plate-checkpoint``
  (newest ``--task plate`` run, else ``<log-dir>/pretrained-plate``, else random weights);
* ``closed-form`` (the baseline) -- ``pymatting.estimate_alpha_cf`` on float64 inputs as
  ``model.evaluation`` calls it, timed after a warm-up on a 64x64 crop (numba kernels).

Every method runs in a fresh subprocess, so its peak RSS (the child's VmHWM, imports, model and
warm-up included) is its own. Seconds are the median of ``--repeat`` timed runs; ``alpha s`` is
the alpha prediction part of ours (the rest is foreground estimation), and ``vs closed-form``
is seconds over closed-form's seconds at the same size.

The model is resolved like eval.py: ``--checkpoint`` (-1 newest) in ``--log-dir``, the newest
trained run, else ``<log-dir>/pretrained``. With no checkpoint at all (and the default -1) the
generator is built from the default ``ModelConfig()`` with random weights: an untrained network
takes the same time and memory.

Closed-form builds a matting Laplacian over the unknown region and solves it by conjugate
gradients; time and memory grow with it, so by default it runs only up to
``--closed-form-max-mp`` (2) megapixels, and larger sizes show ``skipped (too slow)``.

Cold start: ``eval.py docs/demo/photo.png docs/demo/trimap.png OUT`` (640x480) run as a user
runs it, a new process each time, timed from its start to its exit with OUT written: with the
default engine (the run's ``model.onnx`` on onnxruntime when it matches the checkpoint, as
for the shipped snapshot; see ``model/engine.py``), with ``--engine tensorflow``, with a fresh
``--checkpoint m.onnx`` when the default is TensorFlow, and ``rembg i`` on the same photo where
rembg is installed. Each command runs once untimed first (warm disk caches, numba's on-disk
cache), then ``--cold-start-runs`` times; the median wall time, the CPU time (user + system,
which a busy machine inflates less) and the peak RSS are reported, with the engine each ran
(from ``--verbose``) and the default over TensorFlow.

Targets: 1 MP in at most half of closed-form's time; 12 MP peak RSS <= 3 GB (3072 MB);
cold start <= 5 s.

Usage::

    python3 bench/eval.py                                # 1 MP and 12 MP, closed-form at 1 MP
    python3 bench/eval.py --sizes 1 --repeat 1           # a quick smoke run
    python3 bench/eval.py --closed-form-max-mp 12        # closed-form at 12 MP too (slow)
    python3 bench/eval.py --sizes 2048x1536 --checkpoint log/run/best
    python3 bench/eval.py --sizes 1 --cold-start-runs 5   # more cold-start samples
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parent.parent
import numpy as np  # noqa: E402

from model.checkpoints import CheckpointError, resolve_checkpoint  # noqa: E402

PRESETS = {"1": (864, 1152), "12": (3000, 4000)}
"""Megapixel labels -> (height, width); other numbers get a 4:3 frame of that many pixels."""

METHODS = ("ours", "ours-full-res", "ours-onnx", "plate", "closed-form")
OURS = {
    "ours": {"engine": "tensorflow"},
    "ours-full-res": {"engine": "tensorflow", "network_pixels": 0},
    "ours-onnx": {},
}
"""Our methods and the Matter options that make them (ours-onnx loads an .onnx file)."""
RANDOM = "random"
"""Model spec passed to a child for the untrained default generator."""

TIME_TARGET = 0.5
"""ours / closed-form seconds at 1 MP must be at most this (issue 13; the ⅓ of the RGB + trimap
generator no longer holds now that each cut-out solves its closed-form prior)."""

RSS_TARGET_MB = 3 * 1024
"""Peak RSS of ours at 12 MP must be at most this (3 GB)."""

COLD_START_TARGET = 5.0
"""Seconds from starting eval.py on the demo photo to its written cut-out (issue 17)."""

DEMO = ROOT / "docs" / "demo"

TRIMAP_KERNEL = 15
"""Unknown band kernel at 1 megapixel, scaled with the square root of the pixel count."""


def parse_sizes(text: str) -> list[tuple[int, int]]:
    """``--sizes`` tokens: megapixels (``1``, ``12``, ``0.5``) or ``WxH``; -> [(height, width)]."""
    sizes = []
    for token in filter(None, (part.strip() for part in text.split(","))):
        if token in PRESETS:
            sizes.append(PRESETS[token])
            continue
        try:
            if "x" in token.lower():
                width, height = (int(part) for part in token.lower().split("x"))
            else:
                megapixels = float(token)
                width = round(math.sqrt(megapixels * 1e6 * 4 / 3) / 16) * 16
                height = round(width * 3 / 4 / 16) * 16
        except ValueError:
            raise argparse.ArgumentTypeError(f"{token!r}: give megapixels (1, 12) or WxH") from None
        if min(width, height) < 64:
            raise argparse.ArgumentTypeError(f"{token!r}: both sides must be at least 64 pixels")
        sizes.append((height, width))
    return sizes


def make_pair(height: int, width: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A procedural test image (float32 HxWx3) and its trimap (float32 HxW, {0, 0.5, 1})."""
    from model.compositing import composite, trimap_from_alpha
    from scripts import procedural

    rng = np.random.default_rng(seed)
    colour, alpha = procedural.make_foreground("fur", rng, height, width)
    background = procedural.make_background(rng, height, width)
    image = composite(colour, alpha, background)
    kernel = max(3, round(TRIMAP_KERNEL * math.sqrt(height * width / 1e6))) | 1
    return image, trimap_from_alpha(alpha, kernel_size=kernel)


def make_plate(height: int, width: int, seed: int = 0) -> np.ndarray:
    """The plate of :func:`make_pair`'s image: its background, shifted 2 px, 6 % brighter,
    noised (sigma 0.01); float32 HxWx3."""
    from model.plate import PlatePerturbation, perturb_plate
    from scripts import procedural

    rng = np.random.default_rng(seed)
    procedural.make_foreground("fur", rng, height, width)  # the same draws as make_pair
    background = procedural.make_background(rng, height, width)
    return perturb_plate(background, PlatePerturbation(shift=(2.0, 0.0), gain=1.06, noise=0.01))


def resolve_model(checkpoint: str, log_dir: Path, task: str = "matting") -> tuple[str, str]:
    """The model spec for the children (a checkpoint prefix, or RANDOM) and a description.

    Resolved once here, so every child loads the same checkpoint even while training saves
    new ones. Raises CheckpointError for an explicit checkpoint that does not exist.
    """
    try:
        ref = resolve_checkpoint(checkpoint, log_dir, task=task)
    except CheckpointError as error:
        if str(checkpoint).strip() != "-1":
            raise
        return RANDOM, (
            f"no checkpoint under {log_dir} ({str(error).split(';')[0].split(': ', 1)[-1]}),"
            " so the default ModelConfig() with random weights, which takes the same time and"
            " memory as a trained one"
        )
    section = ref.config.get("model", {})
    arch = ", ".join(f"{key} {section[key]}" for key in ("encoder", "base_filters", "depth"))
    return str(ref.path), f"checkpoint {ref.path} (step {ref.step}; {arch})"


# ---------------------------------------------------------------------------------------------
# The child: one method, one size, in a fresh process


def peak_rss_mb() -> float:
    """This process's peak resident memory so far, in MB (VmHWM; ru_maxrss where no /proc)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def load_matter(spec: str, plate: bool = False, **options):
    """``Matter`` (``PlateMatter`` with ``plate``) for a checkpoint prefix, or the default
    generator with random weights (the plate one with base width 16, as shipped)."""
    from model.inference import Matter
    from model.plate_inference import PlateMatter

    kind = PlateMatter if plate else Matter
    engine = options.pop("engine", "auto")
    if spec != RANDOM:
        return kind.load(spec, engine=engine, **options)
    import keras

    from model.networks import ModelConfig, build_generator

    keras.utils.set_random_seed(0)
    config = ModelConfig(encoder_weights=None)
    if plate:
        config = ModelConfig(task="plate", base_filters=16, encoder_weights=None)
    return kind(build_generator(config), config, **options)


def ours_runner(spec: str, image: np.ndarray, trimap: np.ndarray, **options):
    """Load the model and warm it up on this very image (trace, numba kernels).

    Returns a function running one cut-out and returning the seconds its alpha part took.
    """
    matter = load_matter(spec, **options)
    matter.extract(image, trimap)

    def run() -> float:
        # Matter.extract's two steps, so the alpha part can be reported on its own.
        start = time.perf_counter()
        alpha = matter.predict_alpha(image, trimap)
        seconds = time.perf_counter() - start
        matter.foreground(image, trimap, alpha)
        return seconds

    return run


def plate_runner(spec: str, image: np.ndarray, plate: np.ndarray):
    """Load the plate model and warm it up on this photo; returns a function running one
    cut-out and returning the seconds its alpha part took."""
    matter = load_matter(spec, plate=True)
    matter.extract(image, plate)

    def run() -> float:
        start = time.perf_counter()
        alpha = matter.predict_alpha(image, plate)
        seconds = time.perf_counter() - start
        matter.matte(image, alpha)
        return seconds

    return run


def closed_form_runner(image: np.ndarray, trimap: np.ndarray):
    """Warm pymatting up on a 64x64 crop; returns a function running one closed-form solve."""
    from pymatting import estimate_alpha_cf

    def solve(image, trimap):
        # As model.evaluation calls it: its numba kernels are compiled for float64 only.
        return estimate_alpha_cf(image.astype(np.float64), trimap.astype(np.float64))

    crop = np.full((64, 64), 0.5, np.float32)
    crop[:16], crop[-16:] = 0.0, 1.0
    solve(image[:64, :64], crop)

    def run() -> None:
        solve(image, trimap)

    return run


def child(method: str, folder: Path, spec: str, repeat: int) -> int:
    """Time ``method`` on ``folder``/{image,trimap}.npy; print one JSON line of results."""
    image, trimap = np.load(folder / "image.npy"), np.load(folder / "trimap.npy")
    if method in OURS:
        run = ours_runner(spec, image, trimap, **OURS[method])
    elif method == "plate":
        run = plate_runner(spec, image, np.load(folder / "plate.npy"))
    else:
        run = closed_form_runner(image, trimap)
    seconds, alpha_seconds = [], []
    for _ in range(repeat):
        start = time.perf_counter()
        part = run()
        seconds.append(time.perf_counter() - start)
        if part is not None:
            alpha_seconds.append(part)
    results = {"seconds": seconds, "alpha_seconds": alpha_seconds, "peak_rss_mb": peak_rss_mb()}
    print(json.dumps(results), flush=True)
    return 0


def measure(method: str, folder: Path, spec: str, repeat: int) -> dict:
    """Run ``child`` in a fresh interpreter; returns its results, or {"error": reason}."""
    command = [sys.executable, str(Path(__file__).resolve()), "--child", method]
    command += ["--input", str(folder), "--model", spec, "--repeat", str(repeat)]
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines()
        reason = f"exit status {done.returncode}" if done.returncode > 0 else "killed"
        if done.returncode < 0:
            reason += f" by signal {-done.returncode}"
        return {"error": f"{reason}: {lines[-1] if lines else 'no output'}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def export_onnx(spec: str, folder: Path) -> tuple[str | None, str]:
    """The ONNX model of ``spec``: its run's own ``model.onnx`` when that matches the checkpoint
    (``model.engine``; the shipped snapshot's, float16 weights), else ``scripts/export.py
    --format onnx`` into ``folder``. Returns (path or None, why not)."""
    if spec == RANDOM:
        return None, "skipped (needs a checkpoint to export)"
    from model.engine import choose_export

    shipped = choose_export(resolve_checkpoint(spec), "auto", notice=lambda _: None)
    if shipped is not None:
        return str(shipped), ""
    out = folder / "m.onnx"
    command = [sys.executable, str(ROOT / "scripts" / "export.py"), "--checkpoint", spec]
    done = subprocess.run(
        [*command, "--format", "onnx", "--out", str(out)], capture_output=True, text=True, cwd=ROOT
    )
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines()
        return None, f"skipped (export failed: {lines[-1] if lines else done.returncode})"
    return str(out), ""


def cold_start(command: list[str], out: Path, runs: int) -> dict:
    """Run ``command`` once untimed, then ``runs`` times: wall and CPU seconds, peak RSS.

    Each run is a new process, timed from just before it is started until it has exited and
    ``out`` exists; ``os.wait4`` gives that one child's CPU time and peak RSS. With
    ``--verbose`` in ``command``, ``engine`` is what its start line names (``model: ...,
    onnxruntime on CPU``).
    """
    seconds, cpu, rss, engine = [], [], [], None
    for attempt in range(runs + 1):
        out.unlink(missing_ok=True)
        with tempfile.TemporaryFile() as errors:
            start = time.perf_counter()
            process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=errors)
            _, status, usage = os.wait4(process.pid, 0)
            elapsed = time.perf_counter() - start
            process.returncode = os.waitstatus_to_exitcode(status)
            errors.seek(0)
            lines = errors.read().decode(errors="replace").strip().splitlines()
        if process.returncode != 0 or not out.exists():
            return {"error": f"exit status {process.returncode}: {lines[-1] if lines else ''}"}
        for line in lines:
            if line.startswith("model: "):
                engine = line.rsplit(", ", 1)[-1]
        if attempt:  # the first run only warms the disk caches
            seconds.append(elapsed)
            cpu.append(usage.ru_utime + usage.ru_stime)
            rss.append(usage.ru_maxrss / 1024)
    return {
        "seconds": statistics.median(seconds),
        "cpu": statistics.median(cpu),
        "rss": max(rss),
        "engine": engine,
    }


DEFAULT_ROW = "eval.py (default engine)"
TENSORFLOW_ROW = "eval.py --engine tensorflow"


def cold_starts(spec: str, onnx: str | None, log_dir: Path, runs: int) -> dict[str, dict]:
    """The cold-start rows: eval.py as run by default (the run's model.onnx when it matches,
    as for the shipped snapshot), with ``--engine tensorflow``, with a fresh ``--checkpoint
    m.onnx`` when the default is not ONNX already, and rembg."""
    rows: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="bench-cold-") as temp:
        out = Path(temp) / "cutout.png"
        eval_py = [sys.executable, str(ROOT / "eval.py"), str(DEMO / "photo.png")]
        eval_py += [str(DEMO / "trimap.png"), str(out), "--log-dir", str(log_dir), "--verbose"]
        if spec == RANDOM:
            rows[DEFAULT_ROW] = rows[TENSORFLOW_ROW] = {"skipped": "skipped (no checkpoint)"}
        else:
            checkpoint = [*eval_py, "--checkpoint", spec]
            rows[DEFAULT_ROW] = cold_start(checkpoint, out, runs)
            rows[TENSORFLOW_ROW] = cold_start([*checkpoint, "--engine", "tensorflow"], out, runs)
        # When the default already runs an .onnx file, a row of its own would repeat it.
        default_onnx = (rows[DEFAULT_ROW].get("engine") or "").startswith("onnxruntime")
        if not default_onnx and onnx is None:
            rows["eval.py --checkpoint m.onnx"] = {"skipped": "skipped (no ONNX export)"}
        elif not default_onnx:
            command = [*eval_py, "--checkpoint", onnx]
            rows["eval.py --checkpoint m.onnx"] = cold_start(command, out, runs)
        rembg = shutil.which("rembg")
        if rembg is None:
            rows["rembg i"] = {
                "skipped": "skipped (rembg not installed: pip install 'rembg[cpu,cli]';"
                " it downloads its u2net weights on first use)"
            }
        else:
            rows["rembg i"] = cold_start([rembg, "i", str(DEMO / "photo.png"), str(out)], out, runs)
    return rows


def print_cold_starts(rows: dict[str, dict], runs: int) -> None:
    print(f"cold start, process start to written file (demo photo 640x480; median of {runs}):")
    header = f"| {'command':<28} | {'engine':<18} | {'seconds':>7} | {'CPU s':>6} |"
    header += f" {'peak RSS MB':>11} |"
    print(header)
    print("|" + "|".join("-" * len(cell) for cell in header.split("|")[1:-1]) + "|")
    for name, row in rows.items():
        if "seconds" not in row:
            print(f"| {name:<28} | {row.get('skipped') or 'failed: ' + row['error']}")
            continue
        engine = row["engine"] or "-"
        print(
            f"| {name:<28} | {engine:<18} | {row['seconds']:>7.2f} | {row['cpu']:>6.2f} |"
            f" {row['rss']:>11.0f} |"
        )
    default, tf_row = rows[DEFAULT_ROW], rows[TENSORFLOW_ROW]
    if "seconds" in default and "seconds" in tf_row:
        ratios = {key: default[key] / tf_row[key] for key in ("seconds", "cpu", "rss")}
        print(
            f"default / TensorFlow: {ratios['seconds']:.2f}x the time, {ratios['cpu']:.2f}x the"
            f" CPU, {ratios['rss']:.2f}x the memory"
        )
    for name, row in rows.items():
        if "seconds" in row and name.startswith("eval.py"):
            verdict = "ok" if row["seconds"] <= COLD_START_TARGET else "ABOVE TARGET"
            print(
                f"{name}: cold start {row['seconds']:.2f} s, CPU {row['cpu']:.2f} s"
                f" (target <= 5 s) {verdict}"
            )


# ---------------------------------------------------------------------------------------------
# The parent


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    group = parser.add_argument_group("benchmark")
    group.add_argument(
        "--sizes",
        nargs="+",
        default=["1", "12"],
        help="megapixels (1 = 1152x864, 12 = 4000x3000) or WxH; default: 1 12",
    )
    group.add_argument("--repeat", type=int, default=3, help="timed runs per row, median (3)")
    group.add_argument(
        "--cold-start-runs",
        type=int,
        default=3,
        help="timed eval.py cold starts per command, after one untimed (3; 0 skips them)",
    )
    group.add_argument(
        "--closed-form-max-mp",
        type=float,
        default=2.0,
        help="run closed-form only up to this many megapixels (2); it is slow above",
    )
    model = parser.add_argument_group("model")
    model.add_argument("--checkpoint", default="-1", help="as eval.py's (default: -1, newest)")
    model.add_argument("--log-dir", type=Path, default=Path("log"), help="runs folder (log)")
    model.add_argument(
        "--plate-checkpoint",
        default="-1",
        help="plate model, as eval.py's with --background-plate (default: -1)",
    )
    internal = parser.add_argument_group("internal (one measurement in a child process)")
    internal.add_argument("--child", choices=METHODS, help=argparse.SUPPRESS)
    internal.add_argument("--input", type=Path, help=argparse.SUPPRESS)
    internal.add_argument("--model", help=argparse.SUPPRESS)
    return parser


def main(args: list[str] | None = None) -> int:
    parser = build_parser()
    opts = parser.parse_args(args)
    if opts.repeat < 1 or opts.cold_start_runs < 0:
        print("error: --repeat must be >= 1 and --cold-start-runs >= 0", file=sys.stderr)
        return 2
    if opts.child:
        return child(opts.child, opts.input, opts.model, opts.repeat)
    try:
        sizes = [size for token in opts.sizes for size in parse_sizes(token)]
        spec, described = resolve_model(opts.checkpoint, opts.log_dir)
        plate_spec, plate_described = resolve_model(opts.plate_checkpoint, opts.log_dir, "plate")
    except (argparse.ArgumentTypeError, CheckpointError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(
        f"cut-out (alpha + foreground) against pymatting closed-form; model: {described};"
        f" {os.cpu_count()} CPU cores; median of {opts.repeat} timed run(s) after a warm-up,"
        " each method in a fresh process",
        flush=True,
    )
    exports = tempfile.TemporaryDirectory(prefix="bench-onnx-")
    onnx, onnx_skipped = export_onnx(spec, Path(exports.name))
    print(f"plate model: {plate_described}", flush=True)
    results: dict[tuple[int, int], dict[str, dict]] = {}
    for height, width in sizes:
        label = f"{width}x{height}"
        rows = results[(height, width)] = {}
        with tempfile.TemporaryDirectory(prefix="bench-eval-") as temp:
            folder = Path(temp)
            image, trimap = make_pair(height, width)
            np.save(folder / "image.npy", image)
            np.save(folder / "trimap.npy", trimap)
            np.save(folder / "plate.npy", make_plate(height, width))
            unknown = float(np.mean(trimap == 0.5))
            print(f"  {label}: {unknown:.1%} of the trimap unknown", flush=True)
            del image, trimap
            for method in METHODS:
                if method == "closed-form" and height * width > opts.closed_form_max_mp * 1e6:
                    needed = math.ceil(height * width / 1e6)
                    rows[method] = {"skipped": f"skipped (too slow; --closed-form-max-mp {needed})"}
                    continue
                if method == "ours-onnx" and onnx is None:
                    rows[method] = {"skipped": onnx_skipped}
                    continue
                model = {"ours-onnx": onnx, "plate": plate_spec}.get(method, spec)
                rows[method] = measure(method, folder, model, opts.repeat)
                shown = (
                    rows[method].get("error")
                    or f"{statistics.median(rows[method]['seconds']):.2f} s"
                )
                print(f"  {label} {method}: {shown}", flush=True)

    print()
    header = f"| {'size':<12} | {'method':<13} | {'seconds':>7} | {'alpha s':>7} |"
    header += f" {'peak RSS MB':>11} | {'vs closed-form':>14} |"
    print(header)
    print("|" + "|".join("-" * len(cell) for cell in header.split("|")[1:-1]) + "|")
    for (height, width), rows in results.items():
        size = f"{width}x{height}"
        base = rows["closed-form"].get("seconds")
        for method, row in rows.items():
            if "seconds" not in row:
                note = row.get("skipped") or f"failed: {row['error']}"
                print(f"| {size:<12} | {method:<13} | {note}")
                continue
            seconds = statistics.median(row["seconds"])
            alpha = (
                f"{statistics.median(row['alpha_seconds']):.2f}" if row["alpha_seconds"] else "-"
            )
            ratio = f"{seconds / statistics.median(base):.3f}x" if base else "-"
            print(
                f"| {size:<12} | {method:<13} | {seconds:>7.2f} | {alpha:>7} |"
                f" {row['peak_rss_mb']:>11.0f} | {ratio:>14} |"
            )
    print(
        "alpha s: the alpha prediction part of ours; the rest is estimate_foreground_ml."
        " vs closed-form: seconds / closed-form's seconds at the same size"
    )
    print()
    for (height, width), rows in results.items():
        size, ours, base = f"{width}x{height}", rows["ours"], rows["closed-form"]
        if "seconds" in ours and "seconds" in base:
            ratio = statistics.median(ours["seconds"]) / statistics.median(base["seconds"])
            verdict = "ok" if ratio <= TIME_TARGET else "ABOVE TARGET"
            print(
                f"{size}: ours / closed-form time {ratio:.3f}"
                f" (target <= {TIME_TARGET:g} at 1 MP) {verdict}"
            )
        exported = rows.get("ours-onnx", {})
        if "seconds" in ours and "seconds" in exported:
            ratio = statistics.median(exported["seconds"]) / statistics.median(ours["seconds"])
            print(
                f"{size}: ours-onnx / ours (TensorFlow) time {ratio:.2f},"
                f" peak RSS {exported['peak_rss_mb'] / ours['peak_rss_mb']:.2f}"
            )
        if "peak_rss_mb" in ours:
            verdict = "ok" if ours["peak_rss_mb"] <= RSS_TARGET_MB else "ABOVE TARGET"
            print(
                f"{size}: ours peak RSS {ours['peak_rss_mb']:.0f} MB"
                f" (target <= {RSS_TARGET_MB} MB at 12 MP) {verdict}"
            )
    print(
        "targets: 1 MP in at most half of closed-form's time; 12 MP peak RSS <= 3 GB;"
        " the machine may be shared, so times are noisy"
    )
    if opts.cold_start_runs:
        print()
        print_cold_starts(
            cold_starts(spec, onnx, opts.log_dir, opts.cold_start_runs), opts.cold_start_runs
        )
    exports.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
