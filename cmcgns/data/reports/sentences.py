"""Sentence splitting tuned for radiology reports: decimals ("1.5 cm"), abbreviations, numbered
impression lists and MIMIC's de-identification placeholders."""

from __future__ import annotations

import re

_ABBREVIATIONS = {"dr", "mr", "mrs", "ms", "vs", "approx", "e.g", "i.e", "fig"}
_WS = re.compile(r"\s+")
_DEID = re.compile(r"_{2,}")
_REPEATED_STOP = re.compile(r"([.!?])(?:\s*\.)+")  # "characterization. ." (Open-i) -> "characterization."
_LIST_MARKER = re.compile(r"(?:(?<=\s)|^)\d{1,2}[.)]\s+(?=[A-Za-z])")
_BOUNDARY = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9(\[])")


def normalise(text: str) -> str:
    text = _DEID.sub(" ", text)
    text = _WS.sub(" ", text).strip()
    return _REPEATED_STOP.sub(r"\1", text)


def sentence_rows(parts: list[tuple[str, str]]) -> list[dict]:
    """(section, text) parts in report order -> manifest sentence rows `{index, section, text}`,
    numbered across the whole report."""
    split = [(section, s) for section, body in parts for s in split_sentences(body)]
    return [{"index": i, "section": section, "text": s} for i, (section, s) in enumerate(split)]


def split_sentences(text: str, min_words: int = 1) -> list[str]:
    text = normalise(text)
    if not text:
        return []
    text = _LIST_MARKER.sub("\n", text)
    sentences: list[str] = []
    for chunk in text.split("\n"):
        chunk = chunk.strip()
        if not chunk:
            continue
        pieces = _BOUNDARY.split(chunk)
        buffer = ""
        for piece in pieces:
            buffer = f"{buffer} {piece}".strip() if buffer else piece
            last_word = buffer.rstrip(".!?").rsplit(" ", 1)[-1].lower()
            if last_word in _ABBREVIATIONS and buffer.endswith(".") and piece is not pieces[-1]:
                continue
            sentences.append(buffer)
            buffer = ""
        if buffer:
            sentences.append(buffer)
    cleaned = [s.strip(" ;,") for s in sentences]
    return [s for s in cleaned if len(re.findall(r"[A-Za-z]+", s)) >= min_words]
