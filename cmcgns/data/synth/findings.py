"""Findings with location and extent: sampled per study, drawn into the image, and turned into
CheXpert-style labels, boxes and masks."""

from __future__ import annotations

import dataclasses

import numpy as np

from cmcgns.data.synth.anatomy import Canvas, Geometry

CHEXPERT_LABELS = [
    "No Finding",
    "Enlarged Cardiomediastinum",
    "Cardiomegaly",
    "Lung Opacity",
    "Lung Lesion",
    "Edema",
    "Consolidation",
    "Pneumonia",
    "Atelectasis",
    "Pneumothorax",
    "Pleural Effusion",
    "Pleural Other",
    "Fracture",
    "Support Devices",
]

# kind -> (probability, CheXpert labels it implies)
FINDING_KINDS: dict[str, tuple[float, tuple[str, ...]]] = {
    "consolidation": (0.22, ("Consolidation", "Lung Opacity", "Pneumonia")),
    "effusion": (0.16, ("Pleural Effusion",)),
    "pneumothorax": (0.12, ("Pneumothorax",)),
    "cardiomegaly": (0.15, ("Cardiomegaly", "Enlarged Cardiomediastinum")),
    "nodule": (0.1, ("Lung Lesion",)),
    "atelectasis": (0.12, ("Atelectasis", "Lung Opacity")),
    "edema": (0.08, ("Edema", "Lung Opacity")),
    "support_device": (0.12, ("Support Devices",)),
}

SIDES = ("right", "left")
ZONES = ("upper", "middle", "lower")


@dataclasses.dataclass
class Finding:
    kind: str
    side: str  # right | left | bilateral | midline
    zone: str  # upper | middle | lower | base | apex | diffuse
    severity: str  # mild | moderate | severe
    uncertain: bool
    box: tuple[float, float, float, float] | None = None  # normalised x0, y0, x1, y1
    mask: np.ndarray | None = dataclasses.field(default=None, repr=False)
    subtype: str = ""


def sample_findings(rng: np.random.Generator, force: str | None = None) -> list[Finding]:
    findings: list[Finding] = []
    for kind, (prob, _) in FINDING_KINDS.items():
        if force == kind or rng.random() < prob:
            side = str(rng.choice(SIDES))
            zone = str(rng.choice(ZONES))
            if kind in ("effusion", "atelectasis"):
                zone = "base"
                side = str(rng.choice(("right", "left", "bilateral"), p=(0.4, 0.4, 0.2)))
            elif kind == "pneumothorax":
                zone = "apex"
            elif kind in ("edema",):
                side, zone = "bilateral", "diffuse"
            elif kind in ("cardiomegaly", "support_device"):
                side, zone = "midline", "diffuse"
            findings.append(
                Finding(
                    kind=kind,
                    side=side,
                    zone=zone,
                    severity=str(rng.choice(("mild", "moderate", "severe"), p=(0.4, 0.4, 0.2))),
                    uncertain=bool(rng.random() < 0.15),
                    subtype=str(rng.choice(("endotracheal tube", "central venous catheter", "pacemaker")))
                    if kind == "support_device"
                    else "",
                )
            )
    return findings


def _box_of(mask: np.ndarray, threshold: float = 0.5) -> tuple[float, float, float, float] | None:
    ys, xs = np.nonzero(mask > threshold)
    if len(xs) == 0:
        return None
    n = mask.shape[0]
    return (xs.min() / n, ys.min() / n, (xs.max() + 1) / n, (ys.max() + 1) / n)


def _sides(side: str) -> tuple[str, ...]:
    return SIDES if side == "bilateral" else (side,)


def draw_findings(
    img: np.ndarray,
    masks: dict[str, np.ndarray],
    findings: list[Finding],
    canvas: Canvas,
    geo: Geometry,
    rng: np.random.Generator,
) -> np.ndarray:
    severity_gain = {"mild": 0.6, "moderate": 0.85, "severe": 1.1}
    for f in findings:
        gain = severity_gain[f.severity]
        if f.kind == "consolidation":
            cx, cy = geo.zone_center(f.side, f.zone)
            rx, ry = rng.uniform(0.05, 0.09) * gain, rng.uniform(0.05, 0.1) * gain
            blob = canvas.ellipse(cx, cy, rx, ry, 0.25) * masks[f"{f.side}_lung"]
            texture = 0.7 + 0.3 * canvas.smooth_noise(rng, 16, 0.5)
            img += 0.32 * blob * texture
            f.mask = (blob > 0.5).astype(np.uint8)
            f.box = _box_of(blob)
        elif f.kind == "effusion":
            union = np.zeros_like(img)
            for side in _sides(f.side):
                cx, cy, rx, ry = geo.lung(side)
                level = cy + ry * (0.75 - 0.35 * gain)
                meniscus = level - 0.06 * np.abs(canvas.xx - cx) / rx * (1 if side == "right" else 1)
                fluid = masks[f"{side}_lung"] / (1 + np.exp(-(canvas.yy - meniscus) / 0.01))
                union = np.maximum(union, fluid)
            img += 0.4 * union
            f.mask = (union > 0.5).astype(np.uint8)
            f.box = _box_of(union)
        elif f.kind == "pneumothorax":
            cx, cy, rx, ry = geo.lung(f.side)
            lung = masks[f"{f.side}_lung"]
            depth = rng.uniform(0.18, 0.3) * gain
            inner = canvas.ellipse(
                cx + (0.02 if f.side == "right" else -0.02), cy + 0.05, rx * (1 - depth), ry * (1 - depth * 0.8), 0.03
            )
            air = np.clip(lung - inner, 0, 1) * (canvas.yy < cy + 0.1 * ry)
            img = img * (1 - 0.55 * air) - 0.03 * air
            edge = np.clip(inner * (1 - inner) * 4, 0, 1) * (canvas.yy < cy + 0.1 * ry) * lung
            img += 0.12 * edge
            f.mask = (air > 0.35).astype(np.uint8)
            f.box = _box_of(air, 0.35)
        elif f.kind == "cardiomegaly":
            bigger = canvas.ellipse(*geo.heart(geo.heart_radius * (1.25 + 0.15 * gain)), softness=0.06)
            added = np.clip(bigger - masks["heart"], 0, 1)
            img += 0.3 * added
            f.box = _box_of(bigger)
        elif f.kind == "nodule":
            cx, cy = geo.zone_center(f.side, f.zone)
            cx += rng.uniform(-0.04, 0.04)
            r = rng.uniform(0.015, 0.03) * gain
            blob = canvas.ellipse(cx, cy, r, r, 0.08)
            img += 0.35 * blob
            f.mask = (blob > 0.5).astype(np.uint8)
            f.box = _box_of(blob)
        elif f.kind == "atelectasis":
            for side in _sides(f.side):
                cx, cy, rx, ry = geo.lung(side)
                y = cy + ry * 0.55
                band = canvas.line([(cx - rx * 0.6, y), (cx + rx * 0.6, y + 0.02)], 0.008 * (1 + gain))
                img += 0.3 * band * masks[f"{side}_lung"]
                f.box = _box_of(band * masks[f"{side}_lung"], 0.3)
        elif f.kind == "edema":
            haze = canvas.ellipse(0.5 + geo.dx, 0.5 + geo.dy, 0.28, 0.22, 0.5)
            lungs = np.maximum(masks["right_lung"], masks["left_lung"])
            img += 0.18 * gain * haze * lungs
            f.box = _box_of(haze * lungs, 0.3)
        elif f.kind == "support_device":
            if f.subtype == "endotracheal tube":
                pts = [(0.5 + geo.dx, 0.0), (0.5 + geo.dx, 0.3 + geo.dy)]
            elif f.subtype == "central venous catheter":
                pts = [(0.25 + geo.dx, 0.15 + geo.dy), (0.4 + geo.dx, 0.2 + geo.dy), (0.47 + geo.dx, 0.42 + geo.dy)]
            else:
                pts = [(0.72 + geo.dx, 0.2 + geo.dy), (0.6 + geo.dx, 0.35 + geo.dy), (0.56 + geo.dx, 0.6 + geo.dy)]
                img += 0.5 * canvas.ellipse(0.75 + geo.dx, 0.18 + geo.dy, 0.04, 0.03, 0.05)
            wire = canvas.line(pts, 0.005)
            img += 0.45 * wire
            f.box = _box_of(wire, 0.3)
    return img


def chexpert_labels(findings: list[Finding]) -> dict[str, float | None]:
    """1 present, -1 uncertain, None not mentioned; normal studies get No Finding = 1 and explicit
    negatives (0) for the findings the report negates."""
    labels: dict[str, float | None] = {name: None for name in CHEXPERT_LABELS}
    for f in findings:
        for name in FINDING_KINDS[f.kind][1]:
            value = -1.0 if f.uncertain else 1.0
            current = labels[name]
            labels[name] = value if current is None else max(current, value)
    present = {f.kind for f in findings if f.kind != "support_device"}
    if not present:
        labels["No Finding"] = 1.0
    for kind in ("effusion", "pneumothorax"):
        if kind not in {f.kind for f in findings}:
            labels[FINDING_KINDS[kind][1][0]] = 0.0
    return labels


def foreign_objects(
    rng: np.random.Generator,
    canvas: Canvas,
    img: np.ndarray,
    geo: Geometry,  # noqa: ARG001 (interface)
) -> tuple[np.ndarray, list[dict]]:
    """Object-CXR style radiopaque foreign objects: rectangles, ellipses (rings/buttons) and polygons."""
    annotations: list[dict] = []
    for _ in range(int(rng.integers(1, 4))):
        shape = int(rng.integers(0, 3))
        cx, cy = rng.uniform(0.2, 0.8), rng.uniform(0.15, 0.85)
        w, h = rng.uniform(0.02, 0.08), rng.uniform(0.02, 0.08)
        if shape == 0:
            m = ((np.abs(canvas.xx - cx) < w / 2) & (np.abs(canvas.yy - cy) < h / 2)).astype(np.float32)
            points = [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]
        elif shape == 1:
            ring = canvas.ellipse(cx, cy, w / 2, h / 2, 0.05)
            m = ring - 0.7 * canvas.ellipse(cx, cy, w / 4, h / 4, 0.05)
            points = [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]
        else:
            angles = np.sort(rng.uniform(0, 2 * np.pi, 5))
            poly = [(cx + w / 2 * np.cos(a), cy + h / 2 * np.sin(a)) for a in angles]
            m = canvas.line(poly + [poly[0]], 0.006)
            points = [c for p in poly for c in p]
        img = img + 0.6 * np.clip(m, 0, 1)
        annotations.append({"type": shape, "points": points})
    return img, annotations
