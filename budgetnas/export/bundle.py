"""Export bundles: a trained network as files that describe and check themselves.

A bundle folder holds ``spec.json``, ``weights.pt`` (a state_dict, loadable with
``torch.load(..., weights_only=True)``), a file per format of formats.py (such as model.py,
model.ts, model.onnx), ``model.int8.onnx`` where there are images to calibrate it
(int8.py), and ``manifest.json`` (metrics, seeds, recipe, library versions, data
checksums, budget, sha256 of every file, the self-check's results).

Export never trains: it rebuilds the network from spec + weights, writes the files,
then reloads each one from disk and checks that it gives the same logits.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import platform
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..arch import ArchSpec, macs, param_count, peak_ram
from ..arch.build import build_model
from ..arch.kinds import fits, shown, wanted
from ..config import VERSION as __version__
from ..config import ConfigError, ExportIncomplete
from ..data.sources import is_builtin
from ..data.sources.idx import REGISTRY
from ..train.recipe import Recipe
from . import int8 as quantize
from .formats import FORMATS, TOL_EXACT, Context, ExportCheckFailed

FORMAT = "budgetnas-export/1"
BUNDLE_FILES = ("spec.json", "weights.pt", *(f.file for f in FORMATS))
CHECK_BATCH = 16  # images of the fixed random input the self-check compares logits on
MAX_JSON_BYTES = 8 << 20  # a spec.json or manifest.json larger than this is refused unread


@dataclass
class Bundle:
    """A loaded, checked export: the rebuilt network (eval mode, CPU) and its manifest."""

    path: Path
    spec: ArchSpec
    model: torch.nn.Module
    manifest: dict


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
    if out.exists() and not out.is_dir() or not str(out.resolve()).isprintable():  # torch, ONNX: UTF-8 paths
        raise ConfigError(f"--out {ascii(str(out))[1:-1]} " + ("is a file, not a folder: pass a folder path" if
                          out.is_file() else "is not a printable UTF-8 path: pass another folder"))
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


def versions() -> dict[str, str | None]:
    out: dict[str, Any] = {"budgetnas": __version__, "python": platform.python_version(), "torch": torch.__version__}
    for name in ("optuna", "numpy", *(p for f in FORMATS for p in f.packages)):
        try:
            out[name] = __import__(name).__version__
        except Exception:  # absent, or an install that does not import
            out[name] = None
    return out


IDENTITY_KEYS = ("fingerprint", "images", "shape", "classes", "mean", "std", "test_from", "image_size", "channels")


def data_record(dataset: str, data: dict | None = None, **extra: Any) -> dict:
    """Which data the network was trained and measured on. Built-in datasets: the
    official md5 of each decompressed idx file (load_data refuses any file that does not
    match them), their published normalisation and class names. Every dataset: from
    ``data`` (a Data.info or a study's settings) the content fingerprint of the decoded
    pixels and labels, the image count, one image's shape, the class names and the
    per-channel mean/std used to normalise."""
    record: dict[str, Any] = {"dataset": dataset}
    if is_builtin(dataset):
        info = REGISTRY[dataset]
        record.update({"md5_of": "decompressed idx files", "md5": dict(info.md5), "mean": [info.mean],
                       "std": [info.std], "classes": list(info.classes)})
    record.update({k: data[k] for k in IDENTITY_KEYS if data and data.get(k) is not None})
    return {**record, **extra}


def _max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max())


# --- writing a bundle -----------------------------------------------------------------------
def kept_line(where: Path, meta: dict) -> str:
    acc = ", ".join(f"{k[:-4]} {100 * meta[k]:.2f}%" for k in ("val_acc", "test_acc") if meta.get(k) is not None)
    return (f"the trained network is kept in {where}: weights.pt, spec.json and manifest.json"
            + (f" (measured: {acc})" if acc else ""))


def _write_measured(out: Path, spec: ArchSpec, state: dict[str, torch.Tensor], manifest: dict) -> None:
    """spec.json, weights.pt and a manifest holding every measurement: written before any
    step that may fail (exporters, self-checks), so no run's result is ever lost."""
    out.mkdir(parents=True, exist_ok=True)
    paths = {"spec.json": out / "spec.json", "weights.pt": out / "weights.pt"}
    _write_text(paths["spec.json"], json.dumps(spec.to_dict(), indent=2, sort_keys=True) + "\n")
    tmp = paths["weights.pt"].with_name("weights.pt.part")
    torch.save({k: v.detach().cpu().contiguous() for k, v in state.items()}, tmp)
    os.replace(tmp, paths["weights.pt"])
    manifest["files"] = {name: {"sha256": sha256(p), "bytes": p.stat().st_size} for name, p in paths.items()}
    _write_text(out / "manifest.json", json.dumps(manifest, indent=2, default=str) + "\n")


def keep_measured(out: Path, spec: ArchSpec, state: dict[str, torch.Tensor], manifest: dict) -> tuple[Path, str]:
    """_write_measured into ``out``, else into a new temporary folder: (the folder, why
    not ``out`` or ''). ExportIncomplete if neither can take them."""
    try:
        _write_measured(Path(out), spec, state, manifest)
        return Path(out), ""
    except Exception as e:  # OSError; a full disk makes torch.save raise RuntimeError
        why = getattr(e, "strerror", None) or (str(e).splitlines() or [type(e).__name__])[0]
        try:
            rescue = Path(tempfile.mkdtemp(prefix="budgetnas-kept-"))
            _write_measured(rescue, spec, state, manifest)
        except Exception:
            raise ExportIncomplete(f"cannot write to {out} ({why}) nor to a temporary folder: nothing could be "
                                   "kept; free some disk space") from e
        return rescue, why


def export_bundle(out: str | Path, spec: ArchSpec, state: dict[str, torch.Tensor], meta: dict,
                  title: str = "budgetnas export", int8_data: tuple | str | None = None) -> dict:
    """Write a bundle into ``out`` from a spec and its trained state_dict, reload every
    file and check it; return the manifest (written as manifest.json).

    ``meta`` is recorded as is (source, study, trial, metrics, seeds, recipe, budget,
    data: see data_record); it must carry ``data['dataset']``.

    Order: spec.json, weights.pt and a manifest with every measurement come first (into a
    temporary folder if ``out`` cannot take them); then each format and the self-check. A
    failure after the first step raises ExportIncomplete, whose one-line message says
    what was kept and where. A format whose package is missing (say onnx) is skipped
    (recorded in the manifest's ``skipped``), not an error.

    ``int8_data``: (calibration images, test images, test labels), normalised tensors:
    then ``model.int8.onnx`` is written too (see int8.py), its test accuracy measured
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
        "budget_use": params / budget if type(budget) is int and budget > 0 else None,
        **meta, "spec": spec.to_dict(),
        "input": {"shape": [spec.in_channels, spec.image_size, spec.image_size], "dtype": "float32",
                  "preprocess": "x / 255, then (x - mean) / std per channel (see data)", "onnx_input": "images",
                  "onnx_output": "logits"},
        "versions": versions(),
    }
    where, why = keep_measured(out, spec, net.state_dict(), manifest)
    if why:
        raise ExportIncomplete(f"cannot write to {out} ({why}): {kept_line(where, meta)}")

    step = FORMATS[0].file
    try:
        x = torch.randn(CHECK_BATCH, spec.in_channels, spec.image_size, spec.image_size,
                        generator=torch.Generator().manual_seed(0))
        with torch.inference_mode():
            ref = net(x)
        ctx = Context(spec, net, data, title, x, out / "weights.pt")
        paths = {"spec.json": out / "spec.json", "weights.pt": out / "weights.pt"}
        exporters: dict[str, str | None] = {}
        skipped: dict[str, str] = {}
        for fmt in FORMATS:
            step = fmt.file
            why_not = fmt.unavailable()
            if why_not:
                skipped[fmt.file] = why_not
            else:
                paths[fmt.file] = out / fmt.file
            how = None if why_not else fmt.write(ctx, out / fmt.file)
            if fmt.exporter:
                exporters[fmt.exporter] = how
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
        checks = check_files(paths, ref, ctx, skipped)
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
        raise ExportIncomplete(f"{cause}; {kept_line(out, meta)}; the other files were not written") from e
    return manifest


def check_files(paths: dict[str, Path], ref: torch.Tensor, ctx: Context, skipped: dict[str, str]) -> dict:
    """Reload weights.pt and every format's file from disk; each must reproduce ``ref``
    (max |logit diff|) within its tolerance. A format that was not written or cannot be
    run here is None, with a note."""
    x = ctx.example
    checks: dict[str, Any] = {"input": f"{len(x)} seeded N(0,1) images"}
    spec = ArchSpec.from_json(paths["spec.json"].read_text())
    limits = {"weights.pt": TOL_EXACT}
    with torch.inference_mode():
        checks["weights.pt"] = _max_diff(build_loaded(spec, load_state(paths["weights.pt"]), "weights.pt")(x), ref)
        for fmt in FORMATS:
            limits[fmt.file] = fmt.tolerance
            logits = fmt.load(paths[fmt.file], ctx) if fmt.file in paths else None
            checks[fmt.file] = None if logits is None else _max_diff(logits(x), ref)
            if fmt.file in skipped:
                checks[f"{fmt.file}_note"] = f"not written: {skipped[fmt.file].split(';')[0]}"
            elif logits is None:
                checks[f"{fmt.file}_note"] = fmt.not_run
    for name, tol in limits.items():
        if checks[name] is not None and not checks[name] <= tol:
            raise ExportCheckFailed(f"{paths[name]}: logits differ from the network by {checks[name]:.3g} "
                                    f"(> {tol:g}): the export is broken, please report it")
    return checks


# --- reading a bundle ------------------------------------------------------------------------
def read_text(path: Path, what: str) -> str:
    """A spec.json or manifest.json's text; ConfigError naming it if unreadable or too large."""
    try:
        size = path.stat().st_size
        if size > MAX_JSON_BYTES:
            raise ConfigError(f"{path}: {size / 2**20:,.0f} MiB is too large for a {what} (at most "
                              f"{MAX_JSON_BYTES >> 20} MiB): pass one made by budgetnas")
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read it ({getattr(e, 'strerror', None) or e}): pass a {what} made by "
                          "budgetnas") from None


def read_manifest(path: str | Path) -> dict:
    """An export folder's manifest.json: a JSON object of this format, the keys read checked."""
    path = Path(path)
    mf = path / "manifest.json"
    if not mf.is_file():
        raise ConfigError(f"{path} is not a budgetnas export (no manifest.json): make one with 'budgetnas export'")
    text = read_text(mf, "manifest.json")  # its ConfigError is a ValueError: not caught below
    try:
        manifest = json.loads(text)
    except (RecursionError, ValueError) as e:  # ValueError: not JSON, or an integer of over 4,300 digits
        why = f"{e.msg} at line {e.lineno}" if isinstance(e, json.JSONDecodeError) else \
            "nested too deeply" if isinstance(e, RecursionError) else "a number of over 4,300 digits"
        raise ConfigError(f"{mf}: not valid JSON ({why}): export again") from None
    if not isinstance(manifest, dict):
        raise ConfigError(f"{mf}: a manifest is a JSON object, not {shown(manifest)}: export again")
    if manifest.get("format") != FORMAT:
        raise ConfigError(f"{mf}: format {shown(manifest.get('format'))} is not {FORMAT!r}: export again")
    check_manifest(manifest, mf)
    return manifest


# the keys read (train, load_export): (type, rule); null or absent (older bundles) is fine
MANIFEST_KEYS = {"budget": ("int", {"lo": 1}), "study": ("str", {}), "trial": ("int", {"lo": 0}),
                 "val_acc": ("float", {"lo": 0, "hi": 1}), "test_acc": ("float", {"lo": 0, "hi": 1}),
                 **{f"recipe.{f.name}": (f.type, {}) for f in dataclasses.fields(Recipe)},
                 "data.dataset": ("str", {}), "data.image_size": ("int", {"lo": 8, "hi": 1024}),
                 "data.channels": ("int", {"choices": (1, 3)}), "data.fingerprint": ("str", {})}


def check_manifest(manifest: dict, mf: Path) -> None:
    """ConfigError naming ``mf`` and the key for the first value read that is not of its type."""
    def bad(key: str, what: str, v: Any) -> ConfigError:
        return ConfigError(f"{mf}: key {key!r} must be {what} (got {shown(v)}): fix it or export again")

    for key, (kind, meta) in MANIFEST_KEYS.items():
        top, _, sub = key.partition(".")
        v = manifest.get(top)
        if sub and v is not None:
            if not isinstance(v, dict):
                raise bad(top, "an object or null", v)
            v = v.get(sub)
        if v is not None and not fits(kind, meta, v):
            raise bad(key, wanted(kind, meta) + " or null", v)
    try:
        Recipe.from_dict({**(manifest.get("recipe") or {}), "epochs": 1})  # its choices and ranges
    except ConfigError as e:
        raise ConfigError(f"{mf}: key 'recipe': {e}") from None
    files = manifest.get("files")
    if not isinstance(files, dict):
        raise bad("files", "an object (file name: its sha256)", files)
    for name, rec in files.items():
        if Path(name).name != name or name in ("", ".", "..") or type(rec) is not dict or type(
                rec.get("sha256")) is not str:
            raise bad(f"files.{name}", "a file of the folder with its sha256", rec)


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
    spec = spec_from_file(path / "spec.json")
    net = build_loaded(spec, load_state(path / "weights.pt"), str(path / "weights.pt"))
    return Bundle(path=path, spec=spec, model=net, manifest=manifest)


def spec_from_file(spec_file: Path) -> ArchSpec:
    """The spec in a spec.json; ConfigError naming the file and the problem."""
    text = read_text(spec_file, "spec.json")
    try:
        return ArchSpec.from_json(text)
    except ConfigError as e:
        raise ConfigError(f"{spec_file}: {e}") from None


def spec_from_path(path: str | Path) -> tuple[ArchSpec, dict | None]:
    """A spec from a spec JSON file or an export folder; with a folder, its manifest too
    (its recipe is the one the network was trained with)."""
    path = Path(path)
    if path.is_dir():
        manifest = read_manifest(path)
        if not (path / "spec.json").is_file():
            raise ConfigError(f"{path} has no spec.json: export it again, or pass a spec.json")
        return spec_from_file(path / "spec.json"), manifest
    if not path.is_file():
        raise ConfigError(f"{path}: no such spec file: pass a spec.json or an export folder")
    return spec_from_file(path), None
