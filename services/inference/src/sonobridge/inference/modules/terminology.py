"""Bind the modules' local finding codes to SNOMED CT concepts and finding sites.

Every SNOMED CT code here is one that DICOM PS3.16 uses (pydicom ships those tables, and
`tests/inference/modules/test_terminology.py` checks each code and meaning against them), so no
code is claimed from memory. Where no SNOMED CT or RadLex concept exists for a measurement
(carotid intima-media thickness, a cortical echogenicity ratio), the finding keeps its local code
and still carries a coded finding site. The local code always stays in `attributes["local_code"]`
so the project's own consumers can match on it whatever the binding.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from sonobridge.inference.modules.base import ModuleFinding

SNOMED = "http://snomed.info/sct"
LOCAL = "urn:sonobridge:finding"


@dataclass(frozen=True)
class Concept:
    """A SNOMED CT concept: code and the meaning DICOM PS3.16 gives it."""

    code: str
    display: str


# Findings and observables.
ATHEROMA = Concept("48434008", "Atheroma")
LENGTH = Concept("410668003", "Length")
THYROID_NODULE = Concept("237495005", "Thyroid nodule")
MASS = Concept("4147007", "Mass")
CYST = Concept("367643001", "Cyst")
NUMBER_OF_LESIONS = Concept("246206008", "Number of lesions")

# Finding sites.
COMMON_CAROTID_ARTERY = Concept("32062004", "Common carotid artery")
CAROTID_ARTERY = Concept("69105007", "Carotid artery")
KIDNEY = Concept("64033007", "Kidney")
THYROID = Concept("69748006", "Thyroid")
LIVER = Concept("10200004", "Liver")
ABDOMEN = Concept("818981001", "Abdomen")

_LESION_SITES = {"thyroid": THYROID, "liver": LIVER, "abdomen": ABDOMEN}


@dataclass(frozen=True)
class Binding:
    """How one local code is coded: a concept (or none) and where it was found.

    `when_abnormal_only` is for presence findings: an absent plaque must not be exported as the
    code for plaque, so the concept applies only when the finding is abnormal (present).
    """

    concept: Concept | None
    site: Concept | None
    when_abnormal_only: bool = False


def binding(local_code: str, exam_type: str) -> Binding:
    """Return the binding of a local code in an exam type (no concept when none exists)."""
    lesion_site = _LESION_SITES.get(exam_type)
    match local_code:
        case "carotid-far-wall-imt":
            return Binding(None, COMMON_CAROTID_ARTERY)
        case "carotid-plaque":
            return Binding(ATHEROMA, CAROTID_ARTERY, when_abnormal_only=True)
        case "carotid-imt-not-measurable":
            return Binding(None, COMMON_CAROTID_ARTERY)
        case "kidney-length":
            return Binding(LENGTH, KIDNEY)
        case "kidney-cortical-echogenicity-ratio" | "kidney-not-measurable":
            return Binding(None, KIDNEY)
        case "focal-lesion-solid":
            return Binding(THYROID_NODULE if exam_type == "thyroid" else MASS, lesion_site)
        case "focal-lesion-cystic":
            return Binding(CYST, lesion_site)
        case "focal-lesion-count":
            return Binding(NUMBER_OF_LESIONS, lesion_site)
    return Binding(None, None)


def bind(finding: ModuleFinding, exam_type: str) -> ModuleFinding:
    """Return the finding coded in SNOMED CT where a concept exists, with its finding site."""
    if finding.code_system != LOCAL:
        return finding
    b = binding(finding.code, exam_type)
    attributes = dict(finding.attributes)
    attributes["local_code"] = finding.code
    if b.site is not None:
        attributes["finding_site"] = b.site.code
        attributes["finding_site_system"] = SNOMED
        attributes["finding_site_display"] = b.site.display
    concept = b.concept if (finding.abnormal or not b.when_abnormal_only) else None
    if concept is None:
        return dataclasses.replace(finding, attributes=attributes)
    attributes["concept_display"] = concept.display
    return dataclasses.replace(
        finding, code=concept.code, code_system=SNOMED, attributes=attributes
    )


def card_codes(local_codes: dict[str, str], exam_types: list[str]) -> dict[str, Any]:
    """Return a card's `codes` section: each local code's binding per exam type, and units."""
    bindings: dict[str, Any] = {}
    for local in local_codes:
        per_type = {}
        for exam_type in exam_types:
            b = binding(local, exam_type)
            per_type[exam_type] = {
                "system": SNOMED if b.concept else LOCAL,
                "code": b.concept.code if b.concept else local,
                "display": b.concept.display if b.concept else None,
                "finding_site": b.site.code if b.site else None,
                "finding_site_display": b.site.display if b.site else None,
                "only_when_abnormal": b.when_abnormal_only,
            }
        bindings[local] = per_type
    return {
        "system": SNOMED,
        "local_system": LOCAL,
        "note": (
            "SNOMED CT concepts are those DICOM PS3.16 uses, checked against pydicom's copy of its "
            "tables. Carotid IMT and the cortical echogenicity ratio have no SNOMED CT or RadLex "
            "concept there, so they keep the local code with a coded finding site. The local "
            "code is always kept in attributes.local_code. Units are UCUM."
        ),
        "bindings": bindings,
        "units": local_codes,
    }
