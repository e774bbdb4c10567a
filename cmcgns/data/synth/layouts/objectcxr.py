"""Object-CXR layout: {train,dev}/<id>.jpg and {train,dev}.csv with columns image_name,annotation
where annotation is "TYPE x y x y ...;..." (0 rectangle, 1 ellipse, 2 polygon), pixel coordinates."""

from __future__ import annotations

from pathlib import Path

from cmcgns.data.synth.layouts._csv import write_csv
from cmcgns.data.synth.study import corrupt_file, make_study, save_image, study_rng


def write_study(out: Path, seed: int, index: int, size: int, corrupt: bool) -> list[dict]:
    study = make_study(seed, index, size, with_objects=True)
    split = "dev" if study_rng(seed, index, "split").random() < 0.2 else "train"
    name = f"{index + 1:05d}.jpg"
    save_image(out / split / name, study.image)
    if corrupt:
        corrupt_file(out / split / name, study.rng)
    annotation = ";".join(
        " ".join([str(obj["type"])] + [str(int(round(v * size))) for v in obj["points"]]) for obj in study.objects
    )
    return [{"split": split, "row": [name, annotation]}]


def finalize(out: Path, rows: list[dict], seed: int = 0) -> None:  # noqa: ARG001 (interface)
    for split in ("train", "dev"):
        write_csv(out / f"{split}.csv", ["image_name", "annotation"], [r["row"] for r in rows if r["split"] == split])
