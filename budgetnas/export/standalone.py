"""The standalone model.py of an export: the network's source (each used layer kind's
torch part and the builder, copied verbatim: arch/build.py), its spec embedded, ``load``,
``preprocess`` and a test-accuracy check on idx files or an .npz; it needs only torch."""
from __future__ import annotations

from pathlib import Path

from ..arch import ArchSpec, macs, param_count
from ..arch.build import spec_dict_for_build, standalone_source
from ..config import VERSION as __version__


MODEL_PY = '''"""{title}

Standalone PyTorch model exported by budgetnas {version}: it needs only torch (no budgetnas).
{params:,} parameters, {macs:,} multiply-accumulates per image; input: {channels}x{size}x{size}
images ({colour}) scaled to [0, 1], then normalised per channel with MEAN and STD below
(see preprocess()); CLASSES names the outputs.

    from model import load
    net = load("weights.pt")            # eval mode; weights loaded with weights_only=True
    logits = net(preprocess(uint8_images))

    python model.py DATA                # prints the test accuracy of weights.pt on DATA: a
                                        # folder of MNIST-style idx files (raw or .gz), or an
                                        # .npz with x_test and y_test (uint8; needs numpy)
"""
from __future__ import annotations

import gzip
import struct
import sys
from pathlib import Path

import torch
from torch import nn

SPEC = {spec}
MEAN, STD = {mean!r}, {std!r}  # per channel: the normalisation used in training ({dataset})
CLASSES = {classes!r}
CHANNELS, SIZE = {channels}, {size}


{standalone}

def build() -> Net:
    return build_from_dict(SPEC, BLOCKS)


def load(weights_path: str | Path | None = None, map_location: str = "cpu") -> Net:
    """The trained network (eval mode). Default weights: weights.pt beside this file."""
    path = Path(weights_path) if weights_path else Path(__file__).with_name("weights.pt")
    net = build()
    net.load_state_dict(torch.load(path, map_location=map_location, weights_only=True))
    return net.eval()


def preprocess(images: torch.Tensor) -> torch.Tensor:
    """uint8 images (N, H, W), (N, C, H, W) or (N, H, W, C) of SIZE x SIZE pixels ->
    normalised float32 (N, CHANNELS, SIZE, SIZE)."""
    x = torch.as_tensor(images)
    x = x.unsqueeze(1) if x.dim() == 3 else x
    if x.shape[1] != CHANNELS and x.shape[-1] == CHANNELS:
        x = x.permute(0, 3, 1, 2)
    mean = torch.tensor(MEAN).view(1, -1, 1, 1)
    std = torch.tensor(STD).view(1, -1, 1, 1)
    return x.float().div(255.0).sub_(mean).div_(std)


def read_idx(path: Path) -> torch.Tensor:
    """An idx file of unsigned bytes (raw or gzip) as a uint8 tensor."""
    if path.suffix == ".gz":
        with gzip.open(path, "rb") as f:
            raw = f.read()
    else:
        raw = path.read_bytes()
    ndim = raw[3]
    dims = struct.unpack(f">{{ndim}}I", raw[4:4 + 4 * ndim])
    return torch.frombuffer(bytearray(raw[4 + 4 * ndim:]), dtype=torch.uint8).reshape(dims)


def _find(folder: Path, stem: str) -> Path:
    for p in (folder / stem, folder / (stem + ".gz")):
        if p.is_file():
            return p
    raise SystemExit(f"{{folder / stem}}[.gz] not found")


@torch.inference_mode()
def accuracy(net: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 1000) -> float:
    correct = 0
    for i in range(0, len(x), batch):
        correct += (net(x[i:i + batch]).argmax(1) == y[i:i + batch]).sum().item()
    return correct / len(x)


def test_set(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """(uint8 images, labels) of an .npz's x_test/y_test, or of an idx folder's t10k files."""
    if path.suffix == ".npz":
        import numpy as np
        with np.load(path, allow_pickle=False) as z:
            if "x_test" not in z.files or "y_test" not in z.files:
                raise SystemExit(f"{{path}} has no x_test and y_test: save them with np.savez")
            return torch.from_numpy(z["x_test"]), torch.from_numpy(z["y_test"]).long()
    if not path.is_dir():
        raise SystemExit(f"{{path}}: pass an .npz with x_test and y_test, or a folder of idx files")
    return read_idx(_find(path, "t10k-images-idx3-ubyte")), read_idx(_find(path, "t10k-labels-idx1-ubyte")).long()


def main(argv: list[str]) -> None:
    net = load()
    print(f"{{sum(p.numel() for p in net.parameters()):,}} parameters")
    if argv:
        images, y = test_set(Path(argv[0]))
        if images.dim() == 4 and images.shape[1] not in (1, 3):
            images = images.permute(0, 3, 1, 2)  # N x H x W x C
        channels = images.shape[1] if images.dim() == 4 else 1
        if tuple(images.shape[-2:]) != (SIZE, SIZE) or channels != CHANNELS:
            raise SystemExit(f"{{argv[0]}}: test images of shape {{tuple(images.shape[1:])}}; this network takes "
                             f"{{CHANNELS}}x{{SIZE}}x{{SIZE}}")
        acc = accuracy(net, preprocess(images), y)
        print(f"test accuracy {{100 * acc:.2f}}% ({{round(acc * len(y))}}/{{len(y)}})")


if __name__ == "__main__":
    main(sys.argv[1:])
'''


def spec_literal(d: dict) -> str:
    """The spec dict as a Python literal, one layer per line."""
    lines = ["{"]
    for key, value in d.items():
        if key == "layers":
            lines += ["    'layers': ["] + [f"        {layer!r}," for layer in value] + ["    ],"]
        else:
            lines.append(f"    {key!r}: {value!r},")
    return "\n".join(lines + ["}"])


def render_model_py(spec: ArchSpec, data: dict, title: str) -> str:
    """model.py for ``spec``; ``data`` is the manifest's data record (mean, std, classes)."""
    c = spec.in_channels
    mean, std = list(data.get("mean") or [0.0]), list(data.get("std") or [1.0])
    mean, std = (mean * c)[:c] if len(mean) == 1 else mean, (std * c)[:c] if len(std) == 1 else std
    classes = data.get("classes") or [str(i) for i in range(spec.num_classes)]
    return MODEL_PY.format(
        title=title, version=__version__, params=param_count(spec), macs=macs(spec), channels=c,
        size=spec.image_size, colour="gray" if c == 1 else "RGB", dataset=Path(str(data.get("dataset", "?"))).name,
        spec=spec_literal(spec_dict_for_build(spec)), mean=mean, std=std, classes=list(classes),
        standalone=standalone_source(spec))
