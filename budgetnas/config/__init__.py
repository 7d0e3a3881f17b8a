"""Configuration: the settings dataclasses (the one place for each default, check and
flag: settings.py), the flags' parsers and the settings' range checks (values.py), every
environment variable (env.py) and the two errors a user sees as one line (errors.py).
No torch, no optuna, nothing of the rest of the package."""
from .errors import ConfigError, ExportIncomplete
from .settings import (DEFAULT_TRIALS, DEVICES, GPU_WORKERS, JOURNAL_PREFIX, MAX_EPOCHS, MAX_THREADS, PRUNERS, SAMPLERS, DataConfig,
                       Flag, SearchConfig, absent_value, artifacts_dir, default_storage_url, flag, flags, storage_file,
                       storage_url)
from .values import (MAX_COUNT, MAX_SEED, bytes_int, check_real, check_seed, check_study_name, check_whole,
                     finite_float, macs_int, positive_int, seed_int, size_int, text_flag, tier_list, whole_in)

VERSION = "0.1.0"  # budgetnas.__version__ (here so that modules need not import the package itself)

__all__ = ["ConfigError", "ExportIncomplete", "DataConfig", "SearchConfig", "Flag", "flag", "flags", "absent_value",
           "default_storage_url", "artifacts_dir", "storage_file", "storage_url", "positive_int", "size_int",
           "macs_int", "bytes_int", "seed_int", "whole_in", "finite_float", "text_flag", "tier_list", "check_whole",
           "check_real", "check_seed", "check_study_name", "VERSION", "DEFAULT_TRIALS", "DEVICES", "JOURNAL_PREFIX",
           "PRUNERS", "SAMPLERS", "GPU_WORKERS", "MAX_COUNT", "MAX_EPOCHS", "MAX_SEED", "MAX_THREADS"]
