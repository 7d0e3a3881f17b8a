"""The five hand-made MNIST CNNs from public READMEs (seeds A-E), as specs with their
own recipes: candidates a search can start from (--warm-start presets) and architectures
``budgetnas train --preset`` trains. Each has exactly the parameter count its README
gives (E's README says ~22k; its real count is 421,642)."""
from __future__ import annotations

from dataclasses import dataclass

from ..arch import POOL, ArchSpec, conv
from ..config import ConfigError
from ..train.recipe import Recipe


@dataclass(frozen=True)
class Preset:
    name: str
    spec: ArchSpec
    recipe: Recipe  # the recipe its README used (epochs = its stated number)
    params_claimed: int
    claim: str


def _seed_a() -> ArchSpec:
    # conv 1->8->16->32 (3x3 pad 1, bias, BN, ReLU, maxpool each), GAP, FC 32->64->10, dropout 0.3
    layers = []
    for w in (8, 16, 32):
        layers += [conv(w, bias=True), POOL]
    return ArchSpec(tuple(layers), head="gap", hidden=(64,), head_dropout=0.3)


def _seed_b() -> ArchSpec:
    # conv 1->16->32->64 (3x3 pad 1, no bias, BN, ReLU, maxpool each), GAP, dropout 0.1, linear 64->10 no bias
    layers = []
    for w in (16, 32, 64):
        layers += [conv(w), POOL]
    return ArchSpec(tuple(layers), head="gap", head_dropout=0.1, head_bias=False)


def _seed_c() -> ArchSpec:
    # 28 -> 26 -> 24 -> 1x1 (transition, no BN) -> pool 12 -> 10 -> 8 -> 6 -> 4 (16->10) -> GAP
    p = 0.09
    layers = (conv(16, 3, 0, dropout=p), conv(32, 3, 0, dropout=p), conv(8, 1, 0, bn=False, act=False), POOL,
              conv(16, 3, 0, dropout=p), conv(16, 3, 0, dropout=p), conv(16, 3, 0, dropout=p),
              conv(10, 3, 0, bn=False, act=False))
    return ArchSpec(layers, head="gap", linear=False)


def _seed_d() -> ArchSpec:
    p = 0.05
    layers = [conv(10, bias=True, dropout=p), conv(16, bias=True, dropout=p)]
    for _ in range(2):
        layers += [POOL, conv(10, 1, bias=True, bn=False), conv(16, bias=True, dropout=p), conv(16, bias=True, dropout=p)]
    layers.append(conv(10, 1, bias=True, bn=False, act=False))
    return ArchSpec(tuple(layers), head="gap", linear=False)


def _seed_e() -> ArchSpec:
    layers = (conv(32, bias=True, bn=False), POOL, conv(64, bias=True, bn=False), POOL)
    return ArchSpec(layers, head="flatten", hidden=(128,))


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset("A", _seed_a(), Recipe(optimizer="adam", lr=1e-3, schedule="constant", batch_size=128, weight_decay=0.0,
                                      rotate=10.0, translate=0.1, epochs=1),
               8_762, "95.29% test after 1 epoch"),
        Preset("B", _seed_b(), Recipe(optimizer="adam", lr=0.015, schedule="cosine", batch_size=64, weight_decay=0.0,
                                      grad_clip=1.0, epochs=1),
               24_048, "97.68% after 1 epoch"),
        Preset("C", _seed_c(), Recipe(optimizer="sgd", lr=0.01, schedule="constant", batch_size=128, weight_decay=0.0,
                                      momentum=0.9, epochs=20),
               12_400, "99.40% after 20 epochs"),
        Preset("D", _seed_d(), Recipe(optimizer="sgd", lr=0.015, schedule="onecycle", batch_size=128,
                                      weight_decay=0.0, momentum=0.9, rotate=7.0, epochs=16),
               9_798, "99.38% at epoch 16"),
        Preset("E", _seed_e(), Recipe(optimizer="adam", lr=1e-3, schedule="constant", batch_size=64, weight_decay=0.0,
                                      epochs=1),
               22_000, "95.3% on a 12k k-means coreset with a curriculum (claims ~22k params)"),
    )
}


def fits(preset: Preset, shape: tuple[int, int, int] | list[int], num_classes: int) -> bool:
    """Whether a preset takes these images: A-E were made for 1x28x28 digits, 10 classes."""
    spec = preset.spec
    return list(shape) == [spec.in_channels, spec.image_size, spec.image_size] and num_classes == spec.num_classes


def get_preset(name: str) -> Preset:
    key = name.upper()
    if key not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}: use one of {', '.join(PRESETS)} (see 'budgetnas presets')")
    return PRESETS[key]
