"""COVIDx layout as MGCA used it (the 3-class releases): {train,val,test}/<file>.png and
{train,val,test}.txt lines "<patient id> <filename> <normal|pneumonia|COVID-19> <source>".
COVID-19 studies carry bilateral diffuse opacities (edema-like), pneumonia a focal consolidation."""

from __future__ import annotations

from pathlib import Path

from cmcgns.data.synth.study import corrupt_file, make_study, save_image, study_rng
from cmcgns.io.atomic import write_text

SOURCES = ("bimcv", "ricord", "rsna", "sirm", "cohen")


def write_study(out: Path, seed: int, index: int, size: int, corrupt: bool) -> list[dict]:
    study = make_study(seed, index, size, force=("edema", "consolidation", None)[index % 3])
    u = study_rng(seed, index, "split").random()
    split = "test" if u < 0.15 else "val" if u < 0.3 else "train"
    name = f"synth_{index:06d}.png"
    save_image(out / split / name, study.image)
    if corrupt:
        corrupt_file(out / split / name, study.rng)
    present = {f.kind for f in study.findings if not f.uncertain}
    label = "COVID-19" if "edema" in present else "pneumonia" if "consolidation" in present else "normal"
    return [{"split": split, "line": f"{index // 2} {name} {label} {SOURCES[index % len(SOURCES)]}"}]


def finalize(out: Path, rows: list[dict], seed: int = 0) -> None:  # noqa: ARG001 (interface)
    for split in ("train", "val", "test"):
        write_text(out / f"{split}.txt", "".join(r["line"] + "\n" for r in rows if r["split"] == split))
