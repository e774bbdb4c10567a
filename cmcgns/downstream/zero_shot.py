"""Tasks that use the whole model (image and text sides): zero-shot classification from text
prompts and image-report retrieval. They need no training, so label fractions do not apply and
they run once per model (`sweeps = False`); their sets are fixed by ID lists.

- `chexpert-zeroshot`: CheXpert 5x200 (GLoRIA/BenchX), 5-way, accuracy and macro F1
- `rsna-zeroshot`: RSNA pneumonia vs normal on the test split, AUROC, accuracy, F1
- `mimic-retrieval`: MIMIC-CXR 5x200 on the test split (or the whole split), image->report and
  report->image Recall@1/5/10 and median rank, the reports built as pretraining built them
- `openi-zeroshot`, `openi-retrieval`: the same on Open-i's test split (its real reports)

The model is `RUN/model` beside the `--backbone RUN/export` folder (or the folder given); the
random-init baseline is the same architecture randomly initialised (seeded).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import pydantic
import torch
from torch.utils.data import DataLoader

from cmcgns.data.manifest import read_manifest, sentence_texts
from cmcgns.data.preprocess.eval_sets import FIVE_CLASSES, eval_set_rows
from cmcgns.downstream.base import TaskRun
from cmcgns.errors import DataError
from cmcgns.joint.export import DIR_NAME, MANIFEST_FILE, ModelFolder
from cmcgns.plugins import Options, Register, hookimpl


class ZeroShotOptions(Options):
    protocol: Literal["zero-shot"] = pydantic.Field("zero-shot", description="no training: prompts or reports only")
    prompts: Path | None = pydantic.Field(None, description="YAML class -> prompts; unset = packaged prompts.yaml")
    ids: Path | None = pydantic.Field(None, description="id list fixing the evaluation set; unset = the drawn one")
    split: Literal["train", "val", "test"] = pydantic.Field("test", description="split scored when no set is fixed")
    batch_size: int = pydantic.Field(64, ge=1)
    num_workers: int = pydantic.Field(0, ge=0, description="DataLoader workers for image decoding")
    bootstrap: int = pydantic.Field(1000, ge=0, description="bootstrap resamples for the intervals (0 = none)")


class RetrievalOptions(ZeroShotOptions):
    eval_set: Literal["5x200", "split"] = pydantic.Field(
        "5x200", description="5x200: the fixed mimic-5x200 set; split: every row of `split`"
    )


class OpeniRetrievalOptions(RetrievalOptions):
    eval_set: Literal["5x200", "split"] = pydantic.Field(
        "split", description="split: every row of `split` (default for Open-i); 5x200: the openi-5x200 set"
    )


def model_folder_of(path: Path) -> ModelFolder:
    """The whole model for a `--backbone` path: RUN/model itself, a run folder, or RUN/export
    (the model folder beside it)."""
    path = Path(path)
    for candidate in (path, path / DIR_NAME, path.parent / DIR_NAME):
        if (candidate / MANIFEST_FILE).is_file():
            return ModelFolder.read(candidate)
    raise DataError(
        f"{path}: no whole model here or beside it ({DIR_NAME}/{MANIFEST_FILE}); zero-shot and retrieval tasks "
        f"need the image and text sides a finished `cmcgns pretrain` writes to RUN/{DIR_NAME}"
    )


def joint_model(run: TaskRun):
    from cmcgns.joint.model import build_from_folder

    if run.backbone_dir is not None:
        return build_from_folder(model_folder_of(run.backbone_dir)).to(run.device)
    if run.random_init_like is not None:
        return build_from_folder(model_folder_of(run.random_init_like), weights=False, seed=run.seed).to(run.device)
    raise DataError(
        "zero-shot and retrieval tasks need a model: pass --backbone RUN/export (RUN/model beside it) or RUN/model"
    )


def image_embeddings(model, directory: Path, rows: list[dict], opts: ZeroShotOptions, device: str) -> torch.Tensor:
    from cmcgns.downstream.classification import ImageRows

    dataset = ImageRows(directory, rows, [], model.image_size, False, 0)
    loader = DataLoader(dataset, batch_size=opts.batch_size, num_workers=opts.num_workers)
    return torch.cat([model.encode_image(images.to(device)).cpu() for images, _ in loader])


class ZeroShotTask:
    sweeps = False  # no training: one run per model, whatever fractions and seeds the suite lists

    def __init__(
        self, name: str, dataset: str, options: ZeroShotOptions, classes: tuple[str, ...], eval_set: str = ""
    ) -> None:
        self.name, self.dataset, self.options, self.classes = name, dataset, options, classes
        self.eval_set = eval_set  # the fixed set preprocess drew (cmcgns.data.preprocess.eval_sets)

    def evaluation_rows(self, run: TaskRun) -> tuple[list[dict], np.ndarray, dict[str, float]]:
        raise NotImplementedError

    def metric(self, truth: np.ndarray, scores: np.ndarray) -> dict[str, float]:
        raise NotImplementedError

    def run(self, run: TaskRun) -> dict[str, float]:
        from cmcgns.joint.zero_shot import class_embeddings, load_prompts, similarities, with_intervals

        prompts = load_prompts(self.name, self.classes, self.options.prompts)  # before the model: fails fast
        rows, truth, extra = self.evaluation_rows(run)
        model = joint_model(run)
        classes = class_embeddings(model.encode_text, prompts)
        scores = similarities(image_embeddings(model, run.manifest_dir, rows, self.options, run.device), classes)
        result = with_intervals(self.metric, truth, scores, run.seed, self.options.bootstrap)
        return {
            **result,
            **extra,
            "test_rows": float(len(rows)),
            "prompts": float(sum(len(p) for p in prompts.values())),
            "image_size": float(model.image_size),
        }


class FiveClassZeroShot(ZeroShotTask):
    """5-way zero-shot on a 5x200 set (CheXpert's, or Open-i's test images of exactly one class)."""

    def evaluation_rows(self, run: TaskRun) -> tuple[list[dict], np.ndarray, dict[str, float]]:
        manifest = read_manifest(run.manifest_dir)
        rows, labels, _ = eval_set_rows(manifest, self.eval_set, self.options.ids, self.classes)
        truth = np.array([self.classes.index(c) for c in labels])
        per_class = np.bincount(truth, minlength=len(self.classes))
        majority = per_class.max() / max(1, per_class.sum())  # the accuracy of always guessing the largest class
        return rows, truth, {"per_class": float(per_class.min()), "chance_acc": float(majority)}

    def metric(self, truth: np.ndarray, scores: np.ndarray) -> dict[str, float]:
        from cmcgns.joint.zero_shot import multiclass_scores

        return multiclass_scores(truth, scores)


class RsnaZeroShot(ZeroShotTask):
    def evaluation_rows(self, run: TaskRun) -> tuple[list[dict], np.ndarray, dict[str, float]]:
        manifest = read_manifest(run.manifest_dir)
        rows = [r for r in manifest.split(self.options.split) if r["labels"].get("Pneumonia") in (0, 1)]
        if self.options.ids is not None:
            from cmcgns.data.preprocess.eval_sets import read_id_list

            wanted = set(read_id_list(self.options.ids))
            rows = [r for r in manifest.rows if str(r["id"]) in wanted]
        if not rows:
            raise DataError(f"{run.manifest_dir}: no labelled rows in split {self.options.split!r}")
        truth = np.array([0 if r["labels"]["Pneumonia"] == 1 else 1 for r in rows])  # the positive class first
        return [dict(r) for r in rows], truth, {"positives": float((truth == 0).sum())}

    def metric(self, truth: np.ndarray, scores: np.ndarray) -> dict[str, float]:
        from cmcgns.joint.zero_shot import binary_scores

        return binary_scores(truth, scores)


class ReportRetrieval(ZeroShotTask):
    options: RetrievalOptions

    def run(self, run: TaskRun) -> dict[str, float]:
        from cmcgns.joint.retrieval import retrieval_scores

        opts = self.options
        manifest = read_manifest(run.manifest_dir)
        if opts.eval_set == "5x200" or opts.ids is not None:
            rows, _, _ = eval_set_rows(manifest, self.eval_set, opts.ids, self.classes)
        else:
            rows = [dict(r) for r in manifest.split(opts.split)]
        if len(rows) < 2:
            raise DataError(
                f"{run.manifest_dir}: {len(rows)} rows to retrieve among; use more data or the option eval_set=split"
            )
        model = joint_model(run)
        images = image_embeddings(model, run.manifest_dir, rows, opts, run.device)
        sentences = [sentence_texts(r) for r in rows]
        collate = model.tokenizer.collator
        reports = torch.cat(
            [
                model.encode_text(collate.encode_sentences(sentences[i : i + opts.batch_size])).cpu()
                for i in range(0, len(sentences), opts.batch_size)
            ]
        )
        scores = retrieval_scores((images @ reports.t()).numpy())
        return {**scores, "test_rows": float(len(rows)), "image_size": float(model.image_size)}


# name -> (task class, dataset, options, classes, the fixed set preprocess draws, description)
TASKS = {
    "chexpert-zeroshot": (
        FiveClassZeroShot, "chexpert", ZeroShotOptions, FIVE_CLASSES, "chexpert-5x200",
        "CheXpert 5x200 zero-shot from prompts (ACC, macro F1); needs RUN/model",
    ),
    "rsna-zeroshot": (
        RsnaZeroShot, "rsna", ZeroShotOptions, ("Pneumonia", "Normal"), "",
        "RSNA pneumonia vs normal zero-shot from prompts (AUROC, ACC, F1); needs RUN/model",
    ),
    "mimic-retrieval": (
        ReportRetrieval, "mimic-cxr", RetrievalOptions, FIVE_CLASSES, "mimic-5x200",
        "MIMIC-CXR 5x200 image<->report retrieval (R@1/5/10, median rank); needs RUN/model",
    ),
    "openi-zeroshot": (
        FiveClassZeroShot, "openi", ZeroShotOptions, FIVE_CLASSES, "openi-5x200",
        "Open-i test images of exactly one of 5 classes, zero-shot (ACC, macro F1); needs RUN/model",
    ),
    "openi-retrieval": (
        ReportRetrieval, "openi", OpeniRetrievalOptions, FIVE_CLASSES, "openi-5x200",
        "Open-i test split image<->report retrieval (R@1/5/10, median rank); needs RUN/model",
    ),
}  # fmt: skip


@hookimpl
def register_downstream_tasks(register: Register) -> None:
    for name, (kind, dataset, options, classes, eval_set, description) in TASKS.items():

        def build(options, name=name, kind=kind, dataset=dataset, classes=classes, eval_set=eval_set):
            return kind(name, dataset, options, classes, eval_set)

        register(name, build, options=options, description=description)
