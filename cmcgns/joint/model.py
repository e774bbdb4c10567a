"""`cmcgns.load_model`: the whole pretrained model in one call, in the spirit of open_clip's
`create_model_and_transforms`:

    model, preprocess, tokenizer = cmcgns.load_model("RUN/model")
    images = torch.stack([preprocess(p) for p in paths])
    sims = model.encode_image(images) @ model.encode_text(["Right pleural effusion.", "Normal chest."]).T

Embeddings are L2-normalised, in the space the global image-report loss trained. Everything
needed is in the folder (no network, no original text-model folder); CPU or CUDA.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from cmcgns.data.images import to_model_input
from cmcgns.data.pretrain_dataset import ReportCollator
from cmcgns.data.reports.sectioning import report_body, split_sections
from cmcgns.data.reports.sentences import split_sentences
from cmcgns.errors import DataError
from cmcgns.joint.export import ModelFolder

ImageInput = Image.Image | str | Path | np.ndarray


class ImagePreprocess:
    """A PIL image, an image path (PNG/JPEG/DICOM/16-bit, read as `cmcgns preprocess` reads them) or a
    uint8 grayscale array -> the normalised [3, S, S] tensor the model expects. For an image already
    at S x S (a `cmcgns preprocess` cache at the model's size) this is exactly the training loader's
    tensor; other sizes are resized as `cmcgns preprocess` resizes (PIL bilinear)."""

    def __init__(self, image_size: int) -> None:
        self.image_size = image_size

    def gray(self, image: ImageInput) -> np.ndarray:
        if isinstance(image, (str, Path)):
            from cmcgns.data.preprocess.base import load_gray

            path = Path(image)
            try:
                return load_gray(path)
            except FileNotFoundError:
                raise DataError(f"{path}: image does not exist") from None
            except Exception as exc:  # PIL and pydicom raise many types on damaged files
                raise DataError(f"{path}: cannot read image ({type(exc).__name__}: {exc})") from None
        if isinstance(image, Image.Image):
            return np.asarray(image.convert("L"))
        array = np.asarray(image)
        if array.ndim == 3 and array.shape[-1] in (3, 4):
            return np.asarray(Image.fromarray(array.astype(np.uint8)).convert("L"))
        if array.ndim != 2:
            raise DataError(f"image array of shape {array.shape}: give a 2-D grayscale or H x W x 3 RGB array")
        return array.astype(np.uint8)

    def __call__(self, image: ImageInput) -> torch.Tensor:
        pixels = self.gray(image)
        if pixels.shape != (self.image_size, self.image_size):
            pixels = np.asarray(Image.fromarray(pixels).resize((self.image_size, self.image_size), Image.BILINEAR))
        return to_model_input(torch.from_numpy(pixels.astype(np.float32) / 255.0)[None])


class ReportTokenizer:
    """Reports (free text, with or without FINDINGS/IMPRESSION headers) -> the token batch the model
    expects, built as pretraining built it: the findings and impression sections (the whole text when
    it has neither), split into sentences, each tokenised alone."""

    def __init__(self, tokenizer, max_tokens: int, max_sentences: int) -> None:
        self.collator = ReportCollator(tokenizer, max_tokens, max_sentences)

    @staticmethod
    def sentences(report: str) -> list[str]:
        found = [s for _, body in report_body(split_sections(report)) for s in split_sentences(body)]
        return found or split_sentences(report)

    def __call__(self, texts: str | Sequence[str]) -> dict[str, torch.Tensor]:
        texts = [texts] if isinstance(texts, str) else list(texts)
        split = [self.sentences(str(t)) for t in texts]
        empty = [i for i, s in enumerate(split) if not s]
        if empty:
            raise DataError(f"text {empty[0]} ({texts[empty[0]]!r}) has no sentence to encode")
        return self.collator.encode_sentences(split)


class JointModel(nn.Module):
    """The trained encoders with the two calls users need; `model` is the `CMCGNSModel` itself."""

    def __init__(
        self, model: nn.Module, tokenizer: ReportTokenizer, image_size: int, folder: ModelFolder | None = None
    ) -> None:
        super().__init__()
        self.model = model
        self.image_size = image_size
        self.tokenizer = tokenizer
        self.folder = folder
        self.logit_scale = float((folder.manifest.get("logit_scale") if folder else None) or 10.0)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @torch.no_grad()
    def encode_image(self, images: torch.Tensor | Sequence[ImageInput]) -> torch.Tensor:
        """[B, 3, S, S] preprocessed images (or a list of PIL images / paths) -> [B, E], L2-normalised."""
        if not isinstance(images, torch.Tensor):
            preprocess = ImagePreprocess(self.image_size)
            images = torch.stack([preprocess(image) for image in images])
        return self.model.embed_images(images.to(self.device)).float()

    @torch.no_grad()
    def encode_text(self, texts: str | Sequence[str] | dict[str, torch.Tensor]) -> torch.Tensor:
        """Reports or prompts (or a `tokenizer(...)` batch) -> [B, E], L2-normalised."""
        batch = texts if isinstance(texts, dict) else self.tokenizer(texts)
        return self.model.embed_reports({k: v.to(self.device) for k, v in batch.items()}).float()


def build_from_folder(folder: ModelFolder, weights: bool = True, seed: int = 0) -> JointModel:
    """The model a folder describes; `weights=False` gives the same architecture randomly initialised
    (seeded): the random-init baseline of zero-shot and retrieval tasks."""
    from cmcgns.config.schema import ModelConfig
    from cmcgns.io.weights import check_tensors, read_safetensors
    from cmcgns.models.cmcgns_model import CMCGNSModel
    from cmcgns.models.text_encoder import load_tokenizer

    architecture = dict(folder.manifest["architecture"])
    architecture["text"] = dict(architecture["text"], path=str(folder.text_dir), tokenizer_path=None)
    config = ModelConfig.model_validate(architecture)
    text = folder.manifest["text"]
    torch.manual_seed(seed)
    model = CMCGNSModel(config, folder.image_size, int(text["max_sentences"]))
    if weights:
        state = read_safetensors(folder.weights_file)
        check_tensors(state, model.state_dict(), str(folder.weights_file))
        missing, unexpected = model.load_state_dict(state, strict=False)
        if missing or unexpected:
            what = f"{len(missing)} missing (e.g. {missing[0]})" if missing else ""
            what += ("; " if what else "") + (
                f"{len(unexpected)} unexpected (e.g. {unexpected[0]})" if unexpected else ""
            )
            raise DataError(f"{folder.weights_file}: keys do not match the architecture in model.json: {what}")
    model.eval()
    tokenizer = ReportTokenizer(
        load_tokenizer(folder.text_dir, "model text/"), int(text["max_tokens"]), int(text["max_sentences"])
    )
    return JointModel(model, tokenizer, folder.image_size, folder if weights else None)


def load_model(
    path: str | Path, device: str | torch.device = "cpu"
) -> tuple[JointModel, ImagePreprocess, ReportTokenizer]:
    """(model, preprocess, tokenizer) from a `RUN/model` folder (or the run folder holding it). The
    folder's files are checked against its manifest first; a mismatch is one line naming the file."""
    folder = ModelFolder.read(Path(path))
    joint = build_from_folder(folder)
    return joint.to(device), ImagePreprocess(folder.image_size), joint.tokenizer
