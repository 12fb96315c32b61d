"""Terminology binding: every SNOMED CT and LOINC code is DICOM PS3.16's; cards show them."""

import dataclasses
import functools
import json
import re

import pytest
from pydicom.sr.codedict import codes

from sonobridge.inference.modules import carotid, fetal, kidney, lesions, terminology
from sonobridge.inference.modules.base import ModuleFinding
from sonobridge.inference.modules.common import MODELS_DIR
from sonobridge.inference.modules.terminology import LOCAL, LOINC, SNOMED, bind, binding, card_codes

MODULES = [carotid, kidney, lesions, fetal]


@functools.cache
def _dicom_meanings_by_code(scheme: str) -> dict[str, set[str]]:
    """Return DICOM PS3.16's meanings in a scheme (pydicom's copy) by code, normalised."""
    table = getattr(codes, scheme)
    meanings: dict[str, set[str]] = {}
    for keyword in table.dir():
        code = getattr(table, keyword)
        # "Kidney structure (body structure)" and "Kidney" name the same concept.
        meaning = re.sub(r"\s*\([^)]*\)$", "", code.meaning).strip().lower()
        meanings.setdefault(code.value, set()).add(meaning)
    return meanings


def _dicom_meanings(code: str, system: str = SNOMED) -> set[str]:
    """Return the meanings DICOM PS3.16 gives a SNOMED CT or LOINC code (empty when none)."""
    return _dicom_meanings_by_code({SNOMED: "SCT", LOINC: "LN"}[system]).get(code, set())


def _every_binding():
    for module in MODULES:
        for local in module.CODES:
            for exam_type in sorted(module.EXAM_TYPES):
                yield module.NAME, local, exam_type, binding(local, exam_type)


def test_every_bound_snomed_code_exists_in_dicom_with_the_same_meaning():
    concepts_seen = set()
    for name, local, exam_type, b in _every_binding():
        for concept in (b.concept, b.site):
            if concept is None:
                continue
            concepts_seen.add(concept.code)
            meanings = _dicom_meanings(concept.code, concept.system)
            assert meanings, f"{name} {local} ({exam_type}): {concept} not in PS3.16"
            assert concept.display.lower() in meanings, (concept, meanings)
    # Findings and observables plus their sites: a table that lost entries would shrink this.
    assert len(concepts_seen) == 17


def test_fetal_biometry_is_coded_in_loinc_as_ps3_16_uses_it_with_the_hadlock_equation():
    expected = {
        "fetal-head-circumference": "11984-2",
        "fetal-biparietal-diameter": "11820-8",
        "fetal-occipitofrontal-diameter": "11851-3",
        "fetal-gestational-age": "18185-9",
    }
    for local, code in expected.items():
        b = binding(local, "obstetric")
        assert b.concept is not None and (b.concept.system, b.concept.code) == (LOINC, code)
        assert b.site == terminology.HEAD
    # The GA equation code is PS3.16's "HC, Hadlock 1984" (CID 12013), as the module computes.
    eq = terminology.GA_EQUATION_HC_HADLOCK_1984
    assert eq.display.lower() in _dicom_meanings(eq.code, LOINC)
    ga = bind(_finding("fetal-gestational-age", False), "obstetric")
    assert (ga.code_system, ga.code) == (LOINC, "18185-9")
    assert ga.attributes["equation_code"] == "11932-1"
    assert binding("fetal-biometry-not-measurable", "obstetric").concept is None


def test_every_module_code_has_a_finding_site_and_measurements_a_concept_where_one_exists():
    for name, local, exam_type, b in _every_binding():
        assert b.site is not None, (name, local, exam_type)
    assert binding("kidney-length", "kidney").concept == terminology.LENGTH
    assert binding("focal-lesion-solid", "thyroid").concept == terminology.THYROID_NODULE
    assert binding("focal-lesion-solid", "liver").concept == terminology.MASS
    assert binding("focal-lesion-cystic", "abdomen").site == terminology.ABDOMEN
    # No SNOMED CT or RadLex concept for carotid IMT in PS3.16: it stays local.
    assert binding("carotid-far-wall-imt", "carotid").concept is None


def _finding(code: str, abnormal: bool) -> ModuleFinding:
    return ModuleFinding(
        code=code,
        code_system=LOCAL,
        display=f"display of {code}",
        value=1.0,
        unit="mm",
        confidence=0.9,
        low_confidence=False,
        abnormal=abnormal,
        sop_instance_uid="1.2.3",
        attributes={"kind": "solid"},
    )


def test_bind_codes_the_finding_and_keeps_the_local_code_display_and_attributes():
    bound = bind(_finding("focal-lesion-solid", True), "thyroid")
    assert (bound.code_system, bound.code) == (SNOMED, "237495005")
    assert bound.display == "display of focal-lesion-solid"
    assert bound.attributes == {
        "kind": "solid",
        "local_code": "focal-lesion-solid",
        "finding_site": "69748006",
        "finding_site_system": SNOMED,
        "finding_site_display": "Thyroid",
        "concept_display": "Thyroid nodule",
    }
    assert dataclasses.replace(bound, code="x", code_system="y", attributes={}) == (
        dataclasses.replace(
            _finding("focal-lesion-solid", True), code="x", code_system="y", attributes={}
        )
    )


def test_an_absent_plaque_is_not_exported_as_the_code_for_plaque():
    present = bind(_finding("carotid-plaque", True), "carotid")
    absent = bind(_finding("carotid-plaque", False), "carotid")
    assert (present.code_system, present.code) == (SNOMED, terminology.ATHEROMA.code)
    assert (absent.code_system, absent.code) == (LOCAL, "carotid-plaque")
    assert absent.attributes["finding_site"] == terminology.CAROTID_ARTERY.code


def test_bind_leaves_already_coded_and_unknown_findings_alone():
    coded = dataclasses.replace(_finding("x", True), code="237495005", code_system=SNOMED)
    assert bind(coded, "thyroid") is coded
    unknown = bind(_finding("something-new", True), "other")
    assert (unknown.code_system, unknown.code) == (LOCAL, "something-new")
    assert unknown.attributes["local_code"] == "something-new"


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.NAME)
def test_each_cards_codes_section_is_what_the_binding_table_says(module):
    card = json.loads((MODELS_DIR / module.NAME / module.VERSION / "card.json").read_text())
    assert card["codes"] == card_codes(module.CODES, sorted(module.EXAM_TYPES))
    assert set(card["codes"]["bindings"]) == set(module.CODES)
