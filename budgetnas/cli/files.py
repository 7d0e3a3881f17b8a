"""The commands that make files: ``data`` (fetch, verify and describe a dataset),
``presets``, ``export`` (a study's trial as a bundle) and ``train`` (a spec, an export
or a preset trained into a bundle)."""
from __future__ import annotations

import argparse
import contextlib
import sys
import time
from pathlib import Path
from typing import Iterator

from ..config import ConfigError, DataConfig, ExportIncomplete
from ..train.recipe import Recipe
from .parser import config_kwargs
from .search import data_config


def cmd_data(args: argparse.Namespace) -> int:
    from ..data.sources import source_for
    source = source_for(args.name)  # ConfigError for an unknown name
    cfg = DataConfig(dataset=args.name, val_size=source.default_val_size, **config_kwargs(DataConfig, args, "data"))
    lines = source.describe(cfg)
    for line in lines if lines is not None else own_data_summary(cfg):
        print(line)
    return 0


def own_data_summary(cfg: DataConfig) -> list[str]:
    """What ``budgetnas data FOLDER|FILE.npz|torchvision:NAME`` says: decoded (or read
    from the cache), its images, splits, normalisation and fingerprint."""
    from ..config import env
    from ..data.load import load_data
    from ..run.engine import data_notes
    t0 = time.perf_counter()
    info = load_data(cfg).info
    c, h, w = info["shape"]
    classes = info["classes"]
    shown = ", ".join(classes[:10]) + (f", ... ({len(classes)} in all)" if len(classes) > 10 else "")
    return [f"{cfg.dataset}: {info['images']:,} images of {c}x{h}x{w}, {len(classes)} classes ({shown})",
            f"  train {info['train_size']:,} / val {info['val_size']:,} / test {info['test_size']:,} "
            f"(test: {info['test_from']})",
            f"  mean {info['mean']}, std {info['std']} (per channel, training split)",
            f"  fingerprint {info['fingerprint']}; {'read from' if info['cached'] else 'decoded and cached in'} "
            f"{env.decoded_cache()} in {time.perf_counter() - t0:.2f}s",
            *data_notes(info)[1:]]


def cmd_presets(args: argparse.Namespace) -> int:
    from ..arch import macs, param_count
    from ..space.presets import PRESETS
    print(f"{'preset':6}  {'params':>8}  {'MACs':>10}  claim")
    for name, p in PRESETS.items():
        print(f"{name:6}  {param_count(p.spec):>8,}  {macs(p.spec):>10,}  {p.claim}")
    return 0


def print_bundle(manifest: dict) -> None:
    """The self-check line, the int8 and latency lines, and one note per file that was
    skipped (e.g. ONNX without onnx)."""
    from ..export.formats import FORMATS
    checks, skipped = manifest["checks"], manifest.get("skipped", {})
    parts = [f"{name} {checks[name]:.2g}" if checks.get(name) is not None else
             f"{name} {'skipped' if name in skipped else 'not run'}"
             for name in ("weights.pt", *(f.file for f in FORMATS))]
    print(f"checked (max |logit diff| vs the network, {checks['input']}): " + ", ".join(parts))
    int8, lat = manifest.get("int8"), manifest.get("latency")
    if int8:
        b = int8["bytes"]
        print(f"int8: model.int8.onnx test {100 * int8['int8_test_acc']:.2f}% vs float ONNX "
              f"{100 * int8['float_onnx_test_acc']:.2f}% ({int8['test_images']:,} test images, same class on "
              f"{100 * int8['agreement']:.2f}%); {b['model.int8.onnx']:,} vs {b['model.onnx']:,} bytes")
        if int8.get("problem"):
            print(f"warning: model.int8.onnx fails its check: {int8['problem']}")
    if lat:
        print("latency (median, 1 image, 1 thread, onnxruntime; measured on " + lat["machine"] + "): "
              + ", ".join(f"{name} {ms:.3f} ms" for name, ms in lat["median_ms"].items()))
    for name, why in skipped.items():
        if name == "model.int8.onnx" and "model.onnx" in skipped:
            continue  # made from model.onnx: the note on model.onnx says why
        print(f"note: {name} skipped: {why}")


def cmd_export(args: argparse.Namespace) -> int:
    from ..export.trial import export_trial
    from ..study.create import load_existing
    study, url = load_existing(args.study, args.storage)
    trial, out, manifest = export_trial(study, url, args.out, args.trial, args.rank, args.sort, args.artifacts,
                                        data_dir=args.data_dir)
    acc = lambda v: "-" if v is None else f"{100 * v:.2f}%"
    print(f"exported trial {trial.number} of study {args.study!r} ({manifest['params']:,} params, "
          f"val {acc(manifest['val_acc'])}, test {acc(manifest['test_acc'])}) to {out}")
    print("files: " + ", ".join(manifest["files"]) + ", manifest.json")
    print_bundle(manifest)
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from ..arch import macs, param_count, peak_ram
    from ..data.sources import is_builtin
    from ..export.bundle import spec_from_path
    from ..space.presets import get_preset
    from ..train.recipe import DEFAULT_RECIPE
    if (args.spec is None) == (args.preset is None):
        raise ConfigError("give either a spec (spec.json or an export folder) or --preset NAME")
    overrides = config_kwargs(Recipe, args, "train")
    manifest = None
    if args.preset:
        preset = get_preset(args.preset)
        spec, base, name = preset.spec, preset.recipe.to_dict(), f"preset-{preset.name}"
    else:
        spec, manifest = spec_from_path(args.spec)
        base = (manifest or {}).get("recipe") or DEFAULT_RECIPE.to_dict()
        p = Path(args.spec)
        name = p.resolve().name if p.is_dir() else p.stem
    recipe = Recipe.from_dict({**base, **overrides, "epochs": args.epochs})
    if args.preset and args.dataset and not is_builtin(args.dataset):
        raise ConfigError(f"preset {preset.name} takes 1x28x28 digits with 10 classes, not your own data: "
                          "train a spec exported from a search on it instead")
    params = param_count(spec)
    budget = args.budget or (manifest or {}).get("budget")
    if args.budget and params > args.budget:
        raise ConfigError(f"the spec has {params:,} parameters, over --budget {args.budget:,}: "
                          "pick a smaller spec or raise --budget")
    for flag, limit, cost, unit in (("--max-macs", args.max_macs, macs, "multiply-accumulates per image"),
                                    ("--max-ram", args.max_ram, peak_ram, "bytes of peak activation memory")):
        if limit is not None and cost(spec) > limit:
            raise ConfigError(f"the spec needs {cost(spec):,} {unit}, over {flag} {limit:,}: "
                              f"pick a smaller spec or raise {flag}")
    # an export trains on the data its manifest names (and at its size), unless told otherwise
    dcfg = data_config(args, "train", (manifest or {}).get("data"))
    return _train_and_export(args, spec, recipe, name, dcfg, budget, manifest)


def _train_and_export(args, spec, recipe, name, dcfg, budget, source_manifest) -> int:
    import torch
    from tqdm import tqdm

    from ..arch import param_count
    from ..arch.build import build_model
    from ..data.load import load_data
    from ..export.bundle import data_record, export_bundle, prepare_out
    from ..export.trial import int8_inputs
    from ..run.engine import data_notes
    from ..run.runtime import resolve_device, set_threads, tune_malloc
    from ..train.loop import train
    tune_malloc()
    threads = set_threads(args.threads)
    device = resolve_device(args.device)
    data = load_data(dcfg).to(device)
    c, h, w = data.shape
    if [c, h, w] != [spec.in_channels, spec.image_size, spec.image_size] or data.num_classes != spec.num_classes:
        raise ConfigError(f"the network takes {spec.in_channels}x{spec.image_size}x{spec.image_size} images and "
                          f"{spec.num_classes} classes; {dcfg.dataset} gives {c}x{h}x{w} and {data.num_classes}: "
                          "pass the --dataset it was searched on (or --image-size / --channels to match)")
    wanted = ((source_manifest or {}).get("data") or {}).get("fingerprint")
    if wanted and data.info["fingerprint"] != wanted:
        print(f"note: this data (fingerprint {data.info['fingerprint']}) is not the data of the export "
              f"(fingerprint {wanted})")
    out = prepare_out(args.out or Path("exports") / f"{name}-{args.epochs}ep")
    print(f"training {name}: {param_count(spec):,} params; {recipe.optimizer} lr {recipe.lr:g} {recipe.schedule}, "
          f"batch {recipe.batch_size}, {recipe.epochs} epochs -> {out}")
    print(f"data: {dcfg.dataset} train {data.info['train_size']:,} / val {data.info['val_size']:,} / "
          f"test {data.info['test_size']:,}; device {device}, {threads} threads")
    for line in data_notes(data.info):
        print(line)
    torch.manual_seed(args.seed)
    net = build_model(spec)
    steps = (len(data.train_x) // min(recipe.batch_size, len(data.train_x))) * recipe.epochs
    bar = tqdm(total=steps, desc=f"train {name}", unit="step", disable=args.no_progress, file=sys.stderr,
               dynamic_ncols=True)

    def on_progress(done: int, total: int, acc: float | None) -> None:
        bar.update(done - bar.n)
        if acc is not None:
            bar.set_postfix_str(f"val {100 * acc:.2f}%")

    def on_epoch(h: dict) -> None:
        line = (f"epoch {h['epoch']:>3}/{recipe.epochs}  loss {h['loss']:.4f}  val {100 * h['val_acc']:.2f}%  "
                f"test {100 * h['test_acc']:.2f}%  {h['seconds']:.0f}s")
        tqdm.write(line) if not args.no_progress else print(line, flush=True)

    try:
        result = train(net, data, recipe, device=device, seed=args.seed, progress=on_progress, test_each_epoch=True,
                       on_epoch=on_epoch)
    finally:
        bar.close()
    # from here on nothing measured may be lost: whatever fails, the weights and a manifest
    # with these measurements are on disk first, and the one line says where
    state = {k: v.detach().cpu() for k, v in net.state_dict().items()}
    measured = {"source": "train", "name": name, "preset": args.preset.upper() if args.preset else None,
                "trained_from": str(args.spec) if args.spec else None, "val_acc": result.val_acc,
                "test_acc": result.test_acc, "budget": budget, "seconds": result.seconds, "history": result.history,
                "seeds": {"init": args.seed, "split": dcfg.split_seed}, "recipe": recipe.to_dict()}
    with _kept_on_failure(out, spec, state, measured):
        meta = {**measured,
                "data": data_record(dcfg.dataset, data.info, val_size=data.info["val_size"],
                                    split_seed=dcfg.split_seed, train_limit=dcfg.train_limit,
                                    train_size=data.info["train_size"]),
                "trained_on": {"device": str(device), "torch": torch.__version__}}
        if source_manifest:
            meta["parent"] = {k: source_manifest.get(k) for k in ("study", "trial", "val_acc", "test_acc")}
        manifest = export_bundle(out, spec, state, meta, f"{name} trained by budgetnas for {recipe.epochs} epochs",
                                 int8_data=int8_inputs(data))
    try:
        print(f"saved {out}: val {100 * result.val_acc:.2f}%, test {100 * result.test_acc:.2f}% "
              f"({manifest['params']:,} params, {result.seconds:.0f}s)")
        print_bundle(manifest)
    except BrokenPipeError:
        raise
    except Exception as e:  # the bundle is whole: only its summary is missing
        raise ExportIncomplete(f"{_failure(e, 'printing the summary')}; the bundle in {out} is complete: "
                               "see its manifest.json") from e
    return 0


def _failure(e: BaseException, step: str) -> str:
    return f"{step} failed ({type(e).__name__}: {(str(e).splitlines() or [''])[0][:200]})"


@contextlib.contextmanager
def _kept_on_failure(out: Path, spec, state: dict, measured: dict) -> Iterator[None]:
    """Run the steps after training so that whatever fails, the trained network and
    ``measured`` are on disk first: an exception that has not kept them already (an
    ExportIncomplete has) is turned into an ExportIncomplete whose one line says what
    failed and where they are (``out``, else a temporary folder)."""
    from ..export.bundle import FORMAT, keep_measured, kept_line
    try:
        yield
    except ExportIncomplete:
        raise
    except Exception as e:
        manifest = {"format": FORMAT, "title": f"{measured['name']} (incomplete)", "complete": False, **measured,
                    "spec": spec.to_dict()}
        where, why = keep_measured(out, spec, state, manifest)
        moved = f"cannot write to {out} ({why}): " if why else ""
        raise ExportIncomplete(f"{_failure(e, 'writing the bundle')}; {moved}{kept_line(where, measured)}") from e
