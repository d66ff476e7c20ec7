"""Batch inference: a trained checkpoint over parsed shards -> predictions parquet (docs/contracts.md section 4).

All fields of the input files are copied through; `ypred` (7 columns, as `ytarget`) and `ypred_proba` (6 class
probabilities) are added. Events are batched by size for speed and written back in their input order.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import torch

from mlpf.data.dataset import BucketBatchSampler, ParquetEventDataset, collate
from mlpf.data.parquet import read_metadata, reading, write_table
from mlpf.errors import MlpfError
from mlpf.inference.precision import prepare
from mlpf.model.factory import model_from_checkpoint
from mlpf.model.targets import N_CLASSES, N_PARTICLE_COLUMNS, decode
from mlpf.progress import progress
from mlpf.provenance import merge_records, provenance
from mlpf.runtime import load_checkpoint, pick_device, set_threads

DEFAULT_BATCH_SIZE = 32


@torch.no_grad()
def predict(
    model: torch.nn.Module,
    dataset: ParquetEventDataset,
    batch_size: int,
    device: torch.device,
    arithmetic: contextlib.AbstractContextManager | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Flat predictions in dataset order: (ypred [n_elements, 7], ypred_proba [n_elements, 6], counts).

    `arithmetic` is the context the forward passes run in (autocast of a precision.prepare'd model)."""
    model.eval()
    sizes = dataset.sizes()
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    ypred = np.zeros((offsets[-1], N_PARTICLE_COLUMNS), dtype=np.float32)
    proba = np.zeros((offsets[-1], N_CLASSES), dtype=np.float32)
    sampler = BucketBatchSampler(sizes, batch_size, seed=0, shuffle=False)
    for indices in progress(sampler, desc="infer", total=len(sampler), unit="batch"):
        batch = collate([dataset[i] for i in indices])
        X, mask = batch["X"].to(device), batch["mask"].to(device)
        with arithmetic or contextlib.nullcontext():
            outputs = model(X, mask)
        yp, pp = decode(X, mask, *(o.float() for o in outputs))
        yp, pp = yp.cpu().numpy(), pp.cpu().numpy()
        for row, i in enumerate(indices):  # scatter each event back to its place: a handful per batch
            n = sizes[i]
            ypred[offsets[i] : offsets[i] + n] = yp[row, :n]
            proba[offsets[i] : offsets[i] + n] = pp[row, :n]
    return ypred, proba, sizes


def check_finite(
    ypred: np.ndarray,
    proba: np.ndarray,
    sizes: np.ndarray,
    dataset: ParquetEventDataset,
    checkpoint: str | Path,
) -> None:
    """Refuse predictions with NaN or inf (a damaged checkpoint, or inputs far outside the training range).

    The error names the checkpoint, how many elements are affected and the first input file and event.
    """
    bad = ~(np.isfinite(ypred).all(axis=1) & np.isfinite(proba).all(axis=1))
    if not bad.any():
        return
    first_element = int(np.argmax(bad))
    event = int(np.searchsorted(np.cumsum(sizes), first_element, side="right"))
    shard, local = dataset.locate(event)
    raise MlpfError(
        f"the model predicts non-finite values for {int(bad.sum())} of {len(bad)} elements (first in "
        f"{shard} event {local}); no predictions written",
        path=checkpoint,
    )


def infer(
    checkpoint: str | Path,
    inputs: Sequence[str | Path],
    output: str | Path,
    threads: int | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    device: str = "auto",
    precision: str = "fp32",
) -> int:
    """Write predictions for all events of `inputs` to `output`; returns the number of events.

    `precision`: fp32, int8 (CPU), bf16 or fp16 (CUDA) arithmetic (mlpf.inference.precision)."""
    set_threads(threads)
    state = load_checkpoint(checkpoint)
    torch_device = pick_device(device)
    model, arithmetic = prepare(model_from_checkpoint(state).to(torch_device), precision, torch_device)
    dataset = ParquetEventDataset(inputs)
    ypred, proba, counts = predict(model, dataset, batch_size, torch_device, arithmetic)
    check_finite(ypred, proba, counts, dataset, checkpoint)

    events = []
    for path in inputs:
        with reading(path):
            events.append(ak.from_parquet(path))
    events = ak.concatenate(events) if len(events) > 1 else events[0]
    events = ak.with_field(events, ak.unflatten(ak.to_regular(ak.from_numpy(ypred), axis=1), counts), "ypred")
    events = ak.with_field(
        events, ak.unflatten(ak.to_regular(ak.from_numpy(proba), axis=1), counts), "ypred_proba"
    )
    record: dict[str, Any] = provenance(
        {"model": state["model_settings"]},
        stage="infer",
        precision=precision,
        checkpoint=str(checkpoint),
        inputs=[str(p) for p in inputs],
        event_source=merge_records([read_metadata(p).get("event_source") for p in inputs]),
        model_provenance=state["provenance"],
    )
    write_table(ak.to_arrow_table(events, extensionarray=True), output, record)
    return len(events)
