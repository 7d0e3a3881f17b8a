"""A study's settings: what it is pinned to (every settings field with ``store``, see
config/settings.py, and the data's identity), the check that refuses a rerun or a
worker whose trials would not be comparable, and the SearchConfig a worker rebuilds
from them. Plain dicts: no optuna here."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import ConfigError, DataConfig, SearchConfig, absent_value, flags
from ..data.sources import is_builtin, is_local
from ..space import Space, for_data, label

if TYPE_CHECKING:
    from ..data.load import Data

SETTINGS_ATTR = "settings"  # study user attr: the dict below
TARGET_ATTR = "target_trials"  # study user attr: trained trials the study should hold
IDENTITY = ("fingerprint", "images", "shape", "classes")  # what pins a study to its data


def stored_fields(cls, store: tuple[str, ...] = ("pinned", "stored")) -> list:
    return [(f, fl) for f, fl in flags(cls) if fl.store in store]


PINNED = tuple(f.name for cls in (SearchConfig, DataConfig) for f, _ in stored_fields(cls, ("pinned",)))


def data_space(data: "Data", space: "str | dict | Space | None" = None) -> Space:
    """The search space ``space`` (a built-in name, a TOML file, a dict; None: the default)
    for this data: its channels, side and classes; flips where the data says they make sense."""
    c, h, w = data.shape
    return for_data(space, c, h, data.num_classes, data.hflip)


def pinned_space(settings: dict | None, data: "Data") -> Space:
    """The space a study searches: the one stored when it was made (so that a later version
    searching more choices, an optimizer say, still resumes it: Optuna refuses a
    parameter whose choices changed), else the default space of its data."""
    stored = (settings or {}).get("space")
    return Space.from_dict(stored) if stored else data_space(data)


def study_settings(cfg: SearchConfig, data: "Data | None" = None) -> dict[str, Any]:
    """The settings a study is pinned to. With ``data``: its identity (fingerprint,
    image count, shape, class names), normalisation and the space it implies."""
    settings = {f.name: getattr(cfg, f.name) for f, _ in stored_fields(SearchConfig)}
    settings.update({f.name: getattr(cfg.data, f.name) for f, _ in stored_fields(DataConfig)})
    settings["space"] = dataclasses.asdict(data_space(data, cfg.space) if data is not None else
                                           for_data(cfg.space, 1, 28, 10))
    settings["space_label"] = label(cfg.space)
    if data is not None:
        info = data.info
        settings.update({k: info.get(k) for k in IDENTITY}, mean=info["mean"], std=info["std"],
                        test_from=info["test_from"], data_dir=info["data_dir"])
    return settings


def _describe(s: dict) -> str:
    shape = "x".join(map(str, s.get("shape") or [])) or "?"
    return f"fingerprint {s.get('fingerprint')}, {s.get('images') or 0:,} images of {shape}, {len(s.get('classes') or [])} classes"


def check_pinned(name: str, stored: dict, wanted: dict, space_given: bool = False) -> None:
    """Refuse settings (or data) that would make a rerun's trials incomparable with the
    study's. Two own-data sources are compared by content, not by path; a setting a study
    made by an older version does not hold counts as what that version did (its default).
    The space is compared (as resolved) only where the rerun names one: without --space a
    rerun searches the study's."""
    if space_given and stored.get("space") and Space.from_dict(stored["space"]) != Space.from_dict(wanted["space"]):
        raise ConfigError(f"study {name!r} searches the space {stored.get('space_label', 'plain')!r}, not "
                          f"{wanted.get('space_label')!r}: rerun without --space (or with the same one) or pick a "
                          "new --study")
    for cls in (SearchConfig, DataConfig):
        for f, fl in stored_fields(cls, ("pinned",)):
            key = f.name
            if key == "dataset" and stored.get("fingerprint") and wanted.get("fingerprint") \
                    and not is_builtin(str(stored.get(key))) and not is_builtin(str(wanted.get(key))):
                continue  # the same files may sit elsewhere on another host: the fingerprint decides
            old = stored.get(key, absent_value(f, fl))
            if old != wanted.get(key):
                raise ConfigError(f"study {name!r} was made with {key}={old!r}, not "
                                  f"{wanted.get(key)!r}: rerun with the same settings or pick a new --study")
    if stored.get("fingerprint") and wanted.get("fingerprint") and \
            any(stored.get(k) != wanted.get(k) for k in IDENTITY):
        raise ConfigError(f"study {name!r} was made on other data ({_describe(stored)}; this data: "
                          f"{_describe(wanted)}): search the same data or pick a new --study")


def config_from_settings(name: str, settings: dict | None, **overrides: Any) -> SearchConfig:
    """The SearchConfig of a study from its stored settings (workers, export), with this
    host's ``overrides`` (trials, timeout, storage, device, threads, data_dir...)."""
    if settings is None:
        raise ConfigError(f"study {name!r} has no budgetnas settings: create it with 'budgetnas search'")
    data_dir = overrides.pop("data_dir", None)
    data = {f.name: settings.get(f.name, absent_value(f, fl)) for f, fl in stored_fields(DataConfig)}
    dataset = data["dataset"]
    if is_local(dataset) and data_dir:
        dataset, data_dir = data_dir, None  # own data: --data-dir is where this host holds it
    if is_local(dataset) and not Path(dataset).exists():
        raise ConfigError(f"study {name!r} searches the data at {dataset}, which this host does not have: "
                          "pass --data-dir with the same folder or .npz file here")
    data.update(dataset=dataset, data_dir=data_dir)
    search = {f.name: settings.get(f.name, absent_value(f, fl)) for f, fl in stored_fields(SearchConfig)}
    return SearchConfig(**search, study=name, data=DataConfig(**data), **overrides)
