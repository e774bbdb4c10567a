"""Radiology report text for synthetic studies: FINDINGS/IMPRESSION sections, synonyms, negation,
uncertainty and location words that match where the finding was drawn."""

from __future__ import annotations

import numpy as np

from cmcgns.data.synth.findings import Finding

SYNONYMS = {
    "consolidation": ["consolidation", "airspace opacity", "airspace consolidation", "infiltrate"],
    "effusion": ["pleural effusion", "effusion", "pleural fluid"],
    "pneumothorax": ["pneumothorax", "ptx"],
    "nodule": ["nodule", "nodular opacity", "pulmonary nodule"],
    "atelectasis": ["atelectasis", "linear atelectasis", "subsegmental atelectasis"],
    "edema": ["pulmonary edema", "interstitial edema", "vascular congestion"],
}
UNCERTAIN = ["possible", "likely", "questionable", "cannot exclude", "may represent"]
NEGATIONS = {
    "effusion": ["No pleural effusion.", "There is no pleural effusion.", "No effusion is seen."],
    "pneumothorax": ["No pneumothorax.", "There is no pneumothorax.", "No evidence of pneumothorax."],
    "consolidation": ["No focal consolidation.", "Lungs are clear without consolidation."],
    "cardiomegaly": ["The heart size is normal.", "Cardiomediastinal silhouette is within normal limits."],
}


def _location(f: Finding, rng: np.random.Generator) -> str:
    if f.side == "bilateral":
        return "bilateral" if f.zone != "base" else str(rng.choice(["bibasilar", "bilateral basilar"]))
    zone_words = {
        "upper": ["upper lobe", "upper lung zone", "apical"],
        "middle": ["mid lung zone", "perihilar", "middle lung"],
        "lower": ["lower lobe", "lung base", "basilar"],
        "base": ["base", "costophrenic angle", "basilar"],
        "apex": ["apex", "apical", "upper hemithorax"],
    }
    return f"{f.side} {rng.choice(zone_words.get(f.zone, ['lung']))}"


def finding_sentence(f: Finding, rng: np.random.Generator) -> str:
    severity = f.severity if rng.random() < 0.6 else ""
    if f.kind == "cardiomegaly":
        base = str(rng.choice([f"{severity} cardiomegaly", "the heart is enlarged", "enlarged cardiac silhouette"]))
    elif f.kind == "support_device":
        tip = {
            "endotracheal tube": "terminates about 4 cm above the carina",
            "central venous catheter": "terminates in the SVC",
            "pacemaker": "leads in standard position",
        }[f.subtype]
        return f"{f.subtype.capitalize()} {tip}."
    elif f.kind == "edema":
        base = f"{severity} {rng.choice(SYNONYMS['edema'])}"
    else:
        base = f"{severity} {_location(f, rng)} {rng.choice(SYNONYMS[f.kind])}"
    base = " ".join(base.split())
    if f.uncertain:
        hedge = str(rng.choice(UNCERTAIN))
        sentence = f"{hedge} {base}" if hedge != "may represent" else f"opacity may represent {base}"
    else:
        sentence = str(rng.choice([f"there is {base}", f"{base} is present", f"{base} is seen", base]))
    return sentence[0].upper() + sentence[1:] + "."


NORMAL_KEY = "normal:none:absent"


def meaning_key(kind: str, side: str, polarity: str) -> str:
    """The semantic key of a sentence, ``finding:side:polarity`` (polarity present, uncertain or absent):
    what the sentence means, written by the generator and never shown to a model."""
    return f"{kind}:{side}:{polarity}"


def finding_key(f: Finding) -> str:
    return meaning_key(f.kind, f.side, "uncertain" if f.uncertain else "present")


def write_report(findings: list[Finding], rng: np.random.Generator) -> tuple[str, str, list[tuple[str, str]]]:
    """Return (findings section, impression section, [(sentence, semantic key)])."""
    present = {f.kind for f in findings}
    sentences = [finding_sentence(f, rng) for f in findings]
    meanings = [(text, finding_key(f)) for text, f in zip(sentences, findings)]
    for kind, options in NEGATIONS.items():
        if kind not in present and rng.random() < 0.7:
            sentences.append(str(rng.choice(options)))
            meanings.append((sentences[-1], meaning_key(kind, "none", "absent")))
    if not sentences:
        sentences.append("The lungs are clear.")
        meanings.append((sentences[-1], NORMAL_KEY))
    order = rng.permutation(len(sentences))
    findings_text = " ".join(sentences[i] for i in order)
    acute = [f for f in findings if f.kind != "support_device"]
    if not acute:
        impression = str(
            rng.choice(
                ["No acute cardiopulmonary process.", "No acute intrathoracic abnormality.", "Normal chest radiograph."]
            )
        )
        meanings.append((impression, NORMAL_KEY))
    else:
        parts = []
        for i, f in enumerate(acute[:3], start=1):
            text = finding_sentence(f, rng)
            meanings.append((text, finding_key(f)))
            parts.append(f"{i}. {text}" if len(acute) > 1 else text)
        impression = " ".join(parts)
    return findings_text, impression, meanings


def mimic_report_text(findings_text: str, impression: str, rng: np.random.Generator, view: str) -> str:
    """Full report in MIMIC-CXR's free-text style."""
    indication = str(
        rng.choice(
            ["___-year-old with shortness of breath.", "Evaluate for pneumonia.", "Cough and fever.", "Line placement."]
        )
    )
    return (
        "                                 FINAL REPORT\n"
        f" EXAMINATION:  CHEST ({view})\n \n"
        f" INDICATION:  {indication}\n \n"
        " COMPARISON:  None.\n \n"
        f" FINDINGS: \n \n {findings_text}\n \n"
        f" IMPRESSION: \n \n {impression}\n"
    )
