"""Architectures as data: ArchSpec (spec.py), one module per layer kind (kinds/), the
analytic counts (parameters, MACs, peak int8 RAM) and budget checks (spec.py), and the
torch builder with the standalone source exports copy (build.py: the only module here
that imports torch; import it as ``budgetnas.arch.build``)."""
from .kinds import LayerKind, layer_from_dict, registry
from .kinds.avgpool import AvgPool
from .kinds.conv import Conv
from .kinds.mbconv import MBConv
from .kinds.pool import Pool
from .kinds.res import Residual
from .spec import (COUNTS, POOL, UNITS, ArchSpec, activation_table, conv, feature_shape, head_dims, layer_table,
                   macs, over_budgets, param_count, peak_ram, separable, summary, validate, walk, within)

__all__ = ["ArchSpec", "LayerKind", "Conv", "Pool", "AvgPool", "Residual", "MBConv", "POOL", "conv", "separable", "registry", "layer_from_dict",
           "walk", "feature_shape", "head_dims", "param_count", "macs", "peak_ram", "layer_table", "activation_table",
           "validate", "over_budgets", "within", "summary", "COUNTS", "UNITS"]
