"""Procedural chest radiograph anatomy in normalised image coordinates (x to the image right =
patient's left, y down). Everything is drawn with smooth masks so findings compose naturally."""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy import ndimage
from scipy.special import expit


@dataclasses.dataclass(frozen=True)
class Geometry:
    """Patient positioning / body habitus for one radiograph."""

    dx: float
    dy: float
    scale: float
    heart_radius: float

    @classmethod
    def sample(cls, rng: np.random.Generator) -> Geometry:
        return cls(
            dx=float(rng.uniform(-0.03, 0.03)),
            dy=float(rng.uniform(-0.03, 0.03)),
            scale=float(rng.uniform(0.92, 1.06)),
            heart_radius=float(rng.uniform(0.12, 0.145)),
        )

    def lung(self, side: str) -> tuple[float, float, float, float]:
        """(cx, cy, rx, ry) of the patient's `side` lung ellipse."""
        cx = 0.5 + (-0.18 if side == "right" else 0.18) * self.scale + self.dx
        return cx, 0.47 + self.dy, 0.14 * self.scale, 0.29 * self.scale

    def zone_center(self, side: str, zone: str) -> tuple[float, float]:
        cx, cy, rx, ry = self.lung(side)
        offset = {"upper": -0.55, "middle": 0.0, "lower": 0.5}[zone]
        lateral = -0.15 if side == "right" else 0.15
        return cx + lateral * rx, cy + offset * ry

    def heart(self, radius: float | None = None) -> tuple[float, float, float, float]:
        r = (radius or self.heart_radius) * self.scale
        return 0.54 + self.dx, 0.64 + self.dy, r * 1.15, r * 0.9


class Canvas:
    def __init__(self, size: int) -> None:
        self.size = size
        coords = (np.arange(size, dtype=np.float32) + 0.5) / size
        self.yy, self.xx = np.meshgrid(coords, coords, indexing="ij")

    def ellipse(self, cx: float, cy: float, rx: float, ry: float, softness: float = 0.08) -> np.ndarray:
        r = np.sqrt(((self.xx - cx) / rx) ** 2 + ((self.yy - cy) / ry) ** 2)
        return expit((1.0 - r) / max(softness, 1e-3)).astype(np.float32)

    def line(self, points: list[tuple[float, float]], width: float) -> np.ndarray:
        """Soft polyline mask."""
        out = np.zeros((self.size, self.size), dtype=np.float32)
        for (x0, y0), (x1, y1) in zip(points[:-1], points[1:]):
            vx, vy = x1 - x0, y1 - y0
            length2 = vx * vx + vy * vy + 1e-12
            t = np.clip(((self.xx - x0) * vx + (self.yy - y0) * vy) / length2, 0.0, 1.0)
            d = np.hypot(self.xx - (x0 + t * vx), self.yy - (y0 + t * vy))
            out = np.maximum(out, np.exp(-((d / width) ** 2)))
        return out

    def smooth_noise(self, rng: np.random.Generator, cells: int, sigma: float = 1.0) -> np.ndarray:
        grid = rng.standard_normal((cells, cells)).astype(np.float32)
        field = ndimage.zoom(grid, self.size / cells, order=3)[: self.size, : self.size]
        if sigma > 0:
            field = ndimage.gaussian_filter(field, sigma)
        return field / (np.abs(field).max() + 1e-6)


def draw_chest(canvas: Canvas, geo: Geometry, rng: np.random.Generator) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Return (intensity image in [0,1]-ish, anatomical masks)."""
    img = np.full((canvas.size, canvas.size), 0.08, dtype=np.float32)
    body = canvas.ellipse(0.5 + geo.dx, 0.55 + geo.dy, 0.46 * geo.scale, 0.6 * geo.scale, 0.05)
    img += 0.5 * body
    spine = canvas.ellipse(0.5 + geo.dx, 0.55 + geo.dy, 0.045 * geo.scale, 0.7, 0.2)
    img += 0.15 * spine
    lungs = {side: canvas.ellipse(*geo.lung(side), softness=0.06) for side in ("right", "left")}
    lung_any = np.maximum(lungs["right"], lungs["left"])
    img -= 0.38 * lung_any
    # vascular markings, strongest near the hila
    markings = canvas.smooth_noise(rng, cells=24, sigma=0.6)
    hilar = canvas.ellipse(0.5 + geo.dx, 0.5 + geo.dy, 0.3, 0.3, 0.4)
    img += 0.05 * markings * lung_any * (0.5 + hilar)
    # ribs: curved bright bands across each lung
    ribs = np.zeros_like(img)
    for k in range(9):
        y0 = 0.2 + 0.065 * k * geo.scale + geo.dy
        for sign in (-1, 1):  # right, left
            cx = 0.5 + sign * 0.05 + geo.dx
            pts = [(cx + sign * t, y0 + 0.18 * t * t + 0.02 * t) for t in np.linspace(0.0, 0.36, 8)]
            ribs = np.maximum(ribs, canvas.line(pts, 0.006 * canvas.size / canvas.size + 0.006))
    img += 0.1 * ribs * body
    # clavicles
    for sign in (-1, 1):
        img += 0.12 * canvas.line(
            [(0.5 + sign * 0.04 + geo.dx, 0.17 + geo.dy), (0.5 + sign * 0.3 + geo.dx, 0.13 + geo.dy)], 0.012
        )
    # diaphragm domes below the lungs
    for side in ("right", "left"):
        cx, cy, rx, ry = geo.lung(side)
        dome = canvas.ellipse(cx, cy + ry * 1.08, rx * 1.3, ry * 0.45, 0.05)
        img += 0.3 * dome * (1 - lung_any)
    heart = canvas.ellipse(*geo.heart(), softness=0.06)
    img += 0.3 * heart
    masks = {"right_lung": lungs["right"], "left_lung": lungs["left"], "body": body, "heart": heart}
    return img, masks


def finish(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Exposure, contrast, gamma and quantum noise; returns uint8."""
    img = img * float(rng.uniform(0.9, 1.1)) + float(rng.uniform(-0.04, 0.04))
    img = np.clip(img, 0.0, 1.0) ** float(rng.uniform(0.85, 1.2))
    img = img + rng.normal(0.0, float(rng.uniform(0.01, 0.03)), img.shape).astype(np.float32)
    return (np.clip(img, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
