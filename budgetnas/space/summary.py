"""What a space can do with a budget: the smallest network it can build (a budget
below it is refused before any work) and how sampled candidates use the budget."""
from __future__ import annotations

from typing import Any, Callable

from ..arch import COUNTS, ArchSpec, macs, param_count, peak_ram
from ..config import ConfigError
from .family import MIN_WIDTH, Space, sample_spec, stage_spec
from .named import named_space


def smallest_of(space: Space, count: Callable[[ArchSpec], int]) -> int:
    """The least ``count(spec)`` (param_count, macs, peak_ram) of the narrowest specs of
    the space with the fewest stages and blocks, of each block kind and downsampling it
    offers (mbconv at its smallest kernel and ratio, without squeeze-excite), a pool
    after the last stage and a GAP head with no hidden layer: a limit below it can find
    nothing."""
    return min(count(stage_spec(space.stages[0], space.blocks_per_stage[0], [MIN_WIDTH] * 8, True, "gap", 0,
                                0.0, 0.0, False, space.in_channels, space.image_size, space.num_classes,
                                block=block, downsample=down, kernel=min(space.kernels), expand=min(space.expand)))
               for block in space.blocks for down in space.downsample)


def smallest_params(space: Space) -> int:
    return smallest_of(space, param_count)


def smallest_macs(space: Space) -> int:
    return smallest_of(space, macs)


def smallest_ram(space: Space) -> int:
    return smallest_of(space, peak_ram)


def check_floors(space: Space, budget: int, max_macs: int | None = None, max_ram: int | None = None,
                 for_data: bool = False) -> None:
    """ConfigError for a budget (params, MACs or peak RAM) below the smallest network the
    space can build; ``for_data``: the space is the one a loaded dataset's input implies."""
    where = " for this data" if for_data else ""
    for flag, value, kind, unit in (("--budget", budget, "params", "params"), ("--max-macs", max_macs, "macs", "MACs"),
                                    ("--max-ram", max_ram, "ram", "bytes of peak RAM")):
        floor = smallest_of(space, COUNTS[kind]) if value is not None else 0
        if value is not None and value < floor:
            raise ConfigError(f"{flag} {value} is below the smallest network the space can build{where} "
                              f"({floor} {unit}): use {flag} {floor} or more")


def space_lines(space: Space) -> list[str]:
    """The space, a line per part: the architectures, then the recipes."""
    def rng(r: tuple) -> str:
        return f"{r[0]:g}" if r[0] == r[1] else f"{r[0]:g}-{r[1]:g}"

    def lst(values: tuple) -> str:
        return ", ".join(str(v).lower() if isinstance(v, bool) else f"{v:g}" if isinstance(v, float) else str(v)
                         for v in values)

    lines = [f"blocks {lst(space.blocks)}; {rng(space.stages)} stages of {rng(space.blocks_per_stage)} blocks, "
             f"widths growing {lst(space.growth)}x per stage (multiples of {space.width_step}), filling "
             f"{rng(space.fill)} of the budget; downsample {lst(space.downsample)}"]
    if "mbconv" in space.blocks:
        lines.append(f"mbconv: kernels {lst(space.kernels)}, expand {lst(space.expand)}, squeeze-excite {lst(space.se)}")
    lines.append(f"heads {lst(space.heads)}, hidden {lst(space.hidden)}; dropout conv {rng(space.conv_dropout)}, "
                 f"head {rng(space.head_dropout)}")
    lines.append("lr " + ", ".join(f"{o} {lo:g}-{hi:g}" for o, (lo, hi) in space.lr.items())
                 + f"; schedules {lst(space.schedules)}; batch {lst(space.batch_sizes)}; weight decay "
                 f"{rng(space.weight_decay)}")
    lines.append(f"augment {lst(space.augment)} (rotate {rng(space.rotate)} degrees, shift {rng(space.translate)}); "
                 f"label smoothing {rng(space.label_smoothing)}" + ("; flips searched" if space.hflip else ""))
    return lines


def _use_stats(uses: list[float]) -> dict[str, Any]:
    inside = sorted(uses)
    quant = {q: inside[min(len(inside) - 1, int(q * len(inside)))] for q in (0.1, 0.25, 0.5, 0.75, 0.9)} if inside else {}
    hist = [0] * 10
    for u in inside:
        hist[min(9, int(u * 10))] += 1
    return {"quantiles": quant, "histogram": hist}


def budget_use_summary(budget: int, n: int = 2000, seed: int = 0, space: Space | None = None,
                       max_macs: int | None = None, max_ram: int | None = None) -> dict[str, Any]:
    """Sample n candidates with a random sampler: share within budget and the
    distribution of budget use (params / budget) among them. With MAC or RAM limits,
    'within' means inside every limit, and ``kinds`` holds the use of each budget
    (value / limit) among those within, and ``binding`` how often each was the tightest."""
    import optuna  # lazily: sampling candidates needs a study

    space = space or named_space("default")
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    limits = {k: v for k, v in (("params", budget), ("macs", max_macs), ("ram", max_ram)) if v}
    uses, ok = [], []  # the tightest use of each candidate; the use of each budget by those within
    for _ in range(n):
        trial = study.ask()
        spec = sample_spec(trial, space, budget, max_macs, max_ram)
        use = {k: COUNTS[k](spec) / limit for k, limit in limits.items()}
        uses.append(max(use.values()))
        if uses[-1] <= 1.0:
            ok.append(use)
        study.tell(trial, 0.0)
    extra: dict[str, Any] = {}
    if len(limits) > 1:
        extra["kinds"] = {k: {"limit": limit, **_use_stats([u[k] for u in ok])} for k, limit in limits.items()}
        extra["binding"] = {k: sum(1 for u in ok if max(u, key=u.get) == k) for k in limits}
    inside = [u for u in uses if u <= 1.0]
    return {"budget": budget, "n": n, "within": len(inside), "share_within": len(inside) / n,
            **_use_stats(inside), **extra}
