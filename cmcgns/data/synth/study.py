"""One synthetic study: image + findings + report, fully determined by (seed, index)."""

from __future__ import annotations

import dataclasses
import hashlib

import numpy as np
from PIL import Image

from cmcgns.data.synth.anatomy import Canvas, Geometry, draw_chest, finish
from cmcgns.data.synth.findings import Finding, chexpert_labels, draw_findings, foreign_objects, sample_findings
from cmcgns.data.synth.reports import write_report


@dataclasses.dataclass
class Study:
    index: int
    image: np.ndarray  # uint8 (size, size)
    findings: list[Finding]
    labels: dict[str, float | None]
    findings_text: str
    impression: str
    view: str
    objects: list[dict] = dataclasses.field(default_factory=list)
    rng: np.random.Generator | None = dataclasses.field(default=None, repr=False)
    meanings: list[tuple[str, str]] = dataclasses.field(default_factory=list, repr=False)  # (sentence, key)

    def finding(self, kind: str) -> Finding | None:
        return next((f for f in self.findings if f.kind == kind), None)


def study_rng(seed: int, index: int, salt: str = "") -> np.random.Generator:
    digest = hashlib.sha256(f"{seed}:{index}:{salt}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def stable_hex(seed: int, index: int, salt: str, length: int = 32) -> str:
    return hashlib.sha256(f"{seed}:{index}:{salt}".encode()).hexdigest()[:length]


def stable_uid(seed: int, index: int, salt: str) -> str:
    """A DICOM-valid UID (digits only, < 64 chars) derived from (seed, index, salt)."""
    digits = str(int(stable_hex(seed, index, salt, 24), 16))
    return f"1.2.826.0.1.3680043.10.{digits[:38]}"


def make_study(seed: int, index: int, size: int, *, force: str | None = None, with_objects: bool = False) -> Study:
    rng = study_rng(seed, index)
    canvas = Canvas(size)
    geo = Geometry.sample(rng)
    img, masks = draw_chest(canvas, geo, rng)
    findings = sample_findings(rng, force=force)
    img = draw_findings(img, masks, findings, canvas, geo, rng)
    objects: list[dict] = []
    if with_objects and rng.random() < 0.5:
        img, objects = foreign_objects(rng, canvas, img, geo)
    findings_text, impression, meanings = write_report(findings, rng)
    view = str(rng.choice(["PA", "AP"], p=(0.7, 0.3)))
    return Study(
        index,
        finish(img, rng),
        findings,
        chexpert_labels(findings),
        findings_text,
        impression,
        view,
        objects,
        rng,
        meanings,
    )


def lateral_view(study: Study, seed: int) -> np.ndarray:
    """A crude lateral projection so that layouts can carry non-frontal images to filter out."""
    rng = study_rng(seed, study.index, "lateral")
    canvas = Canvas(study.image.shape[0])
    img = 0.1 + 0.45 * canvas.ellipse(0.5, 0.55, 0.32, 0.55, 0.05) - 0.2 * canvas.ellipse(0.45, 0.45, 0.2, 0.28, 0.1)
    img += 0.25 * canvas.ellipse(0.6, 0.62, 0.12, 0.12, 0.08) + 0.2 * canvas.ellipse(0.8, 0.55, 0.04, 0.6, 0.1)
    return finish(img.astype(np.float32), rng)


def save_image(path, pixels: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = "JPEG" if path.suffix.lower() in (".jpg", ".jpeg") else "PNG"
    Image.fromarray(pixels, mode="L").save(path, format=fmt, **({"quality": 92} if fmt == "JPEG" else {}))


def corrupt_file(path, rng: np.random.Generator) -> str:
    """Damage an already written file the way real downloads get damaged; returns what was done."""
    if rng.random() < 0.5:
        path.unlink()
        return "missing"
    data = path.read_bytes()
    path.write_bytes(data[: max(16, len(data) // 10)])
    return "truncated"
