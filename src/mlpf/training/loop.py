"""Training loop: AdamW, warm-up + cosine schedule, autocast, size-bucketed batches, checkpoints and exact resume.

Outputs in the output directory (rank 0 only):
- `checkpoint.pt`: final weights and everything needed to rebuild the model and resume;
- `last.pt`: resumable state, written every `checkpoint_every` steps, at each epoch end and on SIGTERM;
- `history.csv`: one row per epoch (losses per term, learning rate, validation metrics, elapsed time);
- `model.json`: model settings, parameter count, hardware, training time and provenance.

The events stream from the shards' row groups (mlpf.data.stream): memory holds a window of events, not the
dataset, and DataLoader workers (training.num_workers) read ahead of the step.

Resume is exact: the batches are a pure function of (seed, epoch, rank, world size), and the checkpoint holds
the model, optimiser, scheduler, scaler and RNG states plus the position inside the epoch, so an interrupted and
resumed run ends with the same weights as an uninterrupted one.

Under `torchrun` (WORLD_SIZE > 1) the model is wrapped in DistributedDataParallel (NCCL on CUDA, gloo on CPU)
and the ranks read disjoint pieces of the shards.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import importlib.util
import io
import json
import logging
import math
import os
import platform
import signal
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import torch
import torch.distributed as dist

from mlpf.atomic import write_text_atomic
from mlpf.config import validate_section
from mlpf.data.parquet import read_metadata
from mlpf.data.stream import StreamStats, TrainingData
from mlpf.errors import MlpfError
from mlpf.evaluate.jets import JetDefinition
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
from mlpf.training.metrics import ResponseAccumulator

log = logging.getLogger(__name__)

FINAL_CHECKPOINT = "checkpoint.pt"
RESUME_CHECKPOINT = "last.pt"
# Training settings that do not change what is computed: a run may resume with other values.
RESULT_NEUTRAL_SETTINGS = ("num_workers",)
# Validation events whose element rows are kept before they are reduced to jet and MET responses (~2 kB of rows
# per ttbar event, so memory stays a few MB whatever the size of the validation set).
VALIDATION_METRIC_EVENTS = 2048


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
    batches: Iterable[dict[str, torch.Tensor]],
    settings: dict[str, Any],
    device: torch.device,
    precision: str,
    jets: JetDefinition,
) -> dict[str, float]:
    """Validation loss per term (mean over batches) and the jet pT (jets as `jets` defines them) and MET
    response IQR/median of MLPF and of the baseline PF, over collated `batches` (none: an empty dict)."""
    model.eval()
    sums = dict.fromkeys(("loss", *LOSS_TERMS), 0.0)
    responses = ResponseAccumulator(jets, VALIDATION_METRIC_EVENTS)
    n_batches = 0
    for collated in batches:
        batch = _to(collated, device)
        with autocast_context(device, precision):
            outputs = model(batch["X"], batch["mask"])
        total, terms = mlpf_loss(outputs, batch, settings)
        sums["loss"] += float(total)
        for k, v in terms.items():
            sums[k] += float(v)
        mask = batch["mask"]
        ypred, _ = decode(batch["X"], mask, *outputs)
        responses.add(
            ypred[mask].float().cpu().numpy(),
            batch["ycand"][mask].cpu().numpy(),
            batch["ytarget"][mask].cpu().numpy(),
            mask.sum(1).cpu().numpy(),
        )
        n_batches += 1
    model.train()
    if n_batches == 0:
        return {}
    out = {("val_loss" if k == "loss" else f"val_loss_{k}"): v / n_batches for k, v in sums.items()}
    iqr = responses.iqr_over_median()
    out["val_jet_iqr_over_median"] = iqr["jet"]
    out["val_jet_iqr_over_median_pf"] = iqr["jet_pf"]
    out["val_met_iqr_over_median"] = iqr["met"]
    out["val_met_iqr_over_median_pf"] = iqr["met_pf"]
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
    from torch.utils.tensorboard import SummaryWriter  # noqa: PLC0415 - tensorboard is optional

    return SummaryWriter(log_dir=str(output_dir / "tensorboard"))


@dataclass
class _Setup:
    """What a run is and where it runs: validated settings, inputs and split, device, place under DDP."""

    model_settings: dict[str, Any]
    settings: dict[str, Any]
    dataset_settings: dict[str, Any]
    seed: int
    train_files: list[str]
    output_dir: Path
    n_threads: int
    rank: int
    world_size: int
    device: torch.device
    data: TrainingData  # the training and validation batches of this rank
    total_steps: int
    started: float  # perf_counter() when this process started the run
    jets: JetDefinition  # of the validation's jet metric
    stream: StreamStats = field(default_factory=StreamStats)  # what the training batches held and waited for

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def resume_path(self) -> Path:
        return self.output_dir / RESUME_CHECKPOINT


@dataclass
class _State:
    """What changes as the run goes: the model and its optimisation, the position, the history."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler
    n_params: int
    epoch: int = 0
    step_in_epoch: int = 0
    global_step: int = 0
    elapsed_before: float = 0.0  # seconds trained by earlier processes of a resumed run
    history: list[dict[str, Any]] = field(default_factory=list)
    accum: dict[str, float] = field(default_factory=lambda: dict.fromkeys(("loss", *LOSS_TERMS), 0.0))
    best: dict[str, Any] | None = None  # training.select_checkpoint: {"epoch", "value", "model_state"} so far


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
    jet_settings: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Train a model and write the outputs listed in the module docstring.

    `stop_after_steps` interrupts the run after that many optimiser steps exactly as SIGTERM would (a
    resumable `last.pt`, no final outputs); it exists to test resume. `epoch_callback` receives each epoch's
    history row (losses and validation metrics) after validation; a true return value stops the run the same
    way (stop reason `epoch_callback`), which is how a hyperparameter search prunes a trial. `split_seed`
    (default: `seed`) draws the validation split, so trainings that differ only in their seed can be
    validated on the same events. `jet_settings` is the `evaluation.jets` section the validation's jet metric
    uses (default: its schema defaults). Returns a summary dict with `finished`.
    """
    setup = _prepare(
        train_paths,
        output_dir,
        model_settings,
        training_settings,
        dataset_settings,
        seed,
        threads,
        split_seed,
        jet_settings,
    )
    state = _build(setup)
    if resume and setup.resume_path.is_file():
        _resume(setup, state)
    flag = _StopFlag()
    with _handle_sigterm(flag), _Reporter(setup, state.global_step) as reporter:
        _run_epochs(setup, state, flag, reporter, stop_after_steps, epoch_callback)
    summary = {
        "finished": not flag.stop,
        "stop_reason": flag.reason,
        "global_step": state.global_step,
        "epoch": state.epoch,
        "elapsed_s": _elapsed(setup, state),
    }
    if flag.stop:
        if setup.is_main:
            save_checkpoint(setup.resume_path, _checkpoint(setup, state, finished=False))
            log.warning(
                "stopped (%s) at step %d; resume with --resume from %s",
                flag.reason,
                state.global_step,
                setup.resume_path,
            )
        return summary
    if setup.is_main:
        _write_outputs(setup, state)
    if setup.world_size > 1 and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
    return summary


def _prepare(
    train_paths: Sequence[str | Path],
    output_dir: str | Path,
    model_settings: dict[str, Any] | None,
    training_settings: dict[str, Any] | None,
    dataset_settings: dict[str, Any] | None,
    seed: int,
    threads: int | None,
    split_seed: int | None,
    jet_settings: dict[str, Any] | None,
) -> _Setup:
    """Validate the settings, claim the threads and the device, read the inputs and split them."""
    started = time.perf_counter()
    model_settings = validate_section("model", model_settings or {}, source="--model-settings")
    settings = validate_section("training", training_settings or {}, source="--settings")
    dataset_settings = validate_section("dataset", dataset_settings or {}, source="--dataset-settings")
    jets = _jet_definition(jet_settings)
    n_threads = set_threads(threads)
    rank, world_size, device = _init_distributed(settings["device"])

    data = TrainingData(
        train_paths,
        validation_fraction=dataset_settings["validation_fraction"],
        split_seed=seed if split_seed is None else split_seed,
        seed=seed,
        batch_size=settings["batch_size"],
        window=settings["shuffle_window"],
        num_workers=settings["num_workers"],
        rank=rank,
        world_size=world_size,
    )
    steps = [data.steps(epoch) for epoch in range(settings["epochs"])]
    if min(steps) == 0:
        raise MlpfError(f"too few training events ({data.n_train}) for {world_size} process(es)")
    total_steps = sum(steps)
    if settings["max_steps"]:
        total_steps = min(total_steps, settings["max_steps"])
    return _Setup(
        model_settings=model_settings,
        settings=settings,
        dataset_settings=dataset_settings,
        seed=seed,
        train_files=[str(p) for p in train_paths],
        output_dir=Path(output_dir),
        n_threads=n_threads,
        rank=rank,
        world_size=world_size,
        device=device,
        data=data,
        total_steps=total_steps,
        started=started,
        jets=jets,
    )


def _jet_definition(jet_settings: dict[str, Any] | None) -> JetDefinition:
    """The validation's jet definition from an `evaluation.jets` section (validated, defaults filled)."""
    evaluation = validate_section("evaluation", {"jets": jet_settings or {}}, source="--jet-settings")
    return JetDefinition.from_settings(evaluation["jets"])


def _build(setup: _Setup) -> _State:
    """The model (seeded), AdamW, the learning-rate schedule and the gradient scaler, at step 0."""
    settings = setup.settings
    torch.manual_seed(setup.seed)
    # Same config, same weights: without this, two CPU trainings of the default run with 2 threads diverged
    # within the first epoch (a kernel with a thread-order-dependent reduction); with it they are identical
    # at no measured cost in speed. warn_only: an op with no deterministic implementation warns, not fails.
    torch.use_deterministic_algorithms(True, warn_only=True)
    model = build_model(setup.model_settings).to(setup.device)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=settings["learning_rate"], weight_decay=settings["weight_decay"]
    )
    warmup = round(settings["warmup_fraction"] * setup.total_steps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lr_lambda(setup.total_steps, warmup, settings["lr_schedule"], settings["min_lr_ratio"])
    )
    scaler = torch.amp.GradScaler(setup.device.type, enabled=settings["precision"] == "fp16")
    n_params = sum(p.numel() for p in model.parameters())
    return _State(model, optimizer, scheduler, scaler, n_params)


def _resume(setup: _Setup, state: _State) -> None:
    """Continue from the resumable checkpoint, which must come from the same settings, seed and inputs."""
    saved = load_checkpoint(setup.resume_path)

    def result_settings(settings: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in settings.items() if k not in RESULT_NEUTRAL_SETTINGS}

    same = (
        saved["model_settings"] == setup.model_settings
        and result_settings(saved["training_settings"]) == result_settings(setup.settings)
        and saved["dataset_settings"] == setup.dataset_settings
        and saved["seed"] == setup.seed
        and saved["train_files"] == setup.train_files
    )
    if not same:
        raise MlpfError(
            "settings, seed or inputs differ from the checkpoint's; cannot resume", path=setup.resume_path
        )
    state.model.load_state_dict(saved["model_state"])
    state.optimizer.load_state_dict(saved["optimizer_state"])
    state.scheduler.load_state_dict(saved["scheduler_state"])
    state.scaler.load_state_dict(saved["scaler_state"])
    torch.set_rng_state(saved["rng_state"])
    if setup.device.type == "cuda" and saved.get("cuda_rng_state") is not None:
        torch.cuda.set_rng_state(saved["cuda_rng_state"], setup.device)
    state.epoch, state.step_in_epoch = saved["epoch"], saved["step_in_epoch"]
    state.global_step, state.elapsed_before = saved["global_step"], saved["elapsed_s"]
    state.history, state.accum = saved["history"], saved["accum"]
    state.best = saved.get("best")
    log.info("resuming from %s at epoch %d, step %d", setup.resume_path, state.epoch, state.global_step)


def _elapsed(setup: _Setup, state: _State) -> float:
    """Seconds trained so far, earlier processes of a resumed run included."""
    return state.elapsed_before + time.perf_counter() - setup.started


def _checkpoint(setup: _Setup, state: _State, finished: bool) -> dict[str, Any]:
    """Everything needed to rebuild the model and to resume exactly where the run stands."""
    device = setup.device
    return {
        "format": CHECKPOINT_FORMAT,
        "finished": finished,
        "model_settings": setup.model_settings,
        "training_settings": setup.settings,
        "dataset_settings": setup.dataset_settings,
        "seed": setup.seed,
        "train_files": setup.train_files,
        "model_state": state.model.state_dict(),
        "optimizer_state": state.optimizer.state_dict(),
        "scheduler_state": state.scheduler.state_dict(),
        "scaler_state": state.scaler.state_dict(),
        "rng_state": torch.get_rng_state(),
        "cuda_rng_state": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
        "epoch": state.epoch,
        "step_in_epoch": state.step_in_epoch,
        "global_step": state.global_step,
        "history": state.history,
        "accum": state.accum,
        "best": state.best,
        "elapsed_s": _elapsed(setup, state),
        "n_params": state.n_params,
        "provenance": provenance(
            {"model": setup.model_settings, "training": setup.settings, "dataset": setup.dataset_settings},
            seed=setup.seed,
        ),
    }


class _Reporter:
    """Progress bar and TensorBoard scalars of the main process (the other ranks report nothing)."""

    def __init__(self, setup: _Setup, start_step: int) -> None:
        self.bar = progress_bar("train", total=setup.total_steps, unit="step") if setup.is_main else None
        self.writer = _tensorboard(setup.output_dir) if setup.is_main else None
        if self.bar is not None:
            self.bar.update(start_step)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.close()
        if self.writer is not None:
            self.writer.close()

    def step(self, epoch: int, loss: float) -> None:
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(epoch=epoch, loss=f"{loss:.3f}")

    def epoch(self, row: dict[str, Any], global_step: int) -> None:
        if self.writer is None:
            return
        for key, value in row.items():
            if key not in ("epoch", "step"):
                self.writer.add_scalar(key, value, global_step)
        self.writer.flush()


def _run_epochs(
    setup: _Setup,
    state: _State,
    flag: _StopFlag,
    reporter: _Reporter,
    stop_after_steps: int | None,
    epoch_callback: Callable[[dict[str, Any]], bool | None] | None,
) -> None:
    """Epochs from where the state stands until the last step, or until `flag` says stop (SIGTERM,
    `stop_after_steps`, the epoch callback); a resumable checkpoint after every finished epoch."""
    net = _parallel(setup, state.model)
    net.train()
    first_step, stepping = state.global_step, 0.0
    while state.global_step < setup.total_steps and state.epoch < setup.settings["epochs"]:
        plan = setup.data.epoch(state.epoch)
        started = time.perf_counter()
        with contextlib.closing(setup.data.batches(plan, state.step_in_epoch, setup.stream)) as batches:
            for batch in batches:
                loss = _optimiser_step(setup, state, net, batch)
                reporter.step(state.epoch, loss)
                if stop_after_steps is not None and state.global_step >= stop_after_steps:
                    flag.stop, flag.reason = True, "stop_after_steps"
                if flag.stop or state.global_step >= setup.total_steps:
                    break
                every = setup.settings["checkpoint_every"]
                if setup.is_main and every and state.global_step % every == 0:
                    save_checkpoint(setup.resume_path, _checkpoint(setup, state, finished=False))
        stepping += time.perf_counter() - started
        epoch_done = state.step_in_epoch >= len(plan) or state.global_step >= setup.total_steps
        if epoch_done and _end_epoch(setup, state, reporter, epoch_callback):
            flag.stop, flag.reason = True, "epoch_callback"
        if flag.stop:
            break
        if setup.is_main and epoch_done:
            save_checkpoint(setup.resume_path, _checkpoint(setup, state, finished=False))
    if setup.is_main and state.global_step > first_step:
        log.info(
            "%d training steps in %.1f s (%.3f steps/s), %.1f s of it waiting for data; at most %d events held",
            state.global_step - first_step,
            stepping,
            (state.global_step - first_step) / stepping,
            setup.stream.wait_s,
            setup.stream.peak_events,
        )


def _parallel(setup: _Setup, model: torch.nn.Module) -> torch.nn.Module:
    """The model wrapped in DistributedDataParallel under torchrun, else the model itself."""
    if setup.world_size <= 1:
        return model
    device = setup.device
    return torch.nn.parallel.DistributedDataParallel(
        model, device_ids=[device.index] if device.type == "cuda" else None
    )


def _optimiser_step(
    setup: _Setup, state: _State, net: torch.nn.Module, collated: dict[str, torch.Tensor]
) -> float:
    """One batch forward and backward, one optimiser and scheduler step; returns the batch loss."""
    settings = setup.settings
    batch = _to(collated, setup.device)
    with autocast_context(setup.device, settings["precision"]):
        outputs = net(batch["X"], batch["mask"])
    loss, terms = mlpf_loss(outputs, batch, settings)
    state.optimizer.zero_grad(set_to_none=True)
    state.scaler.scale(loss).backward()
    if settings["grad_clip"] > 0:
        state.scaler.unscale_(state.optimizer)
        torch.nn.utils.clip_grad_norm_(state.model.parameters(), settings["grad_clip"])
    state.scaler.step(state.optimizer)
    state.scaler.update()
    state.scheduler.step()
    state.step_in_epoch += 1
    state.global_step += 1
    value = float(loss.detach())
    state.accum["loss"] += value
    for k, v in terms.items():
        state.accum[k] += float(v)
    return value


def _end_epoch(
    setup: _Setup,
    state: _State,
    reporter: _Reporter,
    epoch_callback: Callable[[dict[str, Any]], bool | None] | None,
) -> bool:
    """Validate, record the epoch's history row (log, TensorBoard, history.csv) and move to the next epoch;
    returns whether the epoch callback asks to stop."""
    row = _epoch_row(
        state.epoch, state.global_step, state.step_in_epoch, state.scheduler, state.accum, setup.world_size
    )
    row.update(
        validate(
            state.model,
            setup.data.validation_batches(),
            setup.settings,
            setup.device,
            setup.settings["precision"],
            setup.jets,
        )
    )
    row["elapsed_s"] = _elapsed(setup, state)
    _remember_if_best(setup, state, row)
    state.history.append(row)
    state.epoch, state.step_in_epoch = state.epoch + 1, 0
    state.accum = dict.fromkeys(state.accum, 0.0)
    if setup.is_main:
        log.info("epoch %d: %s", row["epoch"], json.dumps(row))
        reporter.epoch(row, state.global_step)
        write_text_atomic(setup.output_dir / "history.csv", _history_csv(state.history))
    if epoch_callback is None:
        return False
    return _callback_says_stop(epoch_callback, row, setup.is_main, setup.world_size, setup.device)


def _remember_if_best(setup: _Setup, state: _State, row: dict[str, Any]) -> None:
    """Keep a copy of the weights when this epoch has the lowest value yet of training.select_checkpoint."""
    metric = setup.settings["select_checkpoint"]
    if metric == "last":
        return
    value = row.get(metric)
    if not isinstance(value, float) or not math.isfinite(value):
        return  # no jet matched on a small validation set, say: this epoch cannot be chosen
    if state.best is None or value < state.best["value"]:
        weights = {k: v.detach().cpu().clone() for k, v in state.model.state_dict().items()}
        state.best = {"epoch": row["epoch"], "value": value, "model_state": weights}


def _write_outputs(setup: _Setup, state: _State) -> None:
    """The final checkpoint (also the resumable state: a retry finds the run finished), history and model.json.

    With training.select_checkpoint the final checkpoint holds the weights of the selected epoch."""
    final = _checkpoint(setup, state, finished=True)
    if state.best is not None:
        final["model_state"] = state.best["model_state"]
    save_checkpoint(setup.output_dir / FINAL_CHECKPOINT, final)
    save_checkpoint(setup.resume_path, final)
    write_text_atomic(setup.output_dir / "history.csv", _history_csv(state.history))
    info = {
        "model": setup.model_settings,
        "n_params": state.n_params,
        # inputs the model computes from the element features (the model card reports them without torch)
        "n_derived_inputs": state.model.n_derived_inputs,
        "training": setup.settings,
        "dataset": setup.dataset_settings,
        "validation_jets": dataclasses.asdict(setup.jets),
        "seed": setup.seed,
        "train_files": setup.train_files,
        "train_event_source": merge_records(
            [read_metadata(p).get("event_source") for p in setup.train_files]
        ),
        "n_train_events": setup.data.n_train,
        "n_validation_events": setup.data.n_validation,
        "steps": state.global_step,
        "epochs": state.epoch,
        "training_time_s": round(final["elapsed_s"], 3),
        "hardware": _hardware(setup.device, setup.n_threads, setup.world_size),
        "final": state.history[-1] if state.history else {},
        "selected_epoch": state.best["epoch"] if state.best is not None else state.epoch,
        "selected_by": setup.settings["select_checkpoint"],
        "provenance": final["provenance"],
    }
    write_text_atomic(setup.output_dir / "model.json", json.dumps(info, indent=2, default=str) + "\n")


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
