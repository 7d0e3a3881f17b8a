"""Exports: a trained network as a bundle that describes and checks itself (bundle.py),
one entry per file format (formats.py), the standalone model.py (standalone.py), the
int8 ONNX model (int8.py), and a study's trial exported (trial.py). Never retrains.

    from budgetnas.export import load_export
    bundle = load_export("exports/budgetnas-trial7")  # .model, .spec, .manifest
"""
from ..config import ExportIncomplete
from .bundle import (BUNDLE_FILES, FORMAT, Bundle, build_loaded, data_record, export_bundle, load_export, load_state,
                     prepare_out, read_manifest, sha256, spec_from_path, versions)
from .formats import FORMATS, ExportCheckFailed, Format
from .trial import export_trial, resolve_weights, select_trial

__all__ = ["Bundle", "BUNDLE_FILES", "FORMAT", "FORMATS", "Format", "ExportCheckFailed", "ExportIncomplete",
           "export_bundle", "export_trial", "load_export", "load_state", "build_loaded", "read_manifest",
           "select_trial", "resolve_weights", "spec_from_path", "data_record", "versions", "sha256", "prepare_out"]
