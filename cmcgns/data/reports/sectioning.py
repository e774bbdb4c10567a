"""Split free-text radiology reports into their sections (MIMIC-CXR style headers)."""

from __future__ import annotations

import re

SECTION_ALIASES = {
    "findings": "findings",
    "finding": "findings",
    "impression": "impression",
    "impressions": "impression",
    "conclusion": "impression",
    "indication": "indication",
    "history": "indication",
    "clinical history": "indication",
    "reason for exam": "indication",
    "comparison": "comparison",
    "comparisons": "comparison",
    "technique": "technique",
    "examination": "examination",
    "exam": "examination",
    "final report": "header",
    "wet read": "wet_read",
    "recommendation": "recommendation",
    "recommendations": "recommendation",
    "notification": "notification",
}

_HEADER = re.compile(
    r"^[ \t]*(?P<name>"
    + "|".join(sorted((re.escape(k) for k in SECTION_ALIASES), key=len, reverse=True))
    + r")[ \t]*(?::|$)",
    re.IGNORECASE | re.MULTILINE,
)


def split_sections(text: str) -> dict[str, str]:
    """Return {section: text}. Text before the first header goes to ``preamble``; repeated
    sections are concatenated."""
    sections: dict[str, str] = {}
    matches = list(_HEADER.finditer(text))
    if not matches:
        body = text.strip()
        return {"preamble": body} if body else {}
    pre = text[: matches[0].start()].strip()
    if pre:
        sections["preamble"] = pre
    for match, nxt in zip(matches, matches[1:] + [None]):
        name = SECTION_ALIASES[match.group("name").lower()]
        body = text[match.end() : nxt.start() if nxt else len(text)].strip()
        if body:
            sections[name] = (sections[name] + " " + body).strip() if name in sections else body
    return sections


def report_body(sections: dict[str, str]) -> list[tuple[str, str]]:
    """The parts used for pretraining: findings then impression; falls back to the preamble when
    a report has neither (older MIMIC reports)."""
    parts = [(name, sections[name]) for name in ("findings", "impression") if sections.get(name)]
    if not parts and sections.get("preamble"):
        parts = [("preamble", sections["preamble"])]
    return parts
