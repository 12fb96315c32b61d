"""Bind the modules' local finding codes to SNOMED CT or LOINC concepts and finding sites.

Every SNOMED CT and LOINC code here is one that DICOM PS3.16 uses (pydicom ships those tables, and
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
LOINC = "http://loinc.org"
LOCAL = "urn:sonobridge:finding"


@dataclass(frozen=True)
class Concept:
    """A SNOMED CT (or LOINC) concept: code and the meaning DICOM PS3.16 gives it."""

    code: str
    display: str
    system: str = SNOMED


# Findings and observables.
ATHEROMA = Concept("48434008", "Atheroma")
LENGTH = Concept("410668003", "Length")
THYROID_NODULE = Concept("237495005", "Thyroid nodule")
MASS = Concept("4147007", "Mass")
CYST = Concept("367643001", "Cyst")
NUMBER_OF_LESIONS = Concept("246206008", "Number of lesions")

# Fetal biometry (LOINC, as PS3.16's CID 12005 / 12019 use them) and the GA equation (CID 12013).
HEAD_CIRCUMFERENCE = Concept("11984-2", "Head Circumference", LOINC)
BIPARIETAL_DIAMETER = Concept("11820-8", "Biparietal Diameter", LOINC)
OCCIPITAL_FRONTAL_DIAMETER = Concept("11851-3", "Occipital-Frontal Diameter", LOINC)
GESTATIONAL_AGE = Concept("18185-9", "Gestational Age", LOINC)
GA_EQUATION_HC_HADLOCK_1984 = Concept("11932-1", "HC, Hadlock 1984", LOINC)

# Finding sites.
COMMON_CAROTID_ARTERY = Concept("32062004", "Common carotid artery")
CAROTID_ARTERY = Concept("69105007", "Carotid artery")
KIDNEY = Concept("64033007", "Kidney")
THYROID = Concept("69748006", "Thyroid")
LIVER = Concept("10200004", "Liver")
ABDOMEN = Concept("818981001", "Abdomen")
HEAD = Concept("69536005", "Head")

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
        case "fetal-head-circumference":
            return Binding(HEAD_CIRCUMFERENCE, HEAD)
        case "fetal-biparietal-diameter":
            return Binding(BIPARIETAL_DIAMETER, HEAD)
        case "fetal-occipitofrontal-diameter":
            return Binding(OCCIPITAL_FRONTAL_DIAMETER, HEAD)
        case "fetal-gestational-age":
            return Binding(GESTATIONAL_AGE, HEAD)
        case "fetal-biometry-not-measurable":
            return Binding(None, HEAD)
    return Binding(None, None)


def bind(finding: ModuleFinding, exam_type: str) -> ModuleFinding:
    """Return the finding coded in SNOMED CT or LOINC where a concept exists, with its site."""
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
    if concept == GESTATIONAL_AGE:
        attributes["equation_code"] = GA_EQUATION_HC_HADLOCK_1984.code
        attributes["equation_system"] = LOINC
        attributes["equation_display"] = GA_EQUATION_HC_HADLOCK_1984.display
    return dataclasses.replace(
        finding, code=concept.code, code_system=concept.system, attributes=attributes
    )


def card_codes(local_codes: dict[str, str], exam_types: list[str]) -> dict[str, Any]:
    """Return a card's `codes` section: each local code's binding per exam type, and units."""
    bindings: dict[str, Any] = {}
    for local in local_codes:
        per_type = {}
        for exam_type in exam_types:
            b = binding(local, exam_type)
            per_type[exam_type] = {
                "system": b.concept.system if b.concept else LOCAL,
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
            + (
                " LOINC concepts are those PS3.16 uses for fetal biometry (CID 12005, 12019), "
                "checked the same way."
                if any(v["system"] == LOINC for b in bindings.values() for v in b.values())
                else ""
            )
        ),
        "bindings": bindings,
        "units": local_codes,
    }
