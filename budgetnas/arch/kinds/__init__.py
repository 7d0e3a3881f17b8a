"""Layer kinds: one module per kind in this folder, found when the registry is first read.

A kind is a frozen dataclass subclassing LayerKind, with its fields (the spec JSON's
keys), its output shape, parameter and MAC counts, the bytes alive while it runs in an
int8 inference, its row in the layer table, its token in the architecture string, its
checks, and its torch part. The torch part is defined inside the module's cached
``torch_part()``, so counting a spec never imports torch; its source is what an
exported model.py copies, so it may use only ``torch``, ``nn`` and the objects it
returns. A new kind is a new module here (see conv.py, pool.py); its test must check
its counts on the built model (tests/test_budgets.py hooks the layers it knows).
"""
from __future__ import annotations

import dataclasses
import functools
import importlib
import pkgutil
from typing import Any, Callable, ClassVar

from ...config import ConfigError


class LayerKind:
    """Base of the layer kinds. Shapes are (channels, side) of square maps."""

    kind: ClassVar[str]  # the spec JSON's "kind"

    # --- the spec JSON (a file format: keys and their order are stable) ---
    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **dataclasses.asdict(self)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "LayerKind":
        fields = {k: v for k, v in d.items() if k != "kind"}
        try:
            return cls(**fields)
        except TypeError as e:
            raise ConfigError(f"malformed spec ({e}): export one with 'budgetnas export'") from None

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
        """Raise ConfigError if layer ``i`` cannot be built on ``cin`` input channels."""

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
    kind = d.get("kind", "conv")
    if kind not in kinds:
        raise ConfigError(f"spec layer {i}: kind must be one of {', '.join(map(repr, sorted(kinds)))} (got {kind!r})")
    return kinds[kind].from_dict(d)
