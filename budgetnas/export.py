"""Export bundles: a trained network as files that describe and check themselves.

A bundle folder holds ``spec.json``, ``model.py`` (standalone PyTorch source: the
classes of model.py copied verbatim, no budgetnas import), ``weights.pt`` (a
state_dict, loadable with ``torch.load(..., weights_only=True)``), ``model.ts``
(TorchScript), ``model.onnx`` and ``manifest.json`` (metrics, seeds, recipe, library
versions, data checksums, budget, sha256 of every file, the self-check's results).

Export never trains: it rebuilds the network from spec + stored weights, writes the
files, then reloads each one from disk and checks that it gives the same logits.
No optuna here: trials are read duck-typed (number, state, user_attrs).
"""
from __future__ import annotations

import hashlib
import importlib.util
import inspect
import json
import os
import platform
import tempfile
import time
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import torch

from . import model as model_module
from . import quantize
from .config import VERSION as __version__
from .config import ConfigError, ExportIncomplete
from .data import REGISTRY
from .model import build_model, spec_dict_for_build
from .space import ArchSpec, macs, param_count, peak_ram

FORMAT = "budgetnas-export/1"
BUNDLE_FILES = ("spec.json", "model.py", "weights.pt", "model.ts", "model.onnx")
START_MARK = "# --- standalone part"
END_MARK = "# --- end of standalone part"
CHECK_BATCH = 16  # images of the fixed random input the self-check compares logits on
TOL_EXACT = 1e-5  # same weights, same kernels: reloads must agree to float rounding
TOL_ONNX = 1e-4  # onnxruntime uses its own kernels
ONNX_OPSET = 17
ONNX_INSTALL = "pip install onnx onnxruntime"


class ExportCheckFailed(RuntimeError):
    """A written file does not reproduce the network's logits (a bug, not bad input)."""


@dataclass
class Bundle:
    """A loaded, checked export: the rebuilt network (eval mode, CPU) and its manifest."""

    path: Path
    spec: ArchSpec
    model: torch.nn.Module
    manifest: dict


# --- choosing a trial (duck-typed: FrozenTrials or plain records) ----------------------
def _state_name(trial: Any) -> str:
    return (getattr(getattr(trial, "state", None), "name", None) or str(getattr(trial, "state", ""))).lower()


def select_trial(trials: Iterable[Any], study: str, trial: int | None = None, rank: int | None = None,
                 sort: str = "accuracy") -> Any:
    """The trial to export: by number, else by leaderboard rank (1 = best; default 1).
    Raises ConfigError for an unknown number, a rank past the end, or a trial that was
    not completed (pruned, rejected and failed trials have no trained weights)."""
    from . import leaderboard as lb
    trials = list(trials)
    if trial is not None:
        by_number = {t.number: t for t in trials}
        if trial not in by_number:
            span = f"trials 0-{max(by_number)}" if by_number else "no trials"
            raise ConfigError(f"study {study!r} has no trial {trial} ({span}): "
                              "pick one from 'budgetnas leaderboard'")
        chosen = by_number[trial]
        state = lb.entry_from_trial(chosen).state
        if state != "complete":
            raise ConfigError(f"trial {trial} of study {study!r} is {state}, not complete, so it has no trained "
                              "weights: export a complete trial (see 'budgetnas leaderboard')")
        return chosen
    rank = 1 if rank is None else rank
    if rank < 1:
        raise ConfigError(f"--rank must be 1 or more (got {rank})")
    entries = lb.build(trials, sort=sort)
    if rank > len(entries):
        raise ConfigError(f"--rank {rank}: study {study!r} has only {len(entries)} completed trial(s): "
                          "see 'budgetnas leaderboard'")
    number = entries[rank - 1].trial
    return next(t for t in trials if t.number == number)


def resolve_weights(stored: str | None, folders: Iterable[Path], number: int) -> Path:
    """The weights file of a trial: the stored path, else its file name in one of
    ``folders`` (a study moved, or exported from another working directory)."""
    if not stored:
        raise ConfigError(f"trial {number} has no stored weights (user attr 'weights'): it was trained by an older "
                          "version or elsewhere; retrain its spec with 'budgetnas train'")
    candidates = [Path(stored)] + [Path(f) / Path(stored).name for f in folders]
    for c in candidates:
        if c.is_file():
            return c
    raise ConfigError(f"weights of trial {number} not found at {stored}: pass --artifacts FOLDER "
                      "(the folder of trial_N.pt files) or retrain its spec with 'budgetnas train'")


def load_state(path: Path) -> dict[str, torch.Tensor]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # pickle/zip errors come in many types: all mean a damaged file
        raise ConfigError(f"{path}: cannot read weights ({type(e).__name__}): the file is damaged; "
                          "retrain with 'budgetnas train'") from None
    if not isinstance(state, dict):
        raise ConfigError(f"{path}: not a state_dict: retrain with 'budgetnas train'")
    return state


def build_loaded(spec: ArchSpec, state: dict[str, torch.Tensor], where: str) -> torch.nn.Module:
    """The network of ``spec`` with ``state`` loaded (strict), in eval mode on the CPU."""
    net = build_model(spec)
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as e:
        first = str(e).splitlines()[1].strip() if len(str(e).splitlines()) > 1 else str(e)[:200]
        raise ConfigError(f"{where}: weights do not fit the spec ({first})") from None
    return net.eval()


# --- files -------------------------------------------------------------------------------
def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def prepare_out(out: str | Path) -> Path:
    """Create the output folder; ConfigError if it cannot be created or written."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file, not a folder: pass a folder path")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"cannot create --out {out} ({e.strerror}): pass a writable folder") from None
    probe = out / f".write-test-{uuid.uuid4().hex[:8]}"
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise ConfigError(f"--out {out} is not writable ({e.strerror}): pass a writable folder") from None
    return out


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".part")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def standalone_source() -> str:
    """The classes and builder of budgetnas/model.py between its marker comments, verbatim."""
    source = inspect.getsource(model_module)
    start = source.index(START_MARK)
    start = source.index("\n", start) + 1
    end = source.index(END_MARK)
    return source[start:end].rstrip() + "\n"


MODEL_PY = '''"""{title}

Standalone PyTorch model exported by budgetnas {version}: it needs only torch (no budgetnas).
{params:,} parameters, {macs:,} multiply-accumulates per image; input: {channels}x{size}x{size}
images ({colour}) scaled to [0, 1], then normalised per channel with MEAN and STD below
(see preprocess()); CLASSES names the outputs.

    from model import load
    net = load("weights.pt")            # eval mode; weights loaded with weights_only=True
    logits = net(preprocess(uint8_images))

    python model.py [DATA_DIR]          # with a folder of MNIST-style idx files (raw or .gz):
                                        # prints the test accuracy of weights.pt
"""
from __future__ import annotations

import gzip
import struct
import sys
from pathlib import Path

import torch
from torch import nn

SPEC = {spec}
MEAN, STD = {mean!r}, {std!r}  # per channel: the normalisation used in training ({dataset})
CLASSES = {classes!r}
CHANNELS, SIZE = {channels}, {size}


{standalone}

def build() -> Net:
    return build_from_dict(SPEC)


def load(weights_path: str | Path | None = None, map_location: str = "cpu") -> Net:
    """The trained network (eval mode). Default weights: weights.pt beside this file."""
    path = Path(weights_path) if weights_path else Path(__file__).with_name("weights.pt")
    net = build()
    net.load_state_dict(torch.load(path, map_location=map_location, weights_only=True))
    return net.eval()


def preprocess(images: torch.Tensor) -> torch.Tensor:
    """uint8 images (N, H, W), (N, C, H, W) or (N, H, W, C) of SIZE x SIZE pixels ->
    normalised float32 (N, CHANNELS, SIZE, SIZE)."""
    x = torch.as_tensor(images)
    x = x.unsqueeze(1) if x.dim() == 3 else x
    if x.shape[1] != CHANNELS and x.shape[-1] == CHANNELS:
        x = x.permute(0, 3, 1, 2)
    mean = torch.tensor(MEAN).view(1, -1, 1, 1)
    std = torch.tensor(STD).view(1, -1, 1, 1)
    return x.float().div(255.0).sub_(mean).div_(std)


def read_idx(path: Path) -> torch.Tensor:
    """An idx file of unsigned bytes (raw or gzip) as a uint8 tensor."""
    if path.suffix == ".gz":
        with gzip.open(path, "rb") as f:
            raw = f.read()
    else:
        raw = path.read_bytes()
    ndim = raw[3]
    dims = struct.unpack(f">{{ndim}}I", raw[4:4 + 4 * ndim])
    return torch.frombuffer(bytearray(raw[4 + 4 * ndim:]), dtype=torch.uint8).reshape(dims)


def _find(folder: Path, stem: str) -> Path:
    for p in (folder / stem, folder / (stem + ".gz")):
        if p.is_file():
            return p
    raise SystemExit(f"{{folder / stem}}[.gz] not found")


@torch.inference_mode()
def accuracy(net: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 1000) -> float:
    correct = 0
    for i in range(0, len(x), batch):
        correct += (net(x[i:i + batch]).argmax(1) == y[i:i + batch]).sum().item()
    return correct / len(x)


def main(argv: list[str]) -> None:
    net = load()
    print(f"{{sum(p.numel() for p in net.parameters()):,}} parameters")
    if argv:
        folder = Path(argv[0])
        x = preprocess(read_idx(_find(folder, "t10k-images-idx3-ubyte")))
        y = read_idx(_find(folder, "t10k-labels-idx1-ubyte")).long()
        acc = accuracy(net, x, y)
        print(f"test accuracy {{100 * acc:.2f}}% ({{round(acc * len(y))}}/{{len(y)}})")


if __name__ == "__main__":
    main(sys.argv[1:])
'''


def spec_literal(d: dict) -> str:
    """The spec dict as a Python literal, one layer per line."""
    lines = ["{"]
    for key, value in d.items():
        if key == "layers":
            lines += ["    'layers': ["] + [f"        {layer!r}," for layer in value] + ["    ],"]
        else:
            lines.append(f"    {key!r}: {value!r},")
    return "\n".join(lines + ["}"])


def render_model_py(spec: ArchSpec, data: dict, title: str) -> str:
    """model.py for ``spec``; ``data`` is the manifest's data record (mean, std, classes)."""
    c = spec.in_channels
    mean, std = list(data.get("mean") or [0.0]), list(data.get("std") or [1.0])
    mean, std = (mean * c)[:c] if len(mean) == 1 else mean, (std * c)[:c] if len(std) == 1 else std
    classes = data.get("classes") or [str(i) for i in range(spec.num_classes)]
    return MODEL_PY.format(
        title=title, version=__version__, params=param_count(spec), macs=macs(spec), channels=c,
        size=spec.image_size, colour="gray" if c == 1 else "RGB", dataset=Path(str(data.get("dataset", "?"))).name,
        spec=spec_literal(spec_dict_for_build(spec)), mean=mean, std=std, classes=list(classes),
        standalone=standalone_source())


def _import_file(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def save_torchscript(net: torch.nn.Module, path: Path, example: torch.Tensor) -> str:
    """TorchScript by scripting (keeps the batch size free); tracing if scripting fails."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            module, how = torch.jit.script(net), "script"
        except Exception:  # scripting is strict about Python; tracing always works for these nets
            module, how = torch.jit.trace(net, example), "trace"
        module.save(str(path))
    return how


def load_torchscript(path: Path) -> torch.nn.Module:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return torch.jit.load(str(path), map_location="cpu").eval()


def save_onnx(net: torch.nn.Module, path: Path, example: torch.Tensor) -> str:
    """ONNX with a free batch dimension. The TorchScript-based exporter (dynamo=False)
    needs no extra package and takes ~0.1 s; the torch.export-based one (needs
    onnxscript, ~5 s) is the fallback for a torch without the former."""
    kwargs = dict(input_names=["images"], output_names=["logits"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(net, (example,), str(path), dynamo=False, opset_version=ONNX_OPSET,
                              dynamic_axes={"images": {0: "batch"}, "logits": {0: "batch"}}, **kwargs)
            return f"torchscript-based (dynamo=False), opset {ONNX_OPSET}"
        except Exception as legacy_error:
            try:
                batch = torch.export.Dim("batch")
                torch.onnx.export(net, (example,), str(path), dynamo=True, external_data=False,
                                  dynamic_shapes=({0: batch},), **kwargs)
                return "torch.export-based (dynamo=True)"
            except Exception as e:
                raise ExportCheckFailed(f"ONNX export failed (legacy exporter: {legacy_error}; "
                                        f"dynamo exporter: {e}); install onnxscript: pip install onnxscript") from e


def run_onnx(path: Path, x: torch.Tensor) -> torch.Tensor | None:
    """Logits from onnxruntime, or None where onnxruntime is not installed."""
    try:
        import onnxruntime as ort
    except ImportError:
        return None
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return torch.from_numpy(session.run(None, {"images": x.numpy()})[0])


def versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"budgetnas": __version__, "python": platform.python_version(),
                                  "torch": torch.__version__}
    for name in ("optuna", "numpy", "onnx", "onnxruntime"):
        try:
            out[name] = __import__(name).__version__
        except ImportError:
            out[name] = None
    return out


IDENTITY_KEYS = ("fingerprint", "images", "shape", "classes", "mean", "std", "test_from", "image_size", "channels")


def data_record(dataset: str, data: dict | None = None, **extra: Any) -> dict:
    """Which data the network was trained and measured on. Built-in datasets: the
    official md5 of each decompressed idx file (load_data refuses any file that does not
    match them). Every dataset: from ``data`` (a Data.info or a study's settings) the
    content fingerprint of the decoded pixels and labels, the image count, one image's
    shape, the class names and the per-channel mean/std used to normalise."""
    record: dict[str, Any] = {"dataset": dataset}
    if dataset in REGISTRY:
        info = REGISTRY[dataset]
        record.update({"md5_of": "decompressed idx files", "md5": dict(info.md5), "mean": [info.mean],
                       "std": [info.std], "classes": list(info.classes)})
    record.update({k: data[k] for k in IDENTITY_KEYS if data and data.get(k) is not None})
    return {**record, **extra}


def _max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max())


# --- writing a bundle -----------------------------------------------------------------------
def onnx_unavailable() -> str | None:
    """Why model.onnx cannot be written in this environment, or None where it can."""
    try:
        importlib.import_module("onnx")  # torch's exporter needs it; a removed package is no error
    except ImportError:
        return f"the onnx package is not installed; add it with: {ONNX_INSTALL}"
    return None


def _kept_line(where: Path, meta: dict) -> str:
    acc = ", ".join(f"{k.split('_')[0]} {100 * meta[k]:.2f}%" for k in ("val_acc", "test_acc")
                    if meta.get(k) is not None)
    return (f"the trained network is kept in {where}: weights.pt, spec.json and manifest.json"
            + (f" (measured: {acc})" if acc else ""))


def _write_measured(out: Path, spec: ArchSpec, net: torch.nn.Module, manifest: dict) -> None:
    """spec.json, weights.pt and a manifest holding every measurement: written before any
    step that may fail (exporters, self-checks), so no run's result is ever lost."""
    paths = {"spec.json": out / "spec.json", "weights.pt": out / "weights.pt"}
    _write_text(paths["spec.json"], json.dumps(spec.to_dict(), indent=2, sort_keys=True) + "\n")
    tmp = paths["weights.pt"].with_name("weights.pt.part")
    torch.save({k: v.contiguous() for k, v in net.state_dict().items()}, tmp)
    os.replace(tmp, paths["weights.pt"])
    manifest["files"] = {name: {"sha256": sha256(p), "bytes": p.stat().st_size} for name, p in paths.items()}
    _write_text(out / "manifest.json", json.dumps(manifest, indent=2, default=str) + "\n")


def export_bundle(out: str | Path, spec: ArchSpec, state: dict[str, torch.Tensor], meta: dict,
                  title: str = "budgetnas export", int8_data: tuple | str | None = None) -> dict:
    """Write a bundle into ``out`` from a spec and its trained state_dict, reload every
    file and check it; return the manifest (written as manifest.json).

    ``meta`` is recorded as is (source, study, trial, metrics, seeds, recipe, budget,
    data: see data_record); it must carry ``data['dataset']``.

    Order: spec.json, weights.pt and a manifest with every measurement come first (into a
    temporary folder if ``out`` cannot take them); then model.py, TorchScript, ONNX and
    the self-check. A failure after the first step raises ExportIncomplete, whose one-line
    message says what was kept and where. Without the onnx package model.onnx is skipped
    (recorded in the manifest's ``skipped``), not an error.

    ``int8_data``: (calibration images, test images, test labels), normalised tensors:
    then ``model.int8.onnx`` is written too (see quantize.py), its test accuracy measured
    next to the float ONNX one, checked (predictions, not logits), and both files' median
    single-image latency measured. A string instead says why there are no images; it
    is recorded in ``skipped`` as is a missing onnx or onnxruntime.
    """
    out = prepare_out(out)
    data = meta.get("data") or data_record("mnist")
    net = build_loaded(spec, {k: v.detach().cpu() for k, v in state.items()}, "weights")
    params = param_count(spec)
    budget = meta.get("budget")
    manifest = {
        "format": FORMAT, "title": title, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "complete": False,  # true once every file is written and checked
        "params": params, "macs": macs(spec), "ram": peak_ram(spec), "budget": budget,
        "budget_use": params / budget if budget else None,
        **meta,
        "spec": spec.to_dict(),
        "input": {"shape": [spec.in_channels, spec.image_size, spec.image_size], "dtype": "float32",
                  "preprocess": "x / 255, then (x - mean) / std per channel (see data)", "onnx_input": "images",
                  "onnx_output": "logits"},
        "versions": versions(),
    }
    try:
        _write_measured(out, spec, net, manifest)
    except (OSError, RuntimeError) as e:  # a full disk makes torch.save raise RuntimeError
        why = getattr(e, "strerror", None) or str(e).splitlines()[0]
        try:
            rescue = Path(tempfile.mkdtemp(prefix="budgetnas-kept-"))
            _write_measured(rescue, spec, net, manifest)
        except (OSError, RuntimeError):
            raise ExportIncomplete(f"cannot write to {out} ({why}) nor to a temporary folder: nothing could be "
                                   "kept; free some disk space") from e
        raise ExportIncomplete(f"cannot write to {out} ({why}): {_kept_line(rescue, meta)}") from e

    step = "model.py"
    try:
        x = torch.randn(CHECK_BATCH, spec.in_channels, spec.image_size, spec.image_size,
                        generator=torch.Generator().manual_seed(0))
        with torch.inference_mode():
            ref = net(x)
        paths = {name: out / name for name in BUNDLE_FILES}
        _write_text(paths["model.py"], render_model_py(spec, data, title))
        step = "model.ts"
        exporters = {"torchscript": save_torchscript(net, paths["model.ts"], x), "onnx": None}
        step = "model.onnx"
        skipped = {}
        why_not = onnx_unavailable()
        if why_not:
            skipped["model.onnx"] = why_not
            del paths["model.onnx"]
        else:
            exporters["onnx"] = save_onnx(net, paths["model.onnx"], x)
        step = "model.int8.onnx"
        int8 = None
        why_not = skipped.get("model.onnx") or quantize.unavailable() or (
            int8_data if isinstance(int8_data, str) else None if int8_data else "no images were given to calibrate it")
        if why_not:
            skipped["model.int8.onnx"] = why_not
        else:
            paths["model.int8.onnx"] = out / "model.int8.onnx"
            int8, problem = quantize.export_int8(paths["model.onnx"], paths["model.int8.onnx"], *int8_data)
            int8.update(ok=problem is None, problem=problem)  # a weak int8 model is kept, flagged, and said so
        step = "the self-check"
        checks = _check_files(paths, ref, x)
        step = "the latency measurement"
        onnx_files = {n: paths[n] for n in ("model.onnx", "model.int8.onnx") if n in paths}
        if onnx_files and not quantize.unavailable():
            image = int8_data[1][0] if isinstance(int8_data, tuple) else x[0]
            manifest["latency"] = quantize.latency(onnx_files, image)
        manifest.update(exporters=exporters, checks=checks, skipped=skipped, complete=True, int8=int8,
                        files={name: {"sha256": sha256(p), "bytes": p.stat().st_size} for name, p in paths.items()})
        step = "manifest.json"
        _write_text(out / "manifest.json", json.dumps(manifest, indent=2, default=str) + "\n")
    except Exception as e:
        cause = str(e) if isinstance(e, ExportCheckFailed) else \
            f"writing {step} failed ({type(e).__name__}: {(str(e).splitlines() or [''])[0][:200]})"
        raise ExportIncomplete(f"{cause}; {_kept_line(out, meta)}; the other files were not written") from e
    return manifest


def _check_files(paths: dict[str, Path], ref: torch.Tensor, x: torch.Tensor) -> dict:
    """Reload every file from disk; each must reproduce ``ref`` (max |logit diff|)."""
    checks: dict[str, Any] = {"input": f"{len(x)} seeded N(0,1) images"}
    spec = ArchSpec.from_json(paths["spec.json"].read_text())
    with torch.inference_mode():
        checks["weights.pt"] = _max_diff(build_loaded(spec, load_state(paths["weights.pt"]), "weights.pt")(x), ref)
        standalone = _import_file(paths["model.py"], f"_budgetnas_export_{uuid.uuid4().hex}")
        checks["model.py"] = _max_diff(standalone.load(paths["weights.pt"])(x), ref)
        checks["model.ts"] = _max_diff(load_torchscript(paths["model.ts"])(x), ref)
    onnx_logits = run_onnx(paths["model.onnx"], x) if "model.onnx" in paths else None
    checks["model.onnx"] = None if onnx_logits is None else _max_diff(onnx_logits, ref)
    if "model.onnx" not in paths:
        checks["model.onnx_note"] = "not written: the onnx package is not installed"
    elif onnx_logits is None:
        checks["model.onnx_note"] = f"not run: onnxruntime is not installed ({ONNX_INSTALL})"
    for name, tol in (("weights.pt", TOL_EXACT), ("model.py", TOL_EXACT), ("model.ts", TOL_EXACT),
                      ("model.onnx", TOL_ONNX)):
        if checks[name] is not None and not checks[name] <= tol:
            raise ExportCheckFailed(f"{paths[name]}: logits differ from the network by {checks[name]:.3g} "
                                    f"(> {tol:g}): the export is broken, please report it")
    return checks


# --- reading a bundle ------------------------------------------------------------------------
def read_manifest(path: str | Path) -> dict:
    path = Path(path)
    mf = path / "manifest.json"
    if not mf.is_file():
        raise ConfigError(f"{path} is not a budgetnas export (no manifest.json): make one with 'budgetnas export'")
    try:
        manifest = json.loads(mf.read_text())
    except json.JSONDecodeError as e:
        raise ConfigError(f"{mf}: not valid JSON ({e.msg} at line {e.lineno}): export again") from None
    if manifest.get("format") != FORMAT:
        raise ConfigError(f"{mf}: format {manifest.get('format')!r} is not {FORMAT!r}: export again")
    return manifest


def load_export(path: str | Path) -> Bundle:
    """Load a bundle: every file's sha256 must match the manifest; the network is
    rebuilt from spec.json and weights.pt (weights_only) in eval mode on the CPU."""
    path = Path(path)
    manifest = read_manifest(path)
    for name, rec in manifest["files"].items():
        p = path / name
        if not p.is_file():
            raise ConfigError(f"{p}: missing from the export: export again")
        if sha256(p) != rec["sha256"]:
            raise ConfigError(f"{p}: sha256 does not match manifest.json (the file was changed): export again")
    spec = ArchSpec.from_json((path / "spec.json").read_text())
    net = build_loaded(spec, load_state(path / "weights.pt"), str(path / "weights.pt"))
    return Bundle(path=path, spec=spec, model=net, manifest=manifest)


def spec_from_path(path: str | Path) -> tuple[ArchSpec, dict | None]:
    """A spec from a spec JSON file or an export folder; with a folder, its manifest too
    (its recipe is the one the network was trained with)."""
    path = Path(path)
    if path.is_dir():
        manifest = read_manifest(path)
        spec_file = path / "spec.json"
    else:
        manifest, spec_file = None, path
    if not spec_file.is_file():
        raise ConfigError(f"{spec_file}: no such spec file: pass a spec.json or an export folder")
    try:
        text = spec_file.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{spec_file}: cannot read it ({e}): pass a spec.json") from None
    try:
        spec = ArchSpec.from_json(text)
    except ConfigError as e:
        raise ConfigError(f"{spec_file}: {e}") from None
    return spec, manifest


__all__ = ["Bundle", "ExportCheckFailed", "ExportIncomplete", "export_bundle", "load_export", "read_manifest", "select_trial",
           "resolve_weights", "spec_from_path", "standalone_source", "data_record", "versions"]
