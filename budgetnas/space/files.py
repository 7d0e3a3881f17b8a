"""Spaces the user writes: a TOML file (``--space FILE``) or the same structure as a dict
(``budgetnas.search(space=...)``), checked key by key into a Space. Every key is a field
of family.Space; ``base`` names a built-in space (named.py) the others change. A bad key
or value is one ConfigError naming the key and what it allows.

    base = "mobile"                  # optional: plain (default), resnet, mobile, default
    blocks = ["mbconv", "res"]       # conv, separable, res, mbconv
    stages = [2, 3]                  # ranges are [low, high]
    kernels = [3, 5]
    [lr]                             # the optimizers searched, each with its peak-lr range
    adamw = [1e-3, 3e-2]
"""
from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any, Callable

from ..config import ConfigError
from ..train.recipe import OPTIMIZERS, SCHEDULES
from .family import Space, space_for
from .named import NAMED, named_space

DATA_KEYS = ("in_channels", "image_size", "num_classes", "hflip")  # the data decides these


def _number(v: Any, whole: bool) -> bool:
    return not isinstance(v, bool) and (isinstance(v, int) if whole else isinstance(v, (int, float)))


def int_range(lo: int, hi: int) -> Callable[[Any], tuple | str]:
    def check(v: Any) -> tuple | str:
        if isinstance(v, (list, tuple)) and len(v) == 2 and all(_number(x, True) for x in v) and lo <= v[0] <= v[1] <= hi:
            return tuple(v)
        return f"[low, high], whole numbers with {lo} <= low <= high <= {hi}"
    return check


def float_range(lo: float, hi: float, positive: bool = False) -> Callable[[Any], tuple | str]:
    def check(v: Any) -> tuple | str:
        if isinstance(v, (list, tuple)) and len(v) == 2 and all(_number(x, False) for x in v) \
                and lo <= v[0] <= v[1] <= hi and (not positive or v[0] > 0):
            return tuple(float(x) for x in v)
        return f"[low, high], numbers with {'0 < ' if positive else f'{lo} <= '}low <= high <= {hi}"
    return check


def choices(allowed: tuple | None = None, whole: tuple[int, int] | None = None,
            number: tuple[float, float] | None = None) -> Callable[[Any], tuple | str]:
    """A non-empty list of distinct values: from ``allowed``, or whole numbers / numbers in a range."""
    def ok(x: Any) -> bool:
        if allowed is not None:
            return any(type(x) is type(a) and x == a for a in allowed)
        if whole is not None:
            return _number(x, True) and whole[0] <= x <= whole[1]
        return _number(x, False) and number[0] <= x <= number[1]

    def check(v: Any) -> tuple | str:
        if isinstance(v, (list, tuple)) and v and all(ok(x) for x in v) and len(set(v)) == len(v):
            return tuple(float(x) if number else x for x in v)
        if allowed is not None:
            return "a list of distinct values from " + ", ".join(map(_toml, allowed))
        lo, hi = whole or number
        return f"a list of distinct {'whole numbers' if whole else 'numbers'} from {lo} to {hi}"
    return check


def _lr(v: Any) -> dict | str:
    searched = ", ".join(OPTIMIZERS)
    rng = float_range(0, 10, positive=True)
    if isinstance(v, dict) and v and all(k in OPTIMIZERS and isinstance(rng(r), tuple) for k, r in v.items()):
        return {k: rng(r) for k, r in v.items()}
    return f"a table of optimizer = [low, high] peak learning rates (optimizers: {searched}; 0 < low <= high <= 10)"


RULES: dict[str, Callable[[Any], Any]] = {
    "stages": int_range(1, 8),
    "blocks_per_stage": int_range(1, 6),
    "growth": choices(number=(1.0, 4.0)),
    "fill": float_range(0.05, 1.0),
    "blocks": choices(("conv", "separable", "res", "mbconv")),
    "downsample": choices(("max", "avg", "stride")),
    "kernels": choices((3, 5, 7)),
    "expand": choices(whole=(1, 8)),
    "se": choices((False, True)),
    "heads": choices(("gap", "flatten")),
    "hidden": choices(whole=(0, 1024)),
    "conv_dropout": float_range(0.0, 0.9),
    "head_dropout": float_range(0.0, 0.9),
    "width_step": lambda v: v if _number(v, True) and 1 <= v <= 64 else "a whole number from 1 to 64",
    "lr": _lr,
    "schedules": choices(tuple(SCHEDULES)),
    "batch_sizes": choices(whole=(1, 4096)),
    "weight_decay": float_range(0.0, 1.0, positive=True),
    "augment": choices((False, True)),
    "rotate": float_range(0.0, 180.0),
    "translate": float_range(0.0, 0.5),
    "label_smoothing": float_range(0.0, 0.5),
}
assert set(RULES) | set(DATA_KEYS) == {f.name for f in dataclasses.fields(Space)}  # every field has its rule


def _toml(v: Any) -> str:
    return {True: "true", False: "false"}.get(v, repr(v)) if isinstance(v, bool) else repr(v)


def space_from_dict(d: Any, where: str = "space") -> Space:
    """The Space ``d`` describes (``base`` and the keys it changes); ConfigError naming the
    first bad key and what it allows."""
    if not isinstance(d, dict):
        raise ConfigError(f"{where}: a space is a table of keys (got {type(d).__name__}): see README, 'Search spaces'")
    base = d.get("base", "plain")
    if not isinstance(base, str) or base not in NAMED:
        raise ConfigError(f"{where}: key 'base' must be one of {', '.join(map(repr, NAMED))} (got {_toml(base)})")
    values: dict[str, Any] = {}
    for key, value in d.items():
        if key == "base":
            continue
        if key in DATA_KEYS:
            raise ConfigError(f"{where}: key {key!r} is set by the data, not by a space: remove it")
        if key not in RULES:
            raise ConfigError(f"{where}: unknown key {key!r}: the keys are base, {', '.join(RULES)}")
        checked = RULES[key](value)
        if isinstance(checked, str):
            raise ConfigError(f"{where}: key {key!r} must be {checked} (got {_toml(value)})")
        values[key] = checked
    return dataclasses.replace(named_space(base), **values)


def read_space_file(path: str | Path) -> Space:
    """The Space of a TOML file."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read space file {p}: {getattr(e, 'strerror', None) or e}: pass a TOML file "
                          f"or one of {', '.join(NAMED)}") from None
    try:
        d = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"space file {p} is not valid TOML ({e}): see README, 'Search spaces'") from None
    except RecursionError:
        raise ConfigError(f"space file {p} is nested too deeply to be a space: see README, 'Search spaces'") from None
    return space_from_dict(d, f"space file {p}")


def resolve(space: "str | dict | Space | None") -> Space:
    """A space given as a built-in name, a TOML file's path, a dict or a Space (None: the
    default space), before the data is known."""
    if space is None:
        return named_space("default")
    if isinstance(space, Space):
        return space
    if isinstance(space, dict):
        return space_from_dict(space)
    if isinstance(space, str) and space in NAMED:
        return named_space(space)
    if isinstance(space, (str, Path)) and (Path(space).suffix == ".toml" or Path(space).exists()):
        return read_space_file(space)
    raise ConfigError(f"--space takes {', '.join(NAMED)} or a TOML file (got {space!r}): see README, 'Search spaces'")


def label(space: "str | dict | Space | None") -> str:
    """How a space is named in settings, reports and manifests."""
    if space is None:
        return "default"
    if isinstance(space, (str, Path)):
        return str(space)
    return "custom"


def for_data(space: "str | dict | Space | None", in_channels: int, image_size: int, num_classes: int,
             hflip: bool = False) -> Space:
    """The resolved space for the data's input: no more stages than its images allow."""
    return space_for(in_channels, image_size, num_classes, hflip, resolve(space))
