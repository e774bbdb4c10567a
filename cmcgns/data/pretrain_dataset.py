"""Image-report pairs from a preprocessed mimic-cxr manifest, and a tokenising collate."""

from __future__ import annotations

import hashlib
import zlib
from pathlib import Path

import torch
from torch.utils.data import Dataset

from cmcgns.data.images import augment, load_image
from cmcgns.data.manifest import read_manifest, sentence_meanings, sentence_texts
from cmcgns.errors import DataError


def _seed(*parts: object) -> int:
    return int.from_bytes(hashlib.sha256(":".join(map(str, parts)).encode()).digest()[:8], "little") & ((1 << 63) - 1)


class PairDataset(Dataset):
    def __init__(
        self, directory: Path, split: str, image_size: int, train: bool, seed: int = 0, pairing: str = "paired"
    ) -> None:
        """`pairing="shuffled"` gives every image another study's report (a fixed derangement): the
        negative control for claims that pretraining learns from the pairing."""
        manifest = read_manifest(directory)
        meta = manifest.meta
        if meta.get("kind") != "pretrain":
            raise DataError(
                f"{directory}: a {meta.get('kind')} manifest, pretraining needs a pretrain manifest (mimic-cxr)"
            )
        self.rows = manifest.split(*split.split("+"))  # "val+test" pools splits (small evaluation sets)
        if not self.rows:
            raise DataError(f"{directory}: no rows in split {split!r} (have {sorted(meta.get('splits', {}))})")
        self.directory = Path(directory)
        self.image_size = image_size
        self.train = train
        self.seed = seed
        self.label_names: list[str] = list(meta.get("labels", []))
        self.report_of = list(range(len(self.rows)))
        if pairing == "shuffled" and len(self.rows) > 1:
            order = torch.randperm(len(self.rows), generator=torch.Generator().manual_seed(seed + 7919)).tolist()
            self.report_of = [0] * len(order)
            for k, row in enumerate(order):  # each row takes the report of the next one in a random cycle
                self.report_of[row] = order[(k + 1) % len(order)]

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, key: int) -> dict:
        """`key` = epoch * len(self) + index, so augmentation is a function of (seed, epoch, index)."""
        epoch, index = divmod(int(key), len(self.rows))
        row = self.rows[index]
        image = load_image(self.directory / row["image"], self.image_size)
        if self.train:
            image = augment(image, torch.Generator().manual_seed(_seed(self.seed, epoch, index)))
        report = self.rows[self.report_of[index]]
        sentences = sentence_texts(report)
        labels = torch.tensor(
            [float("nan") if row["labels"].get(n) is None else row["labels"][n] for n in self.label_names]
        )
        return {
            "image": image,
            "sentences": sentences,
            "meanings": sentence_meanings(report),
            "index": index,
            "labels": labels,
        }


def meaning_id(key: str | None) -> int:
    """A sentence meaning as a number every process agrees on (crc32; -1 where none is recorded)."""
    return -1 if key is None else zlib.crc32(key.encode("utf-8"))


class ReportCollator:
    """Tokenises each sentence separately and packs them as [CLS] s0 s1 ... [SEP], recording the
    sentence index of every token (-1 for special and padding tokens). With `meanings`, batches also
    carry `sentence_meanings` [B, max_sentences] (`meaning_id` of each sentence, -1 for none or
    padding): only for a sampler that reads them (the oracle upper bound); the model never does."""

    def __init__(self, tokenizer, max_tokens: int, max_sentences: int, meanings: bool = False) -> None:
        self.tokenizer = tokenizer
        self.meanings = meanings
        self.max_tokens = max_tokens
        self.max_sentences = max_sentences
        self.cls = tokenizer.cls_token_id if tokenizer.cls_token_id is not None else tokenizer.bos_token_id
        self.sep = tokenizer.sep_token_id if tokenizer.sep_token_id is not None else tokenizer.eos_token_id
        self.pad = tokenizer.pad_token_id or 0
        if self.cls is None or self.sep is None:
            raise DataError("tokenizer needs [CLS]/[SEP] (or BOS/EOS) special tokens")

    def encode_sentences(self, reports: list[list[str]]) -> dict[str, torch.Tensor]:
        """Reports given as their sentence lists -> input_ids, attention_mask, sentence_ids [B, T]
        (at most `max_sentences` sentences and `max_tokens` tokens per report, as in pretraining)."""
        kept = [sentences[: self.max_sentences] for sentences in reports]
        flat = [s for sentences in kept for s in sentences]
        encoded = self.tokenizer(flat, add_special_tokens=False)["input_ids"] if flat else []
        ids_rows, sid_rows = [], []
        cursor = 0
        for sentences in kept:
            ids, sids = [self.cls], [-1]
            for j in range(len(sentences)):
                tokens = encoded[cursor + j][: self.max_tokens - 1 - len(ids)]
                ids += tokens
                sids += [j] * len(tokens)
            cursor += len(sentences)
            ids.append(self.sep)
            sids.append(-1)
            ids_rows.append(ids)
            sid_rows.append(sids)
        length = max((len(r) for r in ids_rows), default=2)
        input_ids = torch.full((len(kept), length), self.pad, dtype=torch.long)
        sentence_ids = torch.full((len(kept), length), -1, dtype=torch.long)
        attention = torch.zeros((len(kept), length), dtype=torch.long)
        for i, (ids, sids) in enumerate(zip(ids_rows, sid_rows)):
            input_ids[i, : len(ids)] = torch.tensor(ids)
            sentence_ids[i, : len(sids)] = torch.tensor(sids)
            attention[i, : len(ids)] = 1
        return {"input_ids": input_ids, "attention_mask": attention, "sentence_ids": sentence_ids}

    def __call__(self, items: list[dict]) -> dict[str, torch.Tensor]:
        batch = {
            "images": torch.stack([item["image"] for item in items]),
            **self.encode_sentences([item["sentences"] for item in items]),
            "index": torch.tensor([item["index"] for item in items]),
            "labels": torch.stack([item["labels"] for item in items]),
        }
        if self.meanings:
            ids = torch.full((len(items), self.max_sentences), -1, dtype=torch.long)
            for i, item in enumerate(items):
                kept = item["meanings"][: self.max_sentences]
                ids[i, : len(kept)] = torch.tensor([meaning_id(k) for k in kept], dtype=torch.long)
            batch["sentence_meanings"] = ids
        return batch


class DeterministicBatches(torch.utils.data.Sampler):
    """Batches of one rank as a pure function of (seed, micro-step): resuming at micro-step m
    replays exactly what an uninterrupted run would have seen."""

    @staticmethod
    def batches_per_epoch(size: int, batch_size: int, world: int) -> int:
        return size // (batch_size * world)

    def __init__(self, size: int, batch_size: int, seed: int, rank: int, world: int, start: int, total: int) -> None:
        self.per_epoch = self.batches_per_epoch(size, batch_size, world)
        if self.per_epoch < 1:
            raise DataError(f"{size} training pairs cannot fill one global batch of {batch_size * world}")
        self.size, self.batch, self.seed, self.rank, self.world = size, batch_size, seed, rank, world
        self.start, self.total = start, total
        self._epoch, self._perm = -1, torch.empty(0, dtype=torch.long)

    def permutation(self, epoch: int) -> torch.Tensor:
        """The epoch's shuffle, computed once per epoch (a pure function of seed and epoch)."""
        if epoch != self._epoch:
            self._epoch = epoch
            self._perm = torch.randperm(
                self.size, generator=torch.Generator().manual_seed(_seed("perm", self.seed, epoch))
            )
        return self._perm

    def batch_at(self, micro: int) -> list[int]:
        epoch, position = divmod(micro, self.per_epoch)
        perm = self.permutation(epoch)
        offset = (position * self.world + self.rank) * self.batch
        return [epoch * self.size + int(i) for i in perm[offset : offset + self.batch]]

    def __iter__(self):
        for micro in range(self.start, self.total):
            yield self.batch_at(micro)

    def __len__(self) -> int:
        return self.total - self.start
