"""FHIR Observations and a Patient -> features by the mapping file (api/protocols/fhir_mapping):
codes, units, the newest observation, partial birth dates, and every problem named."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from factories import PATIENT
from fhir_bundles import (
    LOCAL,
    LOINC,
    WHEN,
    feature_observation,
    observation,
    patient,
    patient_observations,
)
from sepsis_api.api.protocols.fhir_mapping import (
    DEFAULT_MAPPING,
    MappingFileError,
    MappingProblems,
    features_from,
    load_mapping,
)
from sepsis_api.schema import FEATURE_CODES

MAPPING = load_mapping()
EXPECTED = {c: float(PATIENT[c]) for c in FEATURE_CODES}


def problems_of(*args, **kw):
    with pytest.raises(MappingProblems) as e:
        features_from(*args, MAPPING, **kw)
    return e.value.problems


def test_a_patients_observations_give_its_features_basis_and_time():
    obs = patient_observations()
    out = features_from(patient(), obs, MAPPING)
    assert out.values == EXPECTED
    assert list(out.values) == list(FEATURE_CODES)
    assert out.basis == [f"Observation/obs-{c}" for c in FEATURE_CODES if c != "Age"]
    assert out.occurrence == datetime.fromisoformat(WHEN)
    assert out.used == {c: i for i, c in enumerate(c for c in FEATURE_CODES if c != "Age")}


def test_plain_dicts_are_read_like_the_library_objects():
    obs = [o.model_dump(mode="json") for o in patient_observations()]
    out = features_from(patient().model_dump(mode="json"), obs, MAPPING)
    assert out.values == EXPECTED


@pytest.mark.parametrize(
    ("code", "value", "unit", "expected"),
    [
        ("1518-0", 148, "mg/dL", 148.0),
        ("14995-5", 8.2, "mmol/L", 8.2 * 18.0156),  # glucose: 1 mmol/L = 18.0156 mg/dL
        ("1518-0", 8.2, "mmol/L", 8.2 * 18.0156),  # the unit decides, not the code's property
        ("14995-5", 148, "mg/dL", 148.0),
    ],
)
def test_glucose_in_either_unit_is_converted_to_mg_per_dl(code, value, unit, expected):
    obs = [o for o in patient_observations() if o.id != "obs-PL"]
    obs.append(observation("glu", LOINC, code, value, unit))
    out = features_from(patient(), obs, MAPPING)
    assert out.values["PL"] == pytest.approx(expected)
    assert "Observation/glu" in out.basis


def test_a_unit_the_mapping_does_not_accept_is_named():
    obs = [o for o in patient_observations() if o.id != "obs-PL"]
    obs.append(observation("glu", LOINC, "1518-0", 148, "mg/L"))
    [p] = problems_of(patient(), obs)
    assert p.field == f"Observation[{len(obs) - 1}].valueQuantity.code"
    assert p.value == "mg/L" and p.feature == "PL"
    assert "mg/dL" in p.expected and "mmol/L" in p.expected
    assert "'mg/L' is not accepted" in p.message


def test_units_from_another_system_than_ucum_are_refused():
    obs = [o for o in patient_observations() if o.id != "obs-PR"]
    pr = feature_observation("PR", 72).model_dump(mode="json")
    pr["valueQuantity"]["system"] = "http://example.org/units"
    [p] = problems_of(patient(), [*obs, pr])
    assert p.element == "valueQuantity.system" and "unitsofmeasure" in p.expected


def test_a_missing_required_observation_is_named_with_its_code():
    obs = [o for o in patient_observations() if o.id != "obs-PRG"]
    [p] = problems_of(patient(), obs)
    assert p.feature == "PRG" and p.field == "Observation"
    assert "http://loinc.org|11996-6" in p.expected
    assert "PRG ([#] Pregnancies) is required" in p.message


def test_every_problem_is_reported_at_once():
    obs = [o for o in patient_observations() if o.id not in ("obs-PRG", "obs-BD2")]
    problems = problems_of(patient(birth=None), obs)
    assert {p.feature for p in problems} == {"PRG", "BD2", "Age"}


def test_a_missing_optional_observation_is_not_measured():
    obs = [o for o in patient_observations() if o.id not in ("obs-SK", "obs-TS")]
    out = features_from(patient(), obs, MAPPING)
    assert out.values["SK"] is None and out.values["TS"] is None
    assert "Observation/obs-SK" not in out.basis


@pytest.mark.parametrize(
    ("birth", "age"),
    [
        ("1973-11-20", 50),
        ("1973-03-02", 50),
        ("1973-03-01", 51),  # birthday on the observation date
        ("1974", 49),  # a year alone: 1 July 1974
        ("1973", 50),
        ("1973-02", 51),  # a year and month: 15 February 1973
        ("1973-03", 50),  # 15 March 1973, after 1 March
    ],
)
def test_age_at_the_observation_date_also_from_a_partial_birth_date(birth, age):
    obs = patient_observations(when="2024-03-01T09:30:00+00:00")
    out = features_from(patient(birth=birth), obs, MAPPING)
    assert out.values["Age"] == age


def test_a_birth_date_after_the_observations_is_refused():
    [p] = problems_of(patient(birth="2025-01-01"), patient_observations())
    assert p.field == "Patient.birthDate" and p.value == "2025-01-01"
    assert "2024-03-01" in p.expected


def test_no_patient_means_no_age():
    [p] = problems_of(None, patient_observations())
    assert p.field == "Patient.birthDate" and "no Patient was given" in p.message


def test_unknown_codes_are_ignored():
    obs = [
        *patient_observations(),
        observation("random-glucose", LOINC, "2345-7", 200, "mg/dL"),
        observation("odd", "http://example.org/codes", "x", "text-is-fine", None),
    ]
    out = features_from(patient(), obs, MAPPING)
    assert out.values == EXPECTED
    assert "Observation/random-glucose" not in out.basis and "Observation/odd" not in out.basis


def test_the_newest_observation_of_a_code_is_used_and_named_in_basis():
    obs = [o for o in patient_observations() if o.id != "obs-PL"]
    obs += [
        observation("old", LOINC, "1518-0", 100, "mg/dL", when="2024-02-01T08:00:00+00:00"),
        observation("new", LOINC, "1518-0", 7.0, "mmol/L", when="2024-03-05T08:00:00+01:00"),
        observation("undated", LOINC, "1518-0", 300, "mg/dL", when=None),
        observation("mid", LOINC, "1518-0", 120, "mg/dL", when="2024-03-02T08:00:00+00:00"),
    ]
    out = features_from(patient(), obs, MAPPING)
    assert out.values["PL"] == pytest.approx(7.0 * 18.0156)
    assert "Observation/new" in out.basis
    assert not {"Observation/old", "Observation/undated", "Observation/mid"} & set(out.basis)
    assert out.occurrence == datetime(2024, 3, 5, 7, 0, tzinfo=UTC)


def test_only_the_newest_is_checked_an_older_bad_one_does_not_matter():
    obs = [o for o in patient_observations() if o.id != "obs-PL"]
    obs += [
        observation("old", LOINC, "1518-0", 100, "g/L", when="2024-02-01T08:00:00+00:00"),
        observation("new", LOINC, "1518-0", 130, "mg/dL", when="2024-03-01T08:00:00+00:00"),
    ]
    assert features_from(patient(), obs, MAPPING).values["PL"] == 130


def test_observations_entered_in_error_or_without_a_value_are_passed_over():
    obs = [*patient_observations()]
    obs.append(
        observation(
            "err", LOINC, "1518-0", 400, "mg/dL", when="2025-01-01", status="entered-in-error"
        )
    )
    absent = observation("absent", LOINC, "1518-0", 1, "mg/dL", when="2025-01-01").model_dump(
        mode="json"
    )
    del absent["valueQuantity"]
    absent["dataAbsentReason"] = {"text": "sample haemolysed"}
    out = features_from(patient(), [*obs, absent], MAPPING)
    assert out.values["PL"] == 148 and "Observation/err" not in out.basis


def test_diastolic_pressure_is_read_from_a_blood_pressure_panel():
    obs = [o for o in patient_observations() if o.id != "obs-PR"]
    panel = observation("bp", LOINC, "85354-9", 0, None)
    panel = panel.model_dump(mode="json")
    del panel["valueInteger"]
    panel["component"] = [
        {
            "code": {"coding": [{"system": LOINC, "code": code}]},
            "valueQuantity": {"value": v, "system": "http://unitsofmeasure.org", "code": "mm[Hg]"},
        }
        for code, v in (("8480-6", 128), ("8462-4", 81))
    ]
    out = features_from(patient(), [*obs, panel], MAPPING)
    assert out.values["PR"] == 81 and "Observation/bp" in out.basis


def test_a_value_outside_the_schema_is_named_with_the_rule():
    obs = [o for o in patient_observations() if o.id != "obs-M11"]
    obs.append(feature_observation("M11", 950))
    [p] = problems_of(patient(), obs)
    assert p.element == "valueQuantity.value" and p.value == "950"
    assert p.expected.startswith("a number from 0 to 100")


def test_counts_must_be_whole_and_values_must_be_numbers():
    obs = [o for o in patient_observations() if o.id not in ("obs-PRG", "obs-SK")]
    prg = observation("prg", LOINC, "11996-6", 2.5, "{#}")
    sk = observation("sk", LOCAL, "SK", None, None, valueString="thick")
    problems = problems_of(patient(), [*obs, prg, sk])
    by = {p.feature: p for p in problems}
    assert "whole number" in by["PRG"].message
    assert by["SK"].element == "valueString" and "valueQuantity" in by["SK"].expected


def test_an_observation_about_another_patient_is_refused():
    obs = [o for o in patient_observations() if o.id != "obs-PL"]
    obs.append(feature_observation("PL", 148, subject="Patient/someone-else"))
    [p] = problems_of(patient(), obs)
    assert p.element == "subject" and p.value == "Patient/someone-else"


def test_observations_without_an_id_are_referenced_by_the_given_reference():
    obs = [o for o in patient_observations() if o.id != "obs-PL"]
    obs.append(feature_observation("PL", 148, id=None, subject="urn:uuid:p"))
    refs = [None] * (len(obs) - 1) + ["urn:uuid:glucose"]
    out = features_from(patient(), obs, MAPPING, references=refs, patient_references=["urn:uuid:p"])
    assert "urn:uuid:glucose" in out.basis
    [p] = problems_of(patient(), obs, patient_references=["urn:uuid:p"])
    assert p.element == "id" and p.feature == "PL"


def test_an_invalid_resource_dict_is_named_by_its_element():
    bad = feature_observation("PL", 148).model_dump(mode="json")
    bad["valueQuantity"]["value"] = "lots"
    problems = problems_of(patient(), [bad, {"resourceType": "Patient"}])
    assert problems[0].field == "Observation[0].valueQuantity.value"
    assert problems[0].value == "lots"
    assert problems[1].field == "Observation[1].resourceType" and problems[1].value == "Patient"


def test_dicts_nested_too_deep_or_holding_unknown_resource_types_are_problems_not_crashes():
    deep = feature_observation("PL", 148).model_dump(mode="json")
    ext: dict = {"url": "urn:x", "valueString": "x"}
    for _ in range(100):
        ext = {"url": "urn:x", "extension": [ext]}
    deep["extension"] = [ext]
    odd = feature_observation("PR", 72).model_dump(mode="json")
    odd["contained"] = [{"resourceType": "Nope", "id": "n"}]
    problems = problems_of(patient(), [deep, odd])
    assert problems[0].field.startswith("Observation[0].extension[0].extension[0]")
    assert "nested deeper than" in problems[0].message
    assert problems[1].field == "Observation[1].contained[0].resourceType"
    assert "'Nope' is not a FHIR R4 resource type" in problems[1].message


def test_without_any_observation_time_the_occurrence_is_now():
    now = datetime(2030, 1, 1, tzinfo=UTC)
    out = features_from(patient(), patient_observations(when=None), MAPPING, now=now)
    assert out.occurrence == now and out.values["Age"] == 56


def test_an_operator_mapping_replaces_the_default(tmp_path):
    doc = json.loads(DEFAULT_MAPPING.read_text())
    doc["features"]["PL"] = {
        "codes": [{"system": "urn:hospital:lab", "code": "GLU2H"}],
        "units": {"mg/dL": 1},
    }
    path = tmp_path / "mapping.json"
    path.write_text(json.dumps(doc))
    mapping = load_mapping(path)
    obs = [o for o in patient_observations() if o.id != "obs-PL"]
    obs.append(observation("g", "urn:hospital:lab", "GLU2H", 99, "mg/dL"))
    assert features_from(patient(), obs, mapping).values["PL"] == 99
    # LOINC glucose is now an unknown code: PL is not measured
    assert features_from(patient(), patient_observations(), mapping).values["PL"] is None


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (lambda d: d["features"].update(XX=d["features"]["PL"]), "unknown feature(s) XX"),
        (lambda d: d["features"].pop("BD2"), "required feature(s) BD2 have no codes"),
        (lambda d: d["features"].update(Age=d["features"]["PL"]), "Patient.birthDate"),
        (lambda d: d["features"]["SK"].update(codes=d["features"]["PL"]["codes"]), "both"),
        (lambda d: d["features"]["SK"].update(units={"mm": 0}), "positive"),
        (lambda d: d["features"]["SK"].update(unit="mm"), "Extra inputs"),
    ],
)
def test_a_broken_mapping_file_is_refused_naming_the_file_and_the_rule(tmp_path, change, words):
    doc = json.loads(DEFAULT_MAPPING.read_text())
    change(doc)
    path = tmp_path / "mapping.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(MappingFileError) as e:
        load_mapping(path)
    assert str(path) in str(e.value) and words in str(e.value)


def test_an_unreadable_mapping_file_is_named(tmp_path):
    with pytest.raises(MappingFileError, match="cannot be read"):
        load_mapping(tmp_path / "absent.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(MappingFileError, match=r"bad\.json"):
        load_mapping(tmp_path / "bad.json")
