"""Configuration: the settings dataclasses (the one place for each default, check and
flag: settings.py), every environment variable (env.py) and the two errors a user sees
as one line (errors.py). No torch, no optuna, nothing of the rest of the package."""
from .errors import ConfigError, ExportIncomplete
from .settings import (DEFAULT_TRIALS, DEVICES, JOURNAL_PREFIX, PRUNERS, SAMPLERS, DataConfig, Flag, SearchConfig, flag,
                       absent_value, artifacts_dir, default_storage_url, flags, positive_int, size_int, storage_file,
                       storage_url, tier_list)

VERSION = "0.1.0"  # budgetnas.__version__ (here so that modules need not import the package itself)

__all__ = ["ConfigError", "ExportIncomplete", "DataConfig", "SearchConfig", "Flag", "flag", "flags", "absent_value",
           "default_storage_url", "artifacts_dir", "storage_file", "storage_url", "positive_int", "size_int", "tier_list", "VERSION",
           "DEFAULT_TRIALS", "DEVICES", "JOURNAL_PREFIX", "PRUNERS", "SAMPLERS"]
