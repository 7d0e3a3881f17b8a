"""int8 ONNX: post-training static quantization with onnxruntime's tools, accuracy and
latency measured with onnxruntime.

``quantize_int8`` turns a float ``model.onnx`` into ``model.int8.onnx``: QDQ format
(QuantizeLinear/DequantizeLinear pairs that onnxruntime fuses into integer kernels),
int8 weights per output channel, uint8 activations, ranges calibrated (min/max) on a
seeded sample of training images. Where the all-int8 model picks another class than the
float one on more than 0.2% of further training images (never the test set), the first
conv is kept in float as well, if that agrees better: one activation scale for all the
first conv's channels is what cost the most (measured: docs/RESULTS.md, "int8").
Nothing here trains; numbers are measured, never promised. No optuna; torch only for
the tensors it is handed.
"""
from __future__ import annotations

import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch

CALIBRATION_IMAGES = 512  # training images the activation ranges are calibrated on
CHOICE_IMAGES = 2048  # further training images on which all-int8 is compared with the float model
MIN_AGREEMENT = 0.998  # below this share of the same class, try the first conv in float
CALIBRATION_SEED = 0
FORMAT = "QDQ, int8 weights per channel, uint8 activations, min/max calibration"
MAX_DROP = 0.02  # the int8 test accuracy may be at most 2 points below the float ONNX one
LATENCY_WARMUP, LATENCY_RUNS = 50, 300


def unavailable() -> str | None:
    """Why an int8 file cannot be made here (onnxruntime's quantization tools missing), or None."""
    try:
        import onnxruntime.quantization  # noqa: F401
    except ImportError:
        return "onnxruntime (with its quantization tools) is not installed; add it with: pip install onnxruntime"
    return None


def calibration_sample(train_x: torch.Tensor, n: int = CALIBRATION_IMAGES + CHOICE_IMAGES,
                       seed: int = CALIBRATION_SEED) -> torch.Tensor:
    """A seeded random sample of ``n`` training images (normalised, NCHW, on the CPU): the
    first CALIBRATION_IMAGES calibrate, the rest choose (quantize_int8)."""
    idx = torch.randperm(len(train_x), generator=torch.Generator().manual_seed(seed))[:n]
    return train_x[idx.to(train_x.device)].detach().cpu().float().contiguous()


def _quantize(float_path: Path, out: Path, calibration: torch.Tensor, exclude: list[str]) -> None:
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)

    class Reader(CalibrationDataReader):
        def __init__(self, x: np.ndarray, batch: int = 64):
            self.batches = iter([{"images": x[i:i + batch]} for i in range(0, len(x), batch)])

        def get_next(self):
            return next(self.batches, None)

    import logging
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # its advice to pre-process is a log line, not the user's business
    try:
        quantize_static(str(float_path), str(out), Reader(calibration.numpy()), quant_format=QuantFormat.QDQ,
                        per_channel=True, weight_type=QuantType.QInt8, activation_type=QuantType.QUInt8,
                        calibrate_method=CalibrationMethod.MinMax, nodes_to_exclude=exclude)
    finally:
        root.setLevel(level)


def first_conv(float_path: Path) -> str | None:
    import onnx
    return next((n.name for n in onnx.load(str(float_path)).graph.node if n.op_type == "Conv"), None)


def quantize_int8(float_path: Path, int8_path: Path, calibration: torch.Tensor) -> str:
    """Write the static int8 quantization of ``float_path`` to ``int8_path``; return its
    description. ``calibration``: CALIBRATION_IMAGES to calibrate on, then any further
    images to choose on (module docstring)."""
    calib, choice = calibration[:CALIBRATION_IMAGES], calibration[CALIBRATION_IMAGES:]
    tmp = int8_path.with_name(int8_path.name + ".part")
    _quantize(float_path, tmp, calib, [])
    how = f"{FORMAT} on {len(calib)} training images (seed {CALIBRATION_SEED})"
    first = first_conv(float_path) if len(choice) else None
    if first:
        reference = predictions(float_path, choice)
        agree = float((predictions(tmp, choice) == reference).mean())
        if agree < MIN_AGREEMENT:
            alt = int8_path.with_name(int8_path.name + ".alt")
            _quantize(float_path, alt, calib, [first])
            agree_alt = float((predictions(alt, choice) == reference).mean())
            if agree_alt > agree:
                os.replace(alt, tmp)
                how += (f"; the first conv kept float: the same class as the float model on {100 * agree_alt:.2f}% "
                        f"of {len(choice)} other training images, against {100 * agree:.2f}% all int8")
            else:
                alt.unlink()
    os.replace(tmp, int8_path)
    return how


def session(path: Path, threads: int | None = None):
    import onnxruntime as ort
    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def predictions(path: Path, x: torch.Tensor, batch: int = 1000) -> np.ndarray:
    """The class onnxruntime picks for each image."""
    s = session(path)
    xs = x.detach().cpu().float().numpy()
    return np.concatenate([s.run(None, {"images": xs[i:i + batch]})[0].argmax(1) for i in range(0, len(xs), batch)])


def measure(float_path: Path, int8_path: Path, test_x: torch.Tensor, test_y: torch.Tensor) -> dict:
    """Test accuracy of the float and the int8 ONNX model (onnxruntime, every test image)
    and the share of images on which they agree."""
    y = test_y.detach().cpu().numpy()
    p_float, p_int8 = predictions(float_path, test_x), predictions(int8_path, test_x)
    return {"test_images": int(len(y)), "float_onnx_test_acc": float((p_float == y).mean()),
            "int8_test_acc": float((p_int8 == y).mean()), "agreement": float((p_float == p_int8).mean())}


def check(measured: dict) -> str | None:
    """Why the int8 model is broken (its test accuracy more than MAX_DROP below the float
    ONNX model's), or None. Its logits are not compared: int8 rounding moves them by
    design; how often both pick the same class is recorded (``agreement``)."""
    if measured["int8_test_acc"] < measured["float_onnx_test_acc"] - MAX_DROP:
        return (f"the int8 model's test accuracy {100 * measured['int8_test_acc']:.2f}% is more than "
                f"{100 * MAX_DROP:.0f} points below the float model's {100 * measured['float_onnx_test_acc']:.2f}% "
                f"(same class on {100 * measured['agreement']:.1f}% of the test images)")
    return None


def machine() -> str:
    """This CPU's model name (/proc/cpuinfo, else platform.processor()), and its core count."""
    name = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{name or platform.processor() or platform.machine() or 'unknown CPU'}, {os.cpu_count()} cores"


def median_latency(path: Path, image: torch.Tensor, warmup: int = LATENCY_WARMUP, runs: int = LATENCY_RUNS) -> float:
    """Median seconds of one single-image inference (onnxruntime, one thread), after warm-up."""
    s = session(path, threads=1)
    feed = {"images": image.detach().cpu().float().reshape(1, *image.shape[-3:]).numpy()}
    for _ in range(warmup):
        s.run(None, feed)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        s.run(None, feed)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def latency(paths: dict[str, Path], image: torch.Tensor) -> dict:
    """The median single-image latency of each ONNX file, in milliseconds, with the machine named."""
    return {"machine": machine(), "runtime": "onnxruntime CPUExecutionProvider, 1 thread", "batch": 1,
            "warmup": LATENCY_WARMUP, "runs": LATENCY_RUNS,
            "median_ms": {name: 1000 * median_latency(p, image) for name, p in paths.items()},
            "note": "a measurement on this machine at export time, not a promise"}


def export_int8(float_path: Path, int8_path: Path, calibration: torch.Tensor, test_x: torch.Tensor,
                test_y: torch.Tensor) -> tuple[dict, str | None]:
    """Quantize, then measure both ONNX files on the test set: (the manifest's record,
    why the int8 file fails its check or None)."""
    how = quantize_int8(float_path, int8_path, calibration)
    record = {"file": int8_path.name, "quantization": how, **measure(float_path, int8_path, test_x, test_y),
              "bytes": {float_path.name: float_path.stat().st_size, int8_path.name: int8_path.stat().st_size},
              "check": f"the int8 test accuracy is at most {100 * MAX_DROP:.0f} points below the float ONNX one"}
    return record, check(record)
