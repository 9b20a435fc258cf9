"""``minsearch genes MODEL``: list the sites (genes) of a model and the options at each."""

from __future__ import annotations

import argparse
import json
import sys
import time


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "genes",
        help="list the standard components of a model and their options",
        description="MODEL is timm:NAME[?k=v&...] (e.g. 'timm:vit_tiny_patch16_224?img_size=32"
                    "&num_classes=10'), hf:NAME[?k=v&...] (a transformers folder, cached model "
                    "or model type: 'hf:llama?num_hidden_layers=2') or "
                    "package.module:factory[?k=v&...]. The model is built on the meta device: "
                    "no weights, no memory, seconds even for large models.",
    )
    p.add_argument("model", metavar="MODEL")
    p.add_argument("--input-shape", metavar="N,C,H,W",
                   help="example input shape, for shapes of residual sites (default: timm's "
                        "input size, batch 1)")
    p.add_argument("--input-dtype", choices=("float32", "float16", "bfloat16", "int64"),
                   help="dtype of the example input: int64 for token ids (default: int64 for "
                        "transformers text models, else float32)")
    p.add_argument("--json", action="store_true", help="one JSON object per site")
    p.add_argument("--plugin", action="append", default=[], metavar="MODULE",
                   help="import MODULE first (a site kind or options it registers are listed "
                        "too); repeatable")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from minsearch.errors import UserError
    from minsearch.models import (
        build_model,
        default_input_dtype,
        default_input_shape,
        parse_model_spec,
        parse_shape,
    )
    from minsearch.plugins import load_plugins
    from minsearch.sites import find_sites

    load_plugins(args.plugin)
    spec = parse_model_spec(args.model)
    shape = parse_shape(args.input_shape) if args.input_shape else default_input_shape(spec)
    dtype = getattr(torch, args.input_dtype) if args.input_dtype else default_input_dtype(spec)
    example = None if shape is None else torch.empty(shape, dtype=dtype, device="meta")
    start = time.perf_counter()
    model = build_model(spec, device="meta")
    discovery = find_sites(model, example)
    seconds = time.perf_counter() - start
    if discovery.shape_error and args.input_shape:
        raise UserError(f"{discovery.shape_error}; pass the shape the model takes, e.g. "
                        f"--input-shape 1,3,32,32.")
    if args.json:
        json.dump({"model": str(spec), "input_shape": shape,
                   "sites": [s.to_json() for s in discovery.sites],
                   "unavailable": [u.__dict__ for u in discovery.unavailable]},
                  sys.stdout, indent=1)
        print()
        return 0
    _print_table(str(spec), discovery, sum(p.numel() for p in model.parameters()), seconds)
    return 0


def _print_table(spec: str, discovery, params: int, seconds: float) -> None:
    from rich.console import Console
    from rich.table import Table

    from minsearch.sites.kind import describe, kind_names

    console = Console(soft_wrap=False)
    counts = discovery.counts()
    # the kinds it has; the kinds it lacks in one clause (a flow's kinds on a ViT are noise)
    summary = ", ".join(f"{n} {k}" for k, n in counts.items() if n) or "no sites"
    if missing := [k for k, n in counts.items() if not n]:
        summary += f"; none of: {', '.join(missing)}"
    console.print(f"[bold]{spec}[/bold]: {params / 1e6:.1f}M parameters; {summary} "
                  f"(found in {seconds:.2f}s)")
    for kind in kind_names():
        sites = discovery.of_kind(kind)
        if not sites:
            continue
        table = Table(title=f"{kind} ({len(sites)})", title_justify="left", show_edge=False)
        table.add_column("site")
        table.add_column("what")
        table.add_column("options")
        for site in sites:
            table.add_row(site.name, describe(site), " ".join(site.options))
        console.print(table)
    for gap in discovery.unavailable:
        console.print(f"[yellow]{gap.kind} sites unavailable in {gap.where}[/yellow]: "
                      f"{gap.reason}")

