"""Optuna's own work per trial made cheaper, with the same results (the search's cost per
trial beyond training: scripts/bench_overhead.py). Both use Optuna's internal layout
(5.x) and leave Optuna as it is where it is laid out otherwise.

``batched(storage)``: a trial's sampled parameters written to an SQL storage in one
transaction. Optuna writes each ``trial.suggest_*`` value as it is drawn, a transaction
per parameter (the trial looked up, the distribution checked against the study's, the row
added, a commit): ~18 a trial here, the largest part of a search's own cost per trial on
SQLite after TPE itself. The wrapper (Optuna's own cached RDB storage, which
``optuna.storages.get_storage`` would make) holds a running trial's new parameters back
until the storage is next used for anything else (a read, the trial record, a report,
the end of the trial) and then writes them together. Every read therefore sees them, as
before; a distribution that does not match the study's is still refused at the suggest,
as Optuna refuses it. Only the moment of the write moves, by the time it takes to draw
the next parameters (a process killed in between loses parameters of a trial that had not
started training; its retry draws them again).

``incremental_groups(sampler)``: TPE with ``group=True`` works out its groups of
parameters sampled together from every finished trial's parameters, again at every
trial: O(trials) a trial, ~6 ms at 1,000 trials here and growing. Adding a trial's
parameters a second time leaves the groups as they are, so adding each finished trial
once gives the same groups in the same order, at a cost that does not grow.

``set_trial_attrs`` / ``set_study_system_attrs``: several attrs of a running trial (the
trial record with its budget constraints) or of a study (optuna-dashboard's note of a
trial) in one transaction, as multi-row upserts on SQLite and PostgreSQL, where Optuna
writes each in a transaction of its own (and set_constraint reads the trial back before
each write). Knows nothing of what the attrs mean (study/record.py does).
"""
from __future__ import annotations

import copy
import json
import sqlite3
import warnings

import optuna
from optuna.trial import TrialState

try:
    import sqlalchemy
    from optuna.distributions import check_distribution_compatibility, distribution_to_json
    from optuna.storages._rdb import models
    from optuna.storages._cached_storage import _CachedStorage
    from optuna.storages._rdb.storage import _create_scoped_session
    from optuna.study._constrained_optimization import _CONSTRAINTS_KEY
except ImportError:  # another Optuna layout: parameters are written as Optuna writes them
    _CachedStorage = None  # type: ignore[assignment,misc]
try:
    from optuna.search_space.group_decomposed import _GroupDecomposedSearchSpace
except ImportError:  # another Optuna layout: TPE works its groups out as it does
    _GroupDecomposedSearchSpace = None  # type: ignore[assignment,misc]


def incremental_groups(sampler: optuna.samplers.BaseSampler) -> optuna.samplers.BaseSampler:
    """``sampler`` (TPE with group=True) working out its groups from each finished trial
    once; any other sampler, or another Optuna layout, as it is."""
    current = getattr(sampler, "_group_decomposed_search_space", None)
    if _GroupDecomposedSearchSpace is not None and type(current) is _GroupDecomposedSearchSpace:
        sampler._group_decomposed_search_space = IncrementalGroups(current._include_pruned)
    return sampler


if _GroupDecomposedSearchSpace is not None:
    class IncrementalGroups(_GroupDecomposedSearchSpace):
        """Optuna's group decomposition, each finished trial's parameters added once."""

        def __init__(self, include_pruned: bool = False) -> None:
            super().__init__(include_pruned)
            self._added: set[int] = set()

        def calculate(self, study: optuna.Study, use_cache: bool = False):
            if self._study_id is None:
                self._study_id = study._study_id
            elif self._study_id != study._study_id:
                raise ValueError("`_GroupDecomposedSearchSpace` cannot handle multiple studies.")
            states = (TrialState.COMPLETE, TrialState.PRUNED) if self._include_pruned else (TrialState.COMPLETE,)
            for trial in study._get_trials(deepcopy=False, states=states, use_cache=use_cache):
                if trial.number not in self._added:  # finished: its parameters never change
                    self._added.add(trial.number)
                    self._search_space.add_distributions(trial.distributions)
            return copy.deepcopy(self._search_space)


def batched(storage: optuna.storages.BaseStorage) -> optuna.storages.BaseStorage:
    """``storage`` with a trial's parameters written together, where it is an RDB storage
    and this Optuna is laid out as known; else ``storage`` itself."""
    if (_CachedStorage is None or not isinstance(storage, optuna.storages.RDBStorage)
            or not hasattr(storage, "_set_trial_param_without_commit")):
        return storage
    return BatchedParams(storage)


if _CachedStorage is not None:
    class BatchedParams(_CachedStorage):
        """Optuna's cached RDB storage, writing the parameters held back by
        set_trial_param before any other call (the ones of Optuna's BaseStorage API,
        which is all Optuna, optuna-dashboard and budgetnas use)."""

        def __init__(self, backend: optuna.storages.RDBStorage) -> None:
            super().__init__(backend)
            self._held: list[tuple] = []

        def set_trial_param(self, trial_id: int, param_name: str, param_value_internal: float,
                            distribution: optuna.distributions.BaseDistribution) -> None:
            with self._lock:
                study_id, _ = self._trial_id_to_study_id_and_number[trial_id]
                known = self._studies[study_id].param_distribution.get(param_name)
                if known is not None:  # refused now, as Optuna refuses it
                    check_distribution_compatibility(known, distribution)
                self._held.append((trial_id, param_name, param_value_internal, distribution, known))

        def write_params(self) -> None:
            """Write the parameters held back, in one transaction."""
            with self._lock:
                held, self._held = self._held, []
            if not held:
                return
            # refused (a trial finished meanwhile by another process): raised once, as the
            # suggest would have raised it, and dropped
            backend, rows = self._backend, []
            with _create_scoped_session(backend.scoped_session, True) as session:
                for trial_id in dict.fromkeys(h[0] for h in held):
                    backend.check_trial_is_updatable(trial_id, models.TrialModel.find_or_raise_by_id(trial_id, session).state)
                for trial_id, name, value, distribution, known in held:
                    if known is None:  # a name new to this process: checked against the study's, as Optuna does
                        backend._set_trial_param_without_commit(session, trial_id, name, value, distribution)
                    else:
                        rows.append({"trial_id": trial_id, "param_name": name, "param_value": value,
                                     "distribution_json": distribution_to_json(distribution)})
                if rows:
                    session.execute(sqlalchemy.insert(models.TrialParamModel), rows)
            with self._lock:
                for trial_id, name, _value, distribution, known in held:
                    if known is None:
                        study_id, _ = self._trial_id_to_study_id_and_number[trial_id]
                        self._studies[study_id].param_distribution.setdefault(name, distribution)

        def __getstate__(self) -> dict:
            self.write_params()
            state = super().__getstate__()
            state.pop("_held", None)
            return state

        def __setstate__(self, state: dict) -> None:
            super().__setstate__(state)
            self._held = []

    def _writing_first(name: str):
        inner = getattr(_CachedStorage, name)

        def method(self, *args, **kwargs):
            self.write_params()
            return inner(self, *args, **kwargs)

        method.__name__ = method.__qualname__ = name
        method.__doc__ = inner.__doc__
        return method

    for _name in [n for n in vars(optuna.storages.BaseStorage) | vars(_CachedStorage)
                  if callable(getattr(_CachedStorage, n, None)) and not n.startswith("__")
                  and n not in ("set_trial_param", "_add_trials_to_cache", "_get_cached_trial",
                                "_read_trials_from_remote_storage")]:
        setattr(BatchedParams, _name, _writing_first(_name))


def set_trial_attrs(trial: optuna.Trial, values: dict, constraints: dict | None = None) -> None:
    """Store the user attrs ``values`` and the constraint values ``constraints`` (as
    Trial.set_constraint would: one already set is kept) on a running trial: on an SQL
    storage in one transaction, on SQLite and PostgreSQL as multi-row upserts (a
    transaction per attr made the trial record the largest part of a trial's own
    bookkeeping, and set_constraint reads the trial back before each write:
    scripts/bench_overhead.py); elsewhere one by one as Trial.set_user_attr and
    set_constraint do. The trial's own view of its attrs is updated the same way. Uses
    Optuna's SQL layout where it is the one known (5.x), else the public calls."""
    storage = getattr(trial, "storage", None)
    getattr(storage, "write_params", lambda: None)()  # the trial's parameters first
    backend = getattr(storage, "_backend", storage)  # an RDB storage sits behind Optuna's cache
    frozen = getattr(trial, "_cached_frozen_trial", None)
    system = {f"constraints:{k}": float(v) for k, v in (constraints or {}).items()}
    if frozen is not None:
        system = {k: v for k, v in system.items() if k not in frozen.system_attrs}
    if (len(values) + len(system) > 1 and frozen is not None and _CachedStorage is not None
            and _CONSTRAINTS_KEY == "constraints" and isinstance(backend, optuna.storages.RDBStorage)):
        with _create_scoped_session(backend.scoped_session, True) as session:
            backend.check_trial_is_updatable(trial._trial_id,
                                             models.TrialModel.find_or_raise_by_id(trial._trial_id, session).state)
            user, system_model = models.TrialUserAttributeModel, models.TrialSystemAttributeModel
            _upsert(backend, session, user, user.trial_id, trial._trial_id, values)
            _upsert(backend, session, system_model, system_model.trial_id, trial._trial_id, system)
        frozen.user_attrs.update(values)
        frozen.system_attrs.update(system)
        return
    for key, value in values.items():
        trial.set_user_attr(key, value)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The constraint value is ignored")
        for key, value in (constraints or {}).items():
            trial.set_constraint(key, value)


def set_study_system_attrs(storage: optuna.storages.BaseStorage, study_id: int, values: dict) -> None:
    """Study system attrs ``values`` (optuna-dashboard's note of a trial is a few) in one
    multi-row upsert on SQLite and PostgreSQL; elsewhere one by one."""
    getattr(storage, "write_params", lambda: None)()  # the trial's parameters first
    backend = getattr(storage, "_backend", storage)
    if (len(values) > 1 and _CachedStorage is not None and isinstance(backend, optuna.storages.RDBStorage)
            and _dialect(backend) is not None):
        with _create_scoped_session(backend.scoped_session, True) as session:
            models.StudyModel.find_or_raise_by_id(study_id, session)
            model = models.StudySystemAttributeModel
            _upsert(backend, session, model, model.study_id, study_id, values)
        return
    for key, value in values.items():
        storage.set_study_system_attr(study_id, key, value)


def _dialect(backend):
    """SQLAlchemy's dialect module where it has an upsert Optuna's tables allow, else None."""
    from sqlalchemy.dialects import postgresql, sqlite
    dialect = {"sqlite": sqlite, "postgresql": postgresql}.get(backend.engine.name)
    return None if dialect is sqlite and sqlite3.sqlite_version_info < (3, 24, 0) else dialect


def _upsert(backend, session, model, owner, owner_id: int, values: dict) -> None:
    """Insert or update the rows (owner, key) -> value_json of ``model`` (an attribute table)."""
    dialect = _dialect(backend)
    if not values:
        return
    if dialect is None:
        for key, value in values.items():  # Optuna's own path for other databases (trial attrs)
            backend._set_trial_attr_without_commit(session, model, owner_id, key, value)
        return
    insert = dialect.insert(model).values([{owner.key: owner_id, "key": key, "value_json": json.dumps(value)}
                                           for key, value in values.items()])
    session.execute(insert.on_conflict_do_update(index_elements=[owner, model.key],
                                                 set_={"value_json": insert.excluded.value_json}))
