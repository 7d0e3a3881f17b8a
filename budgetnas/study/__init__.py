"""The study: where Optuna is. Storages (storage.py), making and opening studies with
their sampler and pruner (create.py), the settings a study is pinned to (settings.py),
the trial record schema with its one writer and reader (record.py), one trial
(objective.py), scheduling: what counts, deadlines, re-runs (schedule.py), and running
the trials with stale-trial recovery (optimize.py).

Named ``study`` rather than ``search`` because ``budgetnas.search`` is the Python API's
function. Import the modules themselves: this file imports nothing (record.py and
settings.py need no optuna, and the read-only commands use them without it)."""
