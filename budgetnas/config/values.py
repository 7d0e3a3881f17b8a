"""Text -> value for flags, and the range checks of the settings: counts with a k or M
suffix, seeds, finite floats, non-empty text. A parser's range error reads "must ..."
and the parser (cli/parser.py) puts the flag in front ("--budget must be a positive
number (got 0)"), the words of the settings' own checks; nan, inf, and counts past
MAX_COUNT are refused here, before anything overflows."""
from __future__ import annotations

import argparse
import math
import numbers
import re
from typing import Any, Callable

from .errors import ConfigError

# --- text -> value, for flags ----------------------------------------------------------
MAX_COUNT = 10 ** 15  # the largest count or size a flag takes: anything bigger is a typo, refused before it overflows
MAX_SEED = 2 ** 32 - 1  # seeds: what numpy and Optuna's samplers take
K_SUFFIX = {"": 1, "k": 1_000}
SIZE_SUFFIXES = {"": 1, "k": 1_000, "m": 1_000_000}


def _count(text: str, suffixes: dict[str, int], malformed: str, what: str) -> int:
    """'25000', '25_000', '25,000' or (with a suffix of ``suffixes``) '25k' -> 25000, in 1..MAX_COUNT."""
    m = re.fullmatch(r"([+-]?[0-9]+)([a-zA-Z]?)", text.strip().replace("_", "").replace(",", ""))
    if m is None or m.group(2).lower() not in suffixes:
        raise argparse.ArgumentTypeError(malformed)
    value = int(m.group(1)) * suffixes[m.group(2).lower()]
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive number{what} (got {value})")
    if value > MAX_COUNT:
        raise argparse.ArgumentTypeError(f"must be at most {MAX_COUNT:,}{what} (got {text.strip()})")
    return value


def positive_int(text: str, what: str = "") -> int:
    """'25000', '25_000', '25,000' or '25k' -> 25000 (1..MAX_COUNT; ``what``: the unit in the message)."""
    return _count(text, K_SUFFIX, f"{text!r} is not a whole number", what)


def size_int(text: str, what: str = "") -> int:
    """'300k' -> 300000, '2M' -> 2000000, '20000' -> 20000 (k = 1,000 and M = 1,000,000,
    for bytes too; 1..MAX_COUNT)."""
    return _count(text, SIZE_SUFFIXES, f"{text!r} is not a size: use a whole number with an optional k (1,000) or "
                                       "M (1,000,000) suffix, e.g. 300k", what)


def macs_int(text: str) -> int:
    return size_int(text, " of multiply-accumulates")


def bytes_int(text: str) -> int:
    return size_int(text, " of bytes")


def whole_in(lo: int, hi: int) -> Callable[[str], int]:
    """A flag's parser of whole numbers in lo..hi (text that is none: argparse's "invalid
    int value: 'x'")."""
    def parse(text: str) -> int:
        value = int(text)
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(_range_message(value, lo, hi))
        return value
    parse.__name__ = "int"  # argparse names the type in "invalid int value"
    return parse


SEED_RANGE = f"must be a whole number in 0..{MAX_SEED}"


def seed_int(text: str) -> int:
    """A seed: a whole number in 0..MAX_SEED."""
    value = int(text)
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"{SEED_RANGE} (got {value})")
    return value


seed_int.__name__ = "int"


def finite_float(text: str) -> float:
    """float(text), refusing nan and inf (the settings check the range)."""
    value = float(text)
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number (got {text!r})")
    return value


finite_float.__name__ = "float"


def text_flag(text: str) -> str:
    """A flag's text value, refused when empty (it would silently mean the default)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty: give a value or leave it out")
    return text


def tier_list(text: str) -> list[int]:
    """'2k,5k,10k,25k' -> [2000, 5000, 10000, 25000]."""
    try:
        tiers = [positive_int(t.strip()) for t in text.split(",") if t.strip()]
    except argparse.ArgumentTypeError:
        tiers = []
    if not tiers:
        raise argparse.ArgumentTypeError(f"{text!r} is not a list of parameter counts like 2k,5k,10k,25k")
    return sorted(set(tiers))


def _range_message(value: Any, lo: float, hi: float) -> str:
    return f"must be at least {lo} (got {value})" if value < lo else f"must be at most {hi:,} (got {value})"


# --- the settings' checks (ConfigError: one line) ----------------------------------------
def require(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


def check_whole(value: Any, option: str, lo: int = 1, hi: int = MAX_COUNT, low: str | None = None) -> None:
    """A whole-number setting in lo..hi (``low``: what to say below lo, after the option)."""
    require(isinstance(value, numbers.Integral) and not isinstance(value, bool),
            f"{option} must be a whole number (got {value!r})")
    require(lo <= value <= hi, f"{option} {low if low and value < lo else _range_message(value, lo, hi)}")


def check_real(value: Any, option: str, lo: float, hi: float = math.inf, lo_open: bool = False,
               hi_open: bool = False, message: str | None = None) -> None:
    """A finite number setting between lo and hi (ends included unless open); nan and inf
    are refused whatever the range."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value) \
        and (lo < value if lo_open else lo <= value) and (value < hi if hi_open else value <= hi)
    require(ok, message or f"{option} must be a finite number in {'(' if lo_open else '['}{lo:g}, {hi:g}"
                           f"{')' if hi_open else ']'} (got {value!r})")


def check_seed(value: Any, option: str) -> None:
    require(isinstance(value, numbers.Integral) and not isinstance(value, bool) and 0 <= value <= MAX_SEED,
            f"{option} {SEED_RANGE} (got {value!r})")


def check_text(value: Any, option: str, what: str) -> None:
    """A text setting given as a non-empty string (empty would silently mean the default)."""
    require(isinstance(value, str) and value.strip() != "", f"{option} must not be empty: {what}")


def check_study_name(name: Any) -> None:
    """A study name: printable, non-empty, without '/' (it names files), at most 200 characters."""
    require(isinstance(name, str) and name.strip() != "" and "/" not in name and name.isprintable()
            and len(name) <= 200, f"--study must be a non-empty name without '/' or control characters, at most 200 "
                                  f"characters (got {name!r:.60})")
