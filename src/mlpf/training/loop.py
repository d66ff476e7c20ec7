"""Training loop: AdamW, warm-up + cosine schedule, autocast, size-bucketed batches, checkpoints and exact resume.

Outputs in the output directory (rank 0 only):
- `checkpoint.pt`: final weights and everything needed to rebuild the model and resume;
- `last.pt`: resumable state, written every `checkpoint_every` steps, at each epoch end and on SIGTERM;
- `history.csv`: one row per epoch (losses per term, learning rate, validation metrics, elapsed time);
- `model.json`: model settings, parameter count, hardware, training time and provenance.

Resume is exact: the batch order is a pure function of (seed, epoch), and the checkpoint holds the model,
optimiser, scheduler, scaler and RNG states plus the position inside the epoch, so an interrupted and resumed
run ends with the same weights as an uninterrupted one.

Under `torchrun` (WORLD_SIZE > 1) the model is wrapped in DistributedDataParallel (NCCL on CUDA, gloo on CPU)
and each rank takes every WORLD_SIZE-th batch.
"""

from __future__ import annotations

import contextlib
import csv
import importlib.util
import io
import json
import logging
import math
import os
import platform
import signal
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from mlpf.atomic import write_text_atomic
from mlpf.config import validate_section
from mlpf.data.dataset import BucketBatchSampler, ParquetEventDataset, collate, train_validation_split
from mlpf.data.parse import read_metadata
from mlpf.errors import MlpfError
from mlpf.model.factory import build_model
from mlpf.model.losses import LOSS_TERMS, mlpf_loss
from mlpf.model.targets import decode
from mlpf.progress import progress_bar
from mlpf.provenance import merge_records, provenance
from mlpf.runtime import (
    CHECKPOINT_FORMAT,
    autocast_context,
    load_checkpoint,
    pick_device,
    save_checkpoint,
    set_threads,
)
from mlpf.training.metrics import jet_response_iqr_over_median, met_response_iqr_over_median

log = logging.getLogger(__name__)

FINAL_CHECKPOINT = "checkpoint.pt"
RESUME_CHECKPOINT = "last.pt"


def lr_lambda(total_steps: int, warmup_steps: int, schedule: str, min_ratio: float):
    """Multiplier of the peak learning rate at each step: linear warm-up, then cosine decay or constant."""

    def f(step: int) -> float:
        if warmup_steps and step < warmup_steps:
            return (step + 1) / warmup_steps
        if schedule == "constant":
            return 1.0
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))

    return f


class _StopFlag:
    """Set by SIGTERM (a batch system ending the job): the loop saves a resumable checkpoint and stops."""

    def __init__(self) -> None:
        self.stop = False
        self.reason = ""

    def __call__(self, signum: int, frame: Any) -> None:
        self.stop, self.reason = True, signal.Signals(signum).name


@contextlib.contextmanager
def _handle_sigterm(flag: _StopFlag) -> Iterator[None]:
    try:
        previous = signal.signal(signal.SIGTERM, flag)
    except ValueError:  # not the main thread: no signal handling
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _init_distributed(device_choice: str) -> tuple[int, int, torch.device]:
    """(rank, world size, device); initialises the process group from torchrun's environment variables."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return 0, 1, pick_device(device_choice)
    device = pick_device(device_choice)
    if device.type == "cuda":
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return dist.get_rank(), world_size, device


def _to(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


@torch.no_grad()
def validate(
    model: torch.nn.Module,
    dataset: ParquetEventDataset,
    settings: dict[str, Any],
    device: torch.device,
    precision: str,
) -> dict[str, float]:
    """Validation loss per term (mean over batches) and the jet pT and MET response IQR/median of MLPF and of
    the baseline PF."""
    if len(dataset) == 0:
        return {}
    model.eval()
    sampler = BucketBatchSampler(dataset.sizes(), settings["batch_size"], seed=0, shuffle=False)
    sums = dict.fromkeys(("loss", *LOSS_TERMS), 0.0)
    rows: dict[str, list[np.ndarray]] = {"pred": [], "cand": [], "target": [], "counts": []}
    n_batches = 0
    for indices in sampler:
        batch = _to(collate([dataset[i] for i in indices]), device)
        with autocast_context(device, precision):
            outputs = model(batch["X"], batch["mask"])
        total, terms = mlpf_loss(outputs, batch, settings)
        sums["loss"] += float(total)
        for k, v in terms.items():
            sums[k] += float(v)
        mask = batch["mask"]
        ypred, _ = decode(batch["X"], mask, *outputs)
        rows["pred"].append(ypred[mask].float().cpu().numpy())
        rows["cand"].append(batch["ycand"][mask].cpu().numpy())
        rows["target"].append(batch["ytarget"][mask].cpu().numpy())
        rows["counts"].append(mask.sum(1).cpu().numpy())
        n_batches += 1
    model.train()
    out = {("val_loss" if k == "loss" else f"val_loss_{k}"): v / n_batches for k, v in sums.items()}
    flat = {k: np.concatenate(v) for k, v in rows.items()}
    out["val_jet_iqr_over_median"] = jet_response_iqr_over_median(
        flat["pred"], flat["target"], flat["counts"]
    )
    out["val_jet_iqr_over_median_pf"] = jet_response_iqr_over_median(
        flat["cand"], flat["target"], flat["counts"]
    )
    out["val_met_iqr_over_median"] = met_response_iqr_over_median(
        flat["pred"], flat["target"], flat["counts"]
    )
    out["val_met_iqr_over_median_pf"] = met_response_iqr_over_median(
        flat["cand"], flat["target"], flat["counts"]
    )
    return out


def _hardware(device: torch.device, threads: int, world_size: int) -> dict[str, Any]:
    info: dict[str, Any] = {
        "device": str(device),
        "cpu": platform.processor() or platform.machine(),
        "threads": threads,
        "world_size": world_size,
        "torch": torch.__version__,
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def _history_csv(rows: list[dict[str, Any]]) -> str:
    columns: list[str] = []
    for row in rows:
        columns.extend(k for k in row if k not in columns)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    return buf.getvalue()


def _tensorboard(output_dir: Path) -> Any:
    """A TensorBoard writer under OUTPUT_DIR/tensorboard when the tensorboard package is installed, else None."""
    if importlib.util.find_spec("tensorboard") is None:
        return None
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(log_dir=str(output_dir / "tensorboard"))


def train(
    train_paths: Sequence[str | Path],
    output_dir: str | Path,
    model_settings: dict[str, Any] | None = None,
    training_settings: dict[str, Any] | None = None,
    dataset_settings: dict[str, Any] | None = None,
    seed: int = 42,
    threads: int | None = None,
    resume: bool = False,
    stop_after_steps: int | None = None,
    epoch_callback: Callable[[dict[str, Any]], bool | None] | None = None,
    split_seed: int | None = None,
) -> dict[str, Any]:
    """Train a model and write the outputs listed in the module docstring.

    `stop_after_steps` interrupts the run after that many optimiser steps exactly as SIGTERM would (a
    resumable `last.pt`, no final outputs); it exists to test resume. `epoch_callback` receives each epoch's
    history row (losses and validation metrics) after validation; a true return value stops the run the same
    way (stop reason `epoch_callback`), which is how a hyperparameter search prunes a trial. `split_seed`
    (default: `seed`) draws the validation split, so trainings that differ only in their seed can be
    validated on the same events. Returns a summary dict with `finished`.
    """
    t_start = time.perf_counter()
    model_settings = validate_section("model", model_settings or {}, source="--model-settings")
    settings = validate_section("training", training_settings or {}, source="--settings")
    dataset_settings = validate_section("dataset", dataset_settings or {}, source="--dataset-settings")
    output_dir = Path(output_dir)
    n_threads = set_threads(threads)
    rank, world_size, device = _init_distributed(settings["device"])
    is_main = rank == 0

    data = ParquetEventDataset(train_paths)
    train_idx, val_idx = train_validation_split(
        data.n_total, dataset_settings["validation_fraction"], seed if split_seed is None else split_seed
    )
    train_set, val_set = data.subset(train_idx), data.subset(val_idx)
    sampler = BucketBatchSampler(
        train_set.sizes(), settings["batch_size"], seed, rank=rank, world_size=world_size
    )
    steps_per_epoch = len(sampler)
    if steps_per_epoch == 0:
        raise MlpfError(f"too few training events ({len(train_set)}) for {world_size} process(es)")
    total_steps = settings["epochs"] * steps_per_epoch
    if settings["max_steps"]:
        total_steps = min(total_steps, settings["max_steps"])

    torch.manual_seed(seed)
    # Same config, same weights: without this, two CPU trainings of the default run with 2 threads diverged
    # within the first epoch (a kernel with a thread-order-dependent reduction); with it they are identical
    # at no measured cost in speed. warn_only: an op with no deterministic implementation warns, not fails.
    torch.use_deterministic_algorithms(True, warn_only=True)
    model = build_model(model_settings).to(device)
    n_params = sum(p.numel() for p in model.parameters())
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=settings["learning_rate"], weight_decay=settings["weight_decay"]
    )
    warmup = round(settings["warmup_fraction"] * total_steps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lr_lambda(total_steps, warmup, settings["lr_schedule"], settings["min_lr_ratio"])
    )
    scaler = torch.amp.GradScaler(device.type, enabled=settings["precision"] == "fp16")

    epoch, step_in_epoch, global_step, elapsed_before = 0, 0, 0, 0.0
    history: list[dict[str, Any]] = []
    accum = dict.fromkeys(("loss", *LOSS_TERMS), 0.0)
    resume_path = output_dir / RESUME_CHECKPOINT
    if resume and resume_path.is_file():
        state = load_checkpoint(resume_path)
        same = (
            state["model_settings"] == model_settings
            and state["training_settings"] == settings
            and state["dataset_settings"] == dataset_settings
            and state["seed"] == seed
            and state["train_files"] == [str(p) for p in train_paths]
        )
        if not same:
            raise MlpfError(
                "settings, seed or inputs differ from the checkpoint's; cannot resume", path=resume_path
            )
        model.load_state_dict(state["model_state"])
        optimizer.load_state_dict(state["optimizer_state"])
        scheduler.load_state_dict(state["scheduler_state"])
        scaler.load_state_dict(state["scaler_state"])
        torch.set_rng_state(state["rng_state"])
        if device.type == "cuda" and state.get("cuda_rng_state") is not None:
            torch.cuda.set_rng_state(state["cuda_rng_state"], device)
        epoch, step_in_epoch, global_step = state["epoch"], state["step_in_epoch"], state["global_step"]
        history, accum, elapsed_before = state["history"], state["accum"], state["elapsed_s"]
        log.info("resuming from %s at epoch %d, step %d", resume_path, epoch, global_step)

    net: torch.nn.Module = model
    if world_size > 1:
        net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )

    def state_dict(finished: bool) -> dict[str, Any]:
        return {
            "format": CHECKPOINT_FORMAT,
            "finished": finished,
            "model_settings": model_settings,
            "training_settings": settings,
            "dataset_settings": dataset_settings,
            "seed": seed,
            "train_files": [str(p) for p in train_paths],
            "model_state": model.state_dict(),
            "optimizer_state": optimizer.state_dict(),
            "scheduler_state": scheduler.state_dict(),
            "scaler_state": scaler.state_dict(),
            "rng_state": torch.get_rng_state(),
            "cuda_rng_state": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
            "epoch": epoch,
            "step_in_epoch": step_in_epoch,
            "global_step": global_step,
            "history": history,
            "accum": accum,
            "elapsed_s": elapsed_before + time.perf_counter() - t_start,
            "n_params": n_params,
            "provenance": provenance(
                {"model": model_settings, "training": settings, "dataset": dataset_settings}, seed=seed
            ),
        }

    flag = _StopFlag()
    bar = progress_bar("train", total=total_steps, unit="step") if is_main else None
    writer = _tensorboard(output_dir) if is_main else None
    if bar is not None:
        bar.update(global_step)
    net.train()
    with _handle_sigterm(flag):
        while global_step < total_steps and epoch < settings["epochs"]:
            sampler.set_epoch(epoch)
            batches = sampler.batches()
            for indices in batches[step_in_epoch:]:
                batch = _to(collate([train_set[i] for i in indices]), device)
                with autocast_context(device, settings["precision"]):
                    outputs = net(batch["X"], batch["mask"])
                loss, terms = mlpf_loss(outputs, batch, settings)
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                if settings["grad_clip"] > 0:
                    scaler.unscale_(optimizer)
                    torch.nn.utils.clip_grad_norm_(model.parameters(), settings["grad_clip"])
                scaler.step(optimizer)
                scaler.update()
                scheduler.step()
                step_in_epoch += 1
                global_step += 1
                accum["loss"] += float(loss.detach())
                for k, v in terms.items():
                    accum[k] += float(v)
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(epoch=epoch, loss=f"{float(loss.detach()):.3f}")
                if stop_after_steps is not None and global_step >= stop_after_steps:
                    flag.stop, flag.reason = True, "stop_after_steps"
                if flag.stop or global_step >= total_steps:
                    break
                if (
                    is_main
                    and settings["checkpoint_every"]
                    and global_step % settings["checkpoint_every"] == 0
                ):
                    save_checkpoint(resume_path, state_dict(finished=False))
            epoch_done = step_in_epoch >= len(batches) or global_step >= total_steps
            if epoch_done:
                row = _epoch_row(epoch, global_step, step_in_epoch, scheduler, accum, world_size)
                row.update(validate(model, val_set, settings, device, settings["precision"]))
                row["elapsed_s"] = elapsed_before + time.perf_counter() - t_start
                history.append(row)
                epoch, step_in_epoch = epoch + 1, 0
                accum = dict.fromkeys(accum, 0.0)
                if is_main:
                    log.info("epoch %d: %s", row["epoch"], json.dumps(row))
                    if writer is not None:
                        for key, value in row.items():
                            if key not in ("epoch", "step"):
                                writer.add_scalar(key, value, global_step)
                        writer.flush()
                    write_text_atomic(output_dir / "history.csv", _history_csv(history))
                if epoch_callback is not None and _callback_says_stop(
                    epoch_callback, row, is_main, world_size, device
                ):
                    flag.stop, flag.reason = True, "epoch_callback"
            if flag.stop:
                break
            if is_main and epoch_done:
                save_checkpoint(resume_path, state_dict(finished=False))
    if bar is not None:
        bar.close()
    if writer is not None:
        writer.close()

    elapsed = elapsed_before + time.perf_counter() - t_start
    summary = {
        "finished": not flag.stop,
        "stop_reason": flag.reason,
        "global_step": global_step,
        "epoch": epoch,
        "elapsed_s": elapsed,
    }
    if flag.stop:
        if is_main:
            save_checkpoint(resume_path, state_dict(finished=False))
            log.warning(
                "stopped (%s) at step %d; resume with --resume from %s", flag.reason, global_step, resume_path
            )
        return summary

    if is_main:
        final = state_dict(finished=True)
        save_checkpoint(output_dir / FINAL_CHECKPOINT, final)
        save_checkpoint(resume_path, final)
        write_text_atomic(output_dir / "history.csv", _history_csv(history))
        info = {
            "model": model_settings,
            "n_params": n_params,
            "training": settings,
            "dataset": dataset_settings,
            "seed": seed,
            "train_files": [str(p) for p in train_paths],
            "train_event_source": merge_records([read_metadata(p).get("event_source") for p in train_paths]),
            "n_train_events": len(train_set),
            "n_validation_events": len(val_set),
            "steps": global_step,
            "epochs": epoch,
            "training_time_s": round(elapsed, 3),
            "hardware": _hardware(device, n_threads, world_size),
            "final": history[-1] if history else {},
            "provenance": final["provenance"],
        }
        write_text_atomic(output_dir / "model.json", json.dumps(info, indent=2, default=str) + "\n")
    if world_size > 1 and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
    return summary


def _callback_says_stop(
    callback: Callable[[dict[str, Any]], bool | None],
    row: dict[str, Any],
    is_main: bool,
    world_size: int,
    device: torch.device,
) -> bool:
    """Rank 0 asks the callback; under DDP every rank gets its answer, so that all of them stop together."""
    stop = bool(callback(dict(row))) if is_main else False
    if world_size > 1:
        decision = torch.tensor([float(stop)], device=device)
        dist.broadcast(decision, src=0)
        stop = bool(decision.item())
    return stop


def _epoch_row(
    epoch: int, global_step: int, n_steps: int, scheduler: Any, accum: dict[str, float], world_size: int
) -> dict[str, Any]:
    values = torch.tensor([accum[k] for k in accum], dtype=torch.float64)
    if world_size > 1:
        dist.all_reduce(values)
        values /= world_size
    means = dict(zip(accum, (values / max(1, n_steps)).tolist(), strict=True))
    row: dict[str, Any] = {"epoch": epoch + 1, "step": global_step, "lr": scheduler.get_last_lr()[0]}
    row["train_loss"] = means.pop("loss")
    row.update({f"train_loss_{k}": v for k, v in means.items()})
    return row
