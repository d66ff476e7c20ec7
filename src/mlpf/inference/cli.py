"""`mlpf infer` and `mlpf export`: a trained checkpoint over parsed shards, and to ONNX (heavy imports happen
inside the handlers)."""

from __future__ import annotations

import argparse
import logging

log = logging.getLogger("mlpf.inference")


def _infer(args: argparse.Namespace) -> int:
    from mlpf.inference.infer import infer

    n = infer(
        args.checkpoint,
        args.input,
        args.output,
        threads=args.threads,
        batch_size=args.batch_size,
        device=args.device,
        precision=args.precision,
    )
    log.info("wrote %d events to %s", n, args.output)
    return 0


def _export(args: argparse.Namespace) -> int:
    from mlpf.inference.export import export_onnx

    export_onnx(args.checkpoint, args.output, opset=args.opset)
    log.info("wrote %s", args.output)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("infer", help="run a trained model over parsed shards, write predictions")
    p.add_argument("--checkpoint", required=True, help="checkpoint.pt written by mlpf train")
    p.add_argument("--input", nargs="+", required=True, metavar="PARQUET", help="parsed dataset shards")
    p.add_argument("--output", required=True, help="predictions parquet (contract section 4)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: all available cores)")
    p.add_argument("--batch-size", type=int, default=32, help="events per inference batch")
    p.add_argument("--device", default="auto", help="torch device: auto (CUDA if available), cpu, cuda")
    p.add_argument(
        "--precision",
        default="fp32",
        choices=("fp32", "int8", "bf16", "fp16"),
        help="arithmetic: fp32 (as trained), int8 (dynamic quantisation, CPU), bf16, fp16 (CUDA)",
    )
    p.set_defaults(handler=_infer)

    p = subparsers.add_parser("export", help="export a trained model to ONNX")
    p.add_argument("--checkpoint", required=True, help="checkpoint.pt written by mlpf train")
    p.add_argument("--output", required=True, help="model.onnx")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset (>= 17)")
    p.set_defaults(handler=_export)
