"""Layer kinds: one module per kind in this folder, found when the registry is first read.

A kind is a frozen dataclass subclassing LayerKind, with its fields (the spec JSON's
keys), its output shape, parameter and MAC counts, the bytes alive while it runs in an
int8 inference, its row in the layer table, its token in the architecture string, its
checks, and its torch part. The torch part is defined inside the module's cached
``torch_part()``, so counting a spec never imports torch; its source is what an
exported model.py copies, so it may use only ``torch``, ``nn`` and the objects it
returns. A new kind is a new module here (see conv.py, pool.py); its test must check
its counts on the built model (tests/test_budgets.py hooks the layers it knows).

**The spec schema** is here too, one for the spec and every kind: a field's type is its
annotation ('int' a whole number, never a bool; 'float' a finite number; 'bool'; 'str'),
what it takes beyond that is its ``rule(...)`` (a range, choices, odd). check_fields
refuses an unknown key, a wrong type or a value out of range, one problem per message,
before any count is made; a kind's ``check`` adds what depends on its input (groups).
"""
from __future__ import annotations

import dataclasses
import functools
import importlib
import json
import math
import pkgutil
from typing import Any, Callable, ClassVar

from ...config import ConfigError

MAX_WIDTH = 65_536  # channels of a layer or of the input, a hidden width, classes
MAX_SIDE = 4_096  # pixels of an image side, at the input and after any layer
MAX_KERNEL = 31  # a conv's kernel side
MAX_HIDDEN = 16  # hidden linear layers of a head


def rule(default: Any, lo: float | None = None, hi: float | None = None, *, below: float | None = None,
         choices: tuple | None = None, odd: bool = False) -> Any:
    """A spec field with what it takes beyond its type: ``lo <= v <= hi`` (``v < below``),
    one of ``choices``, odd. Its default and the JSON are unchanged (a file format)."""
    return dataclasses.field(default=default, metadata={"lo": lo, "hi": hi, "below": below, "choices": choices,
                                                        "odd": odd})


def shown(v: Any) -> str:
    """A value as the JSON said it, short: null, true, "8", NaN, 1000000000000, a list."""
    if v is None or isinstance(v, (bool, float)):
        return json.dumps(v)
    if isinstance(v, int):
        return str(v) if v.bit_length() < 64 else f"a number of about {int(v.bit_length() * 0.30103)} digits"
    if isinstance(v, str):
        return json.dumps(v[:40] + ("..." if len(v) > 40 else ""))
    if type(v) in (list, tuple):
        scalar = all(e is None or type(e) in (bool, int, float, str) for e in v)
        text = "[" + ", ".join(shown(e) for e in v[:8]) + "]" if scalar and len(v) <= 8 else ""
        return text if text and len(text) <= 60 else f"a list of {len(v):,}"
    return "an object" if isinstance(v, dict) else f"a {type(v).__name__}"


def wanted(kind: str, meta: Any) -> str:
    """What a field takes, in words: 'a whole number from 1 to 65,536', "'gap' or 'flatten'"."""
    if meta.get("choices"):
        words = [json.dumps(c) if isinstance(c, str) else str(c) for c in meta["choices"]]
        return ", ".join(words[:-1]) + " or " + words[-1]
    if kind.startswith("tuple"):
        return f"a list of at most {MAX_HIDDEN} whole numbers from {meta['lo']:,} to {meta['hi']:,}"
    what = {"int": "a whole number", "float": "a number", "bool": "true or false", "str": "a string"}[kind]
    if meta.get("odd"):
        what = "an odd whole number"
    lo, hi, below = meta.get("lo"), meta.get("hi"), meta.get("below")
    if below is not None:
        return f"{what} from {lo:g} to below {below:g}"
    return what + (f" from {lo:,} to {hi:,}" if hi is not None else f" >= {lo:,}" if lo is not None else "")


def fits(kind: str, meta: Any, v: Any) -> bool:
    """Whether ``v`` is of the field's type (bool is not a number) and within its rule."""
    if kind.startswith("tuple"):  # hidden widths: a short list of whole numbers
        return type(v) in (list, tuple) and len(v) <= MAX_HIDDEN and all(fits("int", meta, h) for h in v)
    ok = {"int": type(v) is int, "float": type(v) is int or type(v) is float and math.isfinite(v),
          "bool": type(v) is bool, "str": type(v) is str}[kind]
    if not ok or kind in ("bool", "str") and not meta.get("choices"):
        return ok
    lo, hi, below, choices = (meta.get(k) for k in ("lo", "hi", "below", "choices"))
    return ((choices is None or v in choices) and (lo is None or v >= lo) and (hi is None or v <= hi)
            and (below is None or v < below) and not (meta.get("odd") and v % 2 == 0))


def check_fields(cls: type, values: dict, where: str, ignore: tuple = ("kind",)) -> None:
    """ConfigError for the first key of ``values`` that is not a field of ``cls`` (nor in
    ``ignore``), or whose value is not of the field's type and rule; ``where`` names it
    ('spec layer 2 (conv)')."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key, v in values.items():
        if key in ignore:
            continue
        if key not in fields:
            known = [k for k in fields if k != "layers"]
            raise ConfigError(f"{where}: unknown key {shown(key)}: remove it ("
                              + (f"the keys are {', '.join(known)})" if known else "it takes none but kind)"))
        f = fields[key]
        if f.name != "layers" and not fits(f.type, f.metadata, v):
            raise ConfigError(f"{where}: {key} must be {wanted(f.type, f.metadata)} (got {shown(v)})")


class LayerKind:
    """Base of the layer kinds. Shapes are (channels, side) of square maps."""

    kind: ClassVar[str]  # the spec JSON's "kind"

    # --- the spec JSON (a file format: keys and their order are stable) ---
    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **dataclasses.asdict(self)}

    @classmethod
    def from_dict(cls, d: dict[str, Any], i: int = 0) -> "LayerKind":
        """Layer ``i`` of a spec's JSON: every key a field, of its type and rule (ConfigError)."""
        check_fields(cls, d, f"spec layer {i} ({cls.kind})")
        return cls(**{k: v for k, v in d.items() if k != "kind"})

    def check_fields(self, i: int) -> None:
        """The schema's check of this layer's values (a layer made in Python, not read)."""
        check_fields(type(self), dataclasses.asdict(self), f"spec layer {i} ({self.kind})")

    # --- counts ---
    def out_shape(self, c: int, s: int) -> tuple[int, int]:
        raise NotImplementedError

    def params(self, cin: int) -> int:
        return 0

    def macs(self, cin: int, s_in: int, cout: int, s_out: int) -> int:
        return 0

    def live_bytes(self, cin: int, s_in: int, cout: int, s_out: int) -> int:
        """Bytes alive while this step of an int8 inference runs: its input and its output
        (1 byte per element), plus any tensor it keeps for later (a skip connection)."""
        return cin * s_in * s_in + cout * s_out * s_out

    # --- views ---
    def describe(self, cin: int, cout: int) -> str:
        """Its 'layer' cell in the layer table, e.g. 'conv 3x3 8->16 +BN +ReLU'."""
        raise NotImplementedError

    def token(self) -> str:
        """Its word in the one-line architecture string, e.g. '16', 'P'."""
        raise NotImplementedError

    def check(self, i: int, cin: int) -> None:
        """Raise ConfigError if layer ``i`` cannot be built on ``cin`` input channels (its
        fields have passed the schema)."""

    # --- torch (imported only when called) ---
    @staticmethod
    def torch_part() -> tuple[Callable, tuple]:
        """(build, objects): ``build(layer_dict, cin, next_layer_dict) -> (module, cout,
        takes_next)`` (``takes_next``: the module also runs the next layer, whose place
        then holds an nn.Identity) and the classes and functions model.py copies."""
        raise NotImplementedError


@functools.cache
def registry() -> dict[str, type[LayerKind]]:
    """{kind name: class} of every module in this folder."""
    kinds: dict[str, type[LayerKind]] = {}
    for info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{info.name}")
        for obj in vars(module).values():
            if isinstance(obj, type) and issubclass(obj, LayerKind) and obj is not LayerKind and obj.__module__ == \
                    module.__name__:
                kinds[obj.kind] = obj
    return kinds


def layer_from_dict(d: Any, i: int = 0) -> LayerKind:
    """A layer of a spec's JSON; ConfigError naming the layer if it is not one."""
    kinds = registry()
    if not isinstance(d, dict):
        raise ConfigError(f"spec layer {i}: a layer is a JSON object with a 'kind' (got {type(d).__name__})")
    kind = d.get("kind", "conv")  # 0.1.0's layers were convs unless they said otherwise
    if type(kind) is not str or kind not in kinds:
        raise ConfigError(f"spec layer {i}: kind must be one of {', '.join(map(repr, sorted(kinds)))} "
                          f"(got {shown(kind)})")
    return kinds[kind].from_dict(d, i)
