"""The file formats of an export bundle beside spec.json and weights.pt, one entry each:
how to write it, how to load it back to check it, the tolerance of that check, why it
cannot be written or run here (a missing package), and the packages whose versions the
manifest records. A new format is a new entry of FORMATS; the bundle (bundle.py), its
self-check and the CLI's lines take it from there.
"""
from __future__ import annotations

import importlib
import importlib.util
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from ..arch import ArchSpec
from .standalone import render_model_py

TOL_EXACT = 1e-5  # same weights, same kernels: reloads must agree to float rounding
TOL_ONNX = 1e-4  # onnxruntime uses its own kernels
ONNX_OPSET = 17
ONNX_INSTALL = "pip install onnx onnxruntime"

Logits = Callable[[torch.Tensor], torch.Tensor]


class ExportCheckFailed(RuntimeError):
    """A written file does not reproduce the network's logits (a bug, not bad input)."""


@dataclass
class Context:
    """What a format's writer may use."""

    spec: ArchSpec
    net: torch.nn.Module  # eval mode, CPU, weights loaded
    data: dict  # the manifest's data record (mean, std, classes, dataset)
    title: str
    example: torch.Tensor  # a seeded batch of inputs (tracing, the self-check)
    weights: Path  # weights.pt, already written


@dataclass(frozen=True)
class Format:
    file: str
    write: Callable[[Context, Path], str | None]  # returns how it was written (the manifest's exporters) or None
    load: Callable[[Path, Context], Logits | None]  # a function of the file's logits; None: cannot be run here
    tolerance: float
    exporter: str | None = None  # its key in the manifest's "exporters"
    unavailable: Callable[[], str | None] = lambda: None  # why it cannot be written here, or None
    not_run: str = ""  # why load gave None (the check's note)
    packages: tuple[str, ...] = ()  # recorded in the manifest's versions


# --- model.py -------------------------------------------------------------------------------------
def import_file(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def _write_model_py(ctx: Context, path: Path) -> None:
    tmp = path.with_name(path.name + ".part")
    tmp.write_text(render_model_py(ctx.spec, ctx.data, ctx.title), encoding="utf-8")
    tmp.replace(path)


def _load_model_py(path: Path, ctx: Context) -> Logits:
    return import_file(path, f"_budgetnas_export_{uuid.uuid4().hex}").load(ctx.weights)


# --- TorchScript ------------------------------------------------------------------------------------
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


def load_torchscript(path: Path, ctx: Context | None = None) -> torch.nn.Module:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return torch.jit.load(str(path), map_location="cpu").eval()


# --- ONNX -----------------------------------------------------------------------------------------
def onnx_unavailable() -> str | None:
    """Why model.onnx cannot be written in this environment, or None where it can."""
    try:
        importlib.import_module("onnx")  # torch's exporter needs it; a removed package is no error
    except ImportError:
        return f"the onnx package is not installed; add it with: {ONNX_INSTALL}"
    return None


def save_onnx(net: torch.nn.Module, path: Path, example: torch.Tensor) -> str:
    """ONNX with a free batch dimension. The TorchScript-based exporter (dynamo=False)
    needs no extra package and is fast; the torch.export-based one (needs onnxscript) is
    the fallback for a torch without the former."""
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


def _load_onnx(path: Path, ctx: Context) -> Logits | None:
    if importlib.util.find_spec("onnxruntime") is None:
        return None
    return lambda x: run_onnx(path, x)


FORMATS: tuple[Format, ...] = (
    Format("model.py", lambda ctx, path: _write_model_py(ctx, path), _load_model_py, TOL_EXACT),
    Format("model.ts", lambda ctx, path: save_torchscript(ctx.net, path, ctx.example), load_torchscript, TOL_EXACT,
           exporter="torchscript"),
    Format("model.onnx", lambda ctx, path: save_onnx(ctx.net, path, ctx.example), _load_onnx, TOL_ONNX,
           exporter="onnx", unavailable=onnx_unavailable,
           not_run=f"not run: onnxruntime is not installed ({ONNX_INSTALL})", packages=("onnx", "onnxruntime")),
)
