"""`cmcgns pretrain`: the training loop (DDP via torchrun, AMP, grad accumulation, resume)."""

from __future__ import annotations

import contextlib
import math
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from cmcgns.config.loading import dump_config, save_resolved_config
from cmcgns.config.packaged import check_required
from cmcgns.config.resolve import config_hash, resolve_components  # noqa: F401  (re-exported)
from cmcgns.config.schema import PretrainConfig
from cmcgns.data.bootstrap import ensure_synthetic_mimic
from cmcgns.data.manifest import records_meanings
from cmcgns.data.pretrain_dataset import DeterministicBatches, PairDataset, ReportCollator
from cmcgns.errors import CmcgnsError, ConfigError, DataError, TrainingError
from cmcgns.io.atomic import write_json
from cmcgns.models.text_encoder import load_tokenizer
from cmcgns.training import checkpoint as ckpt
from cmcgns import distributed as ddp
from cmcgns.training.chance import judge_summary
from cmcgns.training.mechanism import score_memory, sentence_features
from cmcgns.training.evaluate import (
    embed_split,
    linear_probe_auc,
    linear_probe_auc_fraction,
    probe_label_counts,
    retrieval_recall,
)
from cmcgns.export import write_export
from cmcgns.joint.export import DIR_NAME as JOINT_DIR, export_trained_model
from cmcgns.training.metrics_log import MetricsLog
from cmcgns.training.runtime import (
    build_optimizer_kwargs,
    channels_last,
    enable_fast_paths,
    loader_options,
    loader_workers,
    busy_machine_hint,
    run_record,
    torch_threads,
    resolve_precision,
    select_device,
    wrap_ddp,
)
from cmcgns.training.run_folder import RunLock, check_resume_config, prepare_new_run
from cmcgns.training.schedule import StagePlan, warmup_cosine
from cmcgns.training.step import StepSettings, train_step
from cmcgns.training.task import PretrainTask, build_task


REQUIRED_FIELDS = ["data.manifest", "model.text.path", "model.text.tokenizer_path", "model.image.pretrained_path"]


def build_model(config: PretrainConfig) -> PretrainTask:
    """The trainable task (model + objective) of a config."""
    return build_task(config)


def build_collator(config: PretrainConfig) -> ReportCollator:
    """The batch collator for a config: its tokenizer (tokenizer_path, else the text model's)."""
    text = config.model.text
    field = "model.text.tokenizer_path" if text.tokenizer_path else "model.text.path"
    tokenizer = load_tokenizer(text.tokenizer_path or text.path, field)
    return ReportCollator(tokenizer, config.data.max_tokens, config.data.max_sentences)


def check_meanings_recorded(train_set: PairDataset, manifest: Path, sampler_name: str) -> None:
    """A sampler that reads the sentences' meanings needs data that records them (synthetic)."""
    if not records_meanings(train_set.rows):
        raise DataError(
            f"{manifest}: sampler {sampler_name} reads the sentences' recorded meanings, which only the synthetic "
            "data has (sentences[].meaning); use another sampler.name for this data"
        )


def _param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (no_decay if p.ndim < 2 or name.endswith(".bias") else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def build_optimizer(
    model: torch.nn.Module, config: PretrainConfig, device: torch.device | None = None
) -> torch.optim.Optimizer:
    groups = _param_groups(model, config.train.weight_decay)
    extra = build_optimizer_kwargs(device or torch.device("cpu"))
    if config.train.optimizer == "adam":  # official: Adam with L2 weight decay
        return torch.optim.Adam(groups, lr=config.train.lr, **extra)
    return torch.optim.AdamW(groups, lr=config.train.lr, **extra)


def build_scheduler(optimizer: torch.optim.Optimizer, config: PretrainConfig, plan: StagePlan, segment: int):
    start, end = plan.segments[segment]
    length, warmup = end - start, min(plan.warmup, end - start)
    train = config.train
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: warmup_cosine(s, warmup, length, floor=train.min_lr_ratio, start=train.warmup_start)
    )


def prepare_data(config: PretrainConfig) -> Path:
    if config.data.manifest is not None:
        manifest = Path(config.data.manifest)
        if not manifest.is_dir():
            raise ConfigError(
                f"data.manifest: {manifest} is not a folder; give a preprocessed mimic-cxr folder "
                f"(cmcgns preprocess mimic-cxr --source RAW --out DIR)"
            )
        return manifest
    root = Path(config.run_dir) / "data"
    if ddp.is_main():
        syn = config.data.synthetic
        ensure_synthetic_mimic(root, syn.studies, syn.seed, syn.raw_image_size, config.data.image_size)
    if ddp.is_distributed():
        torch.distributed.barrier()
    return root / "mimic-cxr"


def report(message: str) -> None:
    """One plain line on stderr from rank 0 (readable in a cluster job's log)."""
    if ddp.is_main():
        print(message, file=sys.stderr, flush=True)


def pretrain(
    config: PretrainConfig,
    resume: str | None = None,
    progress: bool = True,
    stop_after: int | None = None,
    overwrite: bool = False,
    allow_config_change: bool = False,
    allow_world_size_change: bool = False,
) -> dict[str, Any]:
    """Train; `stop_after` ends the run early at that global step (used to test resume).

    The run folder is locked for the run (a second process fails at once); a new run into a folder
    with checkpoints needs `overwrite`; `resume` ('auto' or a path) refuses a changed config unless
    `allow_config_change` (changes that do not alter training, e.g. logging, are always allowed), and
    a checkpoint made with another number of processes unless `allow_world_size_change`."""
    check_required(config, REQUIRED_FIELDS)
    ddp.init_from_env()
    config = resolve_components(config)
    run_dir = Path(config.run_dir)
    with contextlib.ExitStack() as stack:
        if ddp.is_main():
            stack.enter_context(RunLock(run_dir))
            prepare_new_run(run_dir, resume, overwrite)
        return _pretrain(
            config, run_dir, resume, progress, stop_after, allow_config_change, allow_world_size_change, overwrite
        )


def _latest_good_or_none(run_dir: Path, overwrite: bool) -> tuple[Path, dict[str, Any]] | None:
    """--resume auto: the newest good checkpoint (damaged ones moved aside by the main rank); when
    every one is damaged the run stops, unless `overwrite` asked to start again."""
    try:
        return ckpt.load_latest_good(run_dir, report, set_aside=ddp.is_main())
    except CmcgnsError as exc:
        if not overwrite:
            raise
        report(f"warning: {exc}; --overwrite given: starting again from step 1")
        return None


def _pretrain(
    config: PretrainConfig,
    run_dir: Path,
    resume: str | None,
    progress: bool,
    stop_after: int | None,
    allow_config_change: bool,
    allow_world_size_change: bool = False,
    overwrite: bool = False,
) -> dict[str, Any]:
    started = time.time()
    device = select_device(config.train.device)
    precision = resolve_precision(device, config.train.precision)
    enable_fast_paths(device)
    workers = loader_workers(config.data.num_workers, device)
    threads = torch_threads(config.train.threads, workers)
    torch.set_num_threads(threads)
    hint = busy_machine_hint(threads) if device.type == "cpu" and ddp.is_main() else None
    if hint:
        report(hint)
    main = ddp.is_main()
    start = 0
    state = None
    resume_path = None
    if resume == "auto":
        found = _latest_good_or_none(run_dir, overwrite)
        if found is not None:
            resume_path, state = found
        elif main:
            report(f"resume auto: no checkpoint in {run_dir.resolve() / ckpt.CHECKPOINT_DIR}; starting a new run")
    else:
        resume_path = ckpt.resolve_resume(run_dir, resume)
        state = ckpt.load_checkpoint(resume_path) if resume_path is not None else None
    if state is not None:
        accepted = check_resume_config(resume_path, state.get("config"), dump_config(config), allow_config_change)
        for line in accepted:
            report(f"config changed on resume: {line}")
        check_resume_world_size(resume_path, state, allow_world_size_change)
    if main:
        run_dir.mkdir(parents=True, exist_ok=True)
        save_resolved_config(config, run_dir)  # after the resume checks: always the config actually used
        if config.data.manifest is None:
            report(
                f"data: no data.manifest given, training on the built-in SYNTHETIC MIMIC-CXR "
                f"({config.data.synthetic.studies} generated studies); give --set data.manifest=DIR for real data"
            )
    manifest = prepare_data(config)
    collate = build_collator(config)
    train_set = PairDataset(
        manifest,
        config.data.train_split,
        config.data.image_size,
        train=True,
        seed=config.train.seed,
        pairing=config.data.pairing,
    )
    accum = config.train.grad_accum
    steps_per_epoch = max(
        1, DeterministicBatches.batches_per_epoch(len(train_set), config.train.batch_size, ddp.world_size()) // accum
    )
    plan = StagePlan.from_config(config, steps_per_epoch)
    if main:
        world = ddp.world_size()
        report(
            f"batch: {config.train.batch_size} per process x {world} process{'es' if world > 1 else ''}"
            f" x {accum} accumulation = global batch {config.train.batch_size * world * accum} "
            f"({steps_per_epoch} steps per epoch)"
        )

    torch.manual_seed(config.train.seed)  # identical initial weights on every rank
    core = build_task(config).to(device)
    if core.objective.sampler.reads_meanings:  # the oracle upper bound: batches carry the ground truth
        check_meanings_recorded(train_set, manifest, config.sampler.name)
        collate.meanings = True
    channels_last(core.model.image_encoder, device, is_cnn=not core.model.image_encoder.is_vit)
    if config.train.compile:
        core.model.image_encoder.compile()
        core.model.text_encoder.compile()
    scaler = torch.amp.GradScaler("cuda", enabled=precision == "fp16" and device.type == "cuda")

    if state is not None:
        try:
            core.load_state_dict(state["model"])
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()[1:2] or [str(exc)[:200]]
            raise TrainingError(f"{resume_path}: weights do not fit this model ({first[0].strip()})") from None
        scaler.load_state_dict(state["scaler"])
        start = int(state["step"])
        torch.set_rng_state(state["rng"]["torch"])
        if device.type == "cuda" and state["rng"].get("cuda"):
            torch.cuda.set_rng_state_all(state["rng"]["cuda"])
        report(f"resumed from step {start} ({resume_path})")
    total = plan.total
    segment = plan.segment_at(min(start, total - 1))
    optimizer = build_optimizer(core, config, device)
    scheduler = build_scheduler(optimizer, config, plan, segment)
    if state is not None and state.get("segment") == segment:  # same optimiser segment: continue it
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])

    batches = DeterministicBatches(
        len(train_set),
        config.train.batch_size,
        config.train.seed,
        ddp.rank(),
        ddp.world_size(),
        start * accum,
        total * accum,
    )
    # own generator: creating the iterator must not draw from the global RNG (resume would shift it)
    loader = DataLoader(
        train_set,
        batch_sampler=batches,
        collate_fn=collate,
        generator=torch.Generator().manual_seed(config.train.seed),
        **loader_options(workers, device),
    )
    log = MetricsLog(run_dir, config.train.tensorboard) if main else None
    if log is not None:
        log.truncate_after(start)  # steps after the checkpoint are logged again
    end = min(total, stop_after) if stop_after is not None else total
    bar = ProgressReport(main and progress, total, start, config.train.batch_size * accum * ddp.world_size())
    parts: dict[str, float] = {}
    t0 = time.perf_counter()
    core.train()
    iterator = iter(loader)
    task, wrapped_stage = core, None
    settings = StepSettings(
        device, precision, config.train.seed, ddp.rank(), ddp.is_distributed(), accum, config.train.grad_clip
    )
    try:
        for step in range(start, end):
            stage = plan.stage_at(step)
            if stage.name != wrapped_stage:  # static-graph DDP: the used parameters change with the stage
                task, wrapped_stage = wrap_ddp(core, device), stage.name
            if plan.segment_at(step) != segment:  # stage with reset_optimizer: fresh optimiser and warm-up
                segment = plan.segment_at(step)
                optimizer = build_optimizer(core, config, device)
                scheduler = build_scheduler(optimizer, config, plan, segment)
            loss, losses = train_step(
                task, core.parameters, lambda: next(iterator), step, stage.reconstruction, optimizer, scaler, settings
            )
            scheduler.step()
            done = step + 1
            logging_step = done % config.train.log_every == 0 or done == end
            checkpoint_step = done % config.train.checkpoint_every == 0 or done == end
            if logging_step or checkpoint_step:  # the only places losses and statistics reach the host
                parts = {"loss": float(loss.detach()), **{k: float(v.detach()) for k, v in losses.items()}}
                if not all(math.isfinite(v) for v in parts.values()):
                    raise TrainingError(
                        f"non-finite loss at step {done} ({parts}); the last good checkpoint is kept in {run_dir}"
                    )
            if main and logging_step:
                log.log(
                    done,
                    {
                        "stage": stage.name,
                        "lr": scheduler.get_last_lr()[0],
                        "seconds": round(time.perf_counter() - t0, 3),
                        **parts,
                    },
                )
            if checkpoint_step and main:
                ckpt.save_checkpoint(
                    run_dir,
                    done,
                    _state(core, optimizer, scheduler, scaler, done, segment, config, device),
                    config.train.keep_checkpoints,
                )
            if logging_step:
                bar.update(done, stage.name, parts)
    finally:
        bar.close()
        if log is not None:
            log.close()
    summary: dict[str, Any] = {
        "steps": end,
        "data": {"source": "synthetic" if config.data.manifest is None else "manifest", "manifest": str(manifest)},
        "device": str(device),
        "precision": precision,
        "total_steps": total,
        "steps_per_epoch": steps_per_epoch,
        "stage_steps": dict(zip((s.name for s in config.stages), plan.stage_steps)),
        "final_loss": parts.get("loss"),
        "final_losses": {k: v for k, v in parts.items() if k.endswith("_loss")},
        "config_hash": config_hash(config),
        "sampler": {
            "name": config.sampler.name,
            "final": {k.removeprefix("sampler/"): v for k, v in parts.items() if k.startswith("sampler/")},
        },
    }
    if end == total and main:
        export = write_export(
            run_dir / "export",
            core.model.image_encoder.backbone,
            config.model.image.name,
            config.data.image_size,
            config_hash=config_hash(config),
            run_id=run_dir.name,
        )
        logit_scale = float(1.0 / core.objective.global_temperature().detach())
        joint = export_trained_model(
            run_dir / JOINT_DIR, core.model, config, collate.tokenizer, logit_scale, run_dir.name
        )
        summary["export"] = {
            "dir": str(export.directory),
            "timm": str(export.timm_file),
            "mm": str(export.mm_file),
            "weights": export.weights_id,
            "model": str(joint.directory),
            "model_weights": joint.weights_id,
        }
        if config.train.evaluate:
            summary["eval"] = evaluate_model(core.model, config, manifest, collate, device)
            mechanism = score_sampler(core, config, manifest, collate, device)
            if mechanism is not None:
                summary["mechanism"] = mechanism
        summary["chance"] = judge_summary(summary, loss_chance(config, parts))
        summary["runtime"] = run_record(started, start, threads, workers)  # export and evaluation included
        write_json(run_dir / "summary.json", summary)
    if ddp.is_distributed():
        torch.distributed.barrier()
    return summary


def _state(
    task: PretrainTask,
    optimizer,
    scheduler,
    scaler,
    step: int,
    segment: int,
    config: PretrainConfig,
    device: torch.device,
) -> dict[str, Any]:
    rng = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        rng["cuda"] = torch.cuda.get_rng_state_all()
    return {
        "model": task.state_dict(),
        "sampler": task.objective.sampler.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict(),
        "step": step,
        "segment": segment,
        "rng": rng,
        "config_hash": config_hash(config),
        "config": dump_config(config),
        "world_size": ddp.world_size(),
    }


def check_resume_world_size(path: Path | None, state: dict[str, Any], allow: bool) -> None:
    """A checkpoint resumes with the number of processes it was made with: the sampler's gathered batch,
    the global batch and each rank's data order all change with it."""
    made = int(state.get("world_size", 1))
    now = ddp.world_size()
    if made == now:
        return
    if not allow:
        raise TrainingError(
            f"{path}: made with {made} process(es), this run has {now}; resume with the same world size "
            f"(torchrun --nnodes x --nproc_per_node = {made}), or pass --allow-world-size-change to continue "
            f"with a different gathered batch and data order"
        )
    report(f"resuming a {made}-process checkpoint with {now} processes (--allow-world-size-change)")


def evaluate_model(model, config: PretrainConfig, manifest: Path, collate, device) -> dict[str, float | None]:
    def loader(split: str):
        ds = PairDataset(manifest, split, config.data.image_size, train=False)
        return DataLoader(ds, batch_size=32, collate_fn=collate)

    try:
        eval_loader = loader(config.data.eval_split)
    except DataError:  # tiny datasets may have no validation split
        eval_loader = loader(config.data.train_split)
    img, txt, eval_feats, eval_labels = embed_split(model, eval_loader, device)
    out = {
        "retrieval_r1": retrieval_recall(img, txt, 1),
        "retrieval_r5": retrieval_recall(img, txt, 5),
        "eval_pairs": len(img),
    }
    _, _, train_feats, train_labels = embed_split(model, loader(config.data.train_split), device)
    probe = (train_feats.numpy(), train_labels.numpy(), eval_feats.numpy(), eval_labels.numpy())
    out["linear_probe_auc"] = linear_probe_auc(*probe)
    out["probe_label_counts"] = probe_label_counts(train_labels.numpy(), eval_labels.numpy())
    out["linear_probe_auc_10pct"] = linear_probe_auc_fraction(*probe, fraction=0.1)
    out["linear_probe_auc_1pct"] = linear_probe_auc_fraction(*probe, fraction=0.01)
    model.train()
    return nan_to_none(out)


def loss_chance(config: PretrainConfig, parts: dict[str, float]) -> dict[str, tuple[float, str]]:
    """Each InfoNCE loss at uniform logits: weight x log(candidates), with what that is."""
    weights = config.objective.weights
    reports = config.train.batch_size * ddp.world_size()
    times = lambda w: f"{w:g} x " if w != 1 else ""  # noqa: E731
    out = {
        "global_loss": (
            weights.global_ * math.log(reports),
            f"{times(weights.global_)}log {reports}: uniform over the gathered batch's reports",
        )
    }
    sentences = parts.get("local_report_candidates")
    if sentences:
        out["local_report_loss"] = (
            weights.local_report * math.log(sentences),
            f"{times(weights.local_report)}log {sentences:g}: uniform over the batch's sentences",
        )
    return out


def nan_to_none(values: dict[str, Any]) -> dict[str, Any]:
    """null (valid JSON) where a value cannot be computed, e.g. no label with enough positives at 1 %."""
    return {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in values.items()}


def score_sampler(task: PretrainTask, config: PretrainConfig, manifest: Path, collate, device) -> dict | None:
    """The sampler's memory scored against the sentences' recorded meanings on the evaluation split
    (`cmcgns.training.mechanism`); None where the data records no meanings (real data)."""
    try:
        ds = PairDataset(manifest, config.data.eval_split, config.data.image_size, train=False)
    except DataError:
        return None
    if not records_meanings(ds.rows):
        return None
    anchors, cross, _, keys = sentence_features(task.model, DataLoader(ds, batch_size=32, collate_fn=collate), device)
    sampler = task.objective.sampler
    memory = getattr(sampler, "memory", None)
    ready = memory is not None and memory.ready
    options = getattr(sampler, "options", None)
    scores = score_memory(
        anchors,
        cross,
        keys,
        memory.centroids if ready else None,
        getattr(options, "cluster_on", "candidates"),
        getattr(options, "false_negative_pairs", "anchors"),
    )
    return nan_to_none(scores)


class ProgressReport:
    """Progress on rank 0: a rich bar on a terminal; outside one (a cluster job's log) a plain line per
    logging step: step, stage, loss, pairs/s, ETA."""

    def __init__(self, enabled: bool, total: int, start: int, pairs_per_step: int) -> None:
        self.bar = None
        self.enabled, self.total, self.start, self.pairs_per_step = enabled, total, start, pairs_per_step
        self.t0 = time.perf_counter()
        if not enabled or not sys.stderr.isatty():
            return
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.bar = Progress(
            TextColumn("[bold]pretrain[/] {task.fields[stage]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
        )
        self.task = self.bar.add_task("pretrain", total=total, completed=start, stage="", loss="-")
        self.bar.start()

    def update(self, done: int, stage: str, parts: dict[str, float]) -> None:
        loss = parts.get("loss", float("nan"))
        if self.bar is not None:
            self.bar.update(self.task, completed=done, stage=stage, loss=f"{loss:.4f}")
        elif self.enabled:
            elapsed = time.perf_counter() - self.t0
            rate = (done - self.start) / elapsed if elapsed > 0 else 0.0
            eta = (self.total - done) / rate if rate > 0 else float("nan")
            eta_text = time.strftime("%H:%M:%S", time.gmtime(eta)) if math.isfinite(eta) else "?"
            print(
                f"pretrain step {done}/{self.total} stage {stage} loss {loss:.4f} "
                f"{rate * self.pairs_per_step:.1f} pairs/s ETA {eta_text}",
                file=sys.stderr,
                flush=True,
            )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
