"""The search space: the searched family and its sampling (family.py), the built-in
spaces by name (named.py) and the spaces users write (files.py), the first trials
of a new study (defaults.py), the seed presets A-E (presets.py), and what a space can
do with a budget (summary.py). No torch; optuna only to sample, imported when asked."""
from .defaults import (DEFAULT_TRIAL, MBCONV_TRIAL, MULTI_EPOCH_TRIAL, PLAIN_SGD_TRIAL, RES_TRIAL, SMALL_BUDGET,
                       SMALL_DEFAULT_TRIAL, default_trials)
from .family import MIN_WIDTH, Space, fit_widths, sample_recipe, sample_spec, space_for, stage_spec
from .files import for_data, label, read_space_file, resolve, space_from_dict
from .named import NAMED, named_space
from .presets import PRESETS, Preset, fits, get_preset
from .summary import (budget_use_summary, check_floors, smallest_macs, smallest_of, smallest_params,
                      smallest_ram, space_lines)

__all__ = ["Space", "space_for", "stage_spec", "fit_widths", "sample_spec", "sample_recipe", "MIN_WIDTH",
           "DEFAULT_TRIAL", "SMALL_DEFAULT_TRIAL", "RES_TRIAL", "MBCONV_TRIAL", "PLAIN_SGD_TRIAL", "MULTI_EPOCH_TRIAL", "SMALL_BUDGET",
           "default_trials", "PRESETS", "Preset", "fits", "get_preset", "budget_use_summary", "check_floors",
           "smallest_of", "smallest_params", "smallest_macs", "smallest_ram", "NAMED", "named_space", "resolve", "label",
           "for_data", "read_space_file", "space_from_dict", "space_lines"]
