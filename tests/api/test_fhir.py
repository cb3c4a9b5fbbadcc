"""FHIR R4: POST /fhir/RiskAssessment/$predict with Bundles built by fhir.resources, the
RiskAssessment it returns read back by the same library, and every client mistake an
OperationOutcome naming where it is; GET /fhir/metadata."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.operationdefinition import OperationDefinition
from fhir.resources.R4B.operationoutcome import OperationOutcome
from fhir.resources.R4B.riskassessment import RiskAssessment

from factories import patient as v1_patient
from fhir_bundles import (
    LOCAL,
    LOINC,
    bundle,
    bundle_json,
    feature_observation,
    observation,
    patient,
    patient_observations,
)
from sepsis_api.api.protocols.fhir_mapping import DEFAULT_MAPPING, MappingFileError

PREDICT = "/fhir/RiskAssessment/$predict"
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "fhir-bundle.json"  # the README's
FHIR = {"content-type": "application/fhir+json"}
GLUCOSE_MMOL = 18.0156  # mg/dL per mmol/L, as the default mapping documents


def post(client, body, headers=FHIR, **params):
    content = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return client.post(PREDICT, content=content, headers=headers, params=params)


def assessed(r) -> RiskAssessment:
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/fhir+json"
    return RiskAssessment.model_validate(r.json())


def outcome(r, status: int) -> OperationOutcome:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/fhir+json"
    return OperationOutcome.model_validate(r.json())


def without(*ids):
    return [o for o in patient_observations() if o.id not in ids]


def v1(client, **changes):
    r = client.post("/v1/predict", json=v1_patient(**changes), params={"explain": "true"})
    assert r.status_code == 200, r.text
    return r.json()["predictions"][0]


def count(client) -> int:
    return len(client.get("/v1/predictions", params={"limit": 500}).json()["items"])


def test_a_bundle_gives_a_risk_assessment_equal_to_v1s_and_audited(client):
    ra = assessed(post(client, bundle_json(patient(), patient_observations())))
    ref = v1(client)
    [pred] = ra.prediction
    assert float(pred.probabilityDecimal) == ref["probability"]
    assert pred.qualitativeRisk.coding[0].code == ref["risk_band"]
    assert pred.qualitativeRisk.coding[0].system.endswith("CodeSystem/risk-probability")
    assert ra.status == "final" and ra.subject.reference == "Patient/pat-1"
    assert ra.occurrenceDateTime.isoformat() == "2024-03-01T09:30:00+00:00"
    [method] = ra.method.coding
    assert (method.code, method.version) == (ref["model"], ref["model_version"])
    assert [b.reference for b in ra.basis] == [
        f"Observation/obs-{c}" for c in ("PRG", "PL", "PR", "SK", "TS", "M11", "BD2", "Insurance")
    ]
    top = [c["feature"] for c in ref["contributions"][:3]]
    assert [pred.rationale.index(f"{c} ") for c in top] == sorted(
        pred.rationale.index(f"{c} ") for c in top
    )  # the reasons, largest first, as /v1 explains them
    assert f"label {ref['label']}" in pred.rationale
    pid = ra.identifier[0].value
    assert ra.id == pid
    record = client.get(f"/v1/predictions/{pid}").json()
    assert record["source"] == "fhir" and record["patient_id"] == "pat-1"
    assert (
        record["inputs"] == client.get(f"/v1/predictions/{ref['prediction_id']}").json()["inputs"]
    )
    assert record["contributions"] is not None


def test_plain_application_json_is_accepted(client):
    body = bundle_json(patient(), patient_observations())
    assessed(post(client, body, headers={"content-type": "application/json; charset=utf-8"}))


def test_glucose_in_mmol_per_litre_is_scored_as_mg_per_dl(client):
    obs = [*without("obs-PL"), observation("glu", LOINC, "14995-5", 8.2, "mmol/L")]
    ra = assessed(post(client, bundle_json(patient(), obs)))
    ref = v1(client, PL=8.2 * GLUCOSE_MMOL)
    assert float(ra.prediction[0].probabilityDecimal) == ref["probability"]
    assert "Observation/glu" in [b.reference for b in ra.basis]
    record = client.get(f"/v1/predictions/{ra.id}").json()
    assert record["inputs"]["PL"] == pytest.approx(8.2 * GLUCOSE_MMOL)


def test_a_missing_required_observation_is_a_422_naming_it_and_nothing_is_audited(client):
    before = count(client)
    oo = outcome(post(client, bundle_json(patient(), without("obs-BD2"))), 422)
    [issue] = oo.issue
    assert issue.severity == "error" and issue.code == "required"
    assert "BD2" in issue.diagnostics and f"{LOCAL}|BD2" in issue.diagnostics
    assert issue.expression == ["Bundle.entry"]
    assert count(client) == before


def test_a_missing_optional_observation_is_not_measured(client):
    ra = assessed(post(client, bundle_json(patient(), without("obs-SK"))))
    ref = v1(client, SK=None)
    assert float(ra.prediction[0].probabilityDecimal) == ref["probability"]
    assert client.get(f"/v1/predictions/{ra.id}").json()["inputs"]["SK"] is None


@pytest.mark.parametrize(("birth", "age"), [("1973", 50), ("1974", 49), ("1973-02", 51)])
def test_a_partial_birth_date_gives_the_age_at_the_observation_date(client, birth, age):
    ra = assessed(post(client, bundle_json(patient(birth=birth), patient_observations())))
    assert client.get(f"/v1/predictions/{ra.id}").json()["inputs"]["Age"] == age
    assert float(ra.prediction[0].probabilityDecimal) == v1(client, Age=age)["probability"]


def test_unknown_codes_and_other_resources_are_ignored(client):
    obs = [*patient_observations(), observation("hba1c", LOINC, "4548-4", 6.1, "%")]
    b = json.loads(bundle_json(patient(), obs))
    b["entry"].append(
        {"resource": {"resourceType": "Encounter", "status": "finished", "class": {"code": "IMP"}}}
    )
    ra = assessed(post(client, b))
    assert "Observation/hba1c" not in [r.reference for r in ra.basis]
    assert float(ra.prediction[0].probabilityDecimal) == v1(client)["probability"]


def test_the_newest_observation_is_used_and_is_the_one_in_basis(client):
    obs = [
        *without("obs-PL"),
        observation("pl-new", LOINC, "1518-0", 180, "mg/dL", when="2024-03-01T09:30:00Z"),
        observation("pl-old", LOINC, "1518-0", 90, "mg/dL", when="2023-01-01T09:30:00Z"),
    ]
    ra = assessed(post(client, bundle_json(patient(), obs)))
    basis = [r.reference for r in ra.basis]
    assert "Observation/pl-new" in basis and "Observation/pl-old" not in basis
    assert float(ra.prediction[0].probabilityDecimal) == v1(client, PL=180)["probability"]


def test_a_wrong_unit_is_a_422_naming_the_element_the_unit_and_the_accepted_ones(client):
    obs = [*without("obs-PR"), feature_observation("PR", 9.6, unit="kPa")]
    oo = outcome(post(client, bundle_json(patient(), obs)), 422)
    [issue] = oo.issue
    assert issue.code == "code-invalid"
    assert issue.expression == [f"Bundle.entry[{len(obs)}].resource.valueQuantity.code"]
    assert "'kPa'" in issue.diagnostics and "mm[Hg]" in issue.diagnostics


def test_every_problem_of_the_bundle_is_one_issue(client):
    obs = [*without("obs-PRG", "obs-M11"), feature_observation("M11", 400)]
    oo = outcome(post(client, bundle_json(patient(birth=None), obs)), 422)
    by = {i.diagnostics.split(" ")[0]: i for i in oo.issue}
    assert set(by) == {"PRG", "M11", "Age"}
    assert by["M11"].code == "value" and "found '400'" in by["M11"].diagnostics
    assert by["Age"].expression == ["Bundle.entry[0].resource.birthDate"]


def test_a_parameters_body_with_the_bundle_is_read_too(client):
    b = json.loads(bundle_json(patient(), patient_observations()))
    params = {"resourceType": "Parameters", "parameter": [{"name": "bundle", "resource": b}]}
    ra = assessed(post(client, params))
    assert float(ra.prediction[0].probabilityDecimal) == v1(client)["probability"]
    bad = {"resourceType": "Parameters", "parameter": [{"name": "patient", "resource": b}]}
    assert "named 'bundle'" in outcome(post(client, bad), 400).issue[0].diagnostics


@pytest.mark.parametrize(
    ("body", "expression", "words"),
    [
        ("{not json", None, "not valid JSON"),
        ([1, 2], "Bundle.resourceType", "expected a FHIR Bundle"),
        ({"resourceType": "Patient", "id": "p"}, "Bundle.resourceType", "got 'Patient'"),
        (
            {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": {"x": 1}}]},
            "Bundle.entry[0].resource.resourceType",
            "needs a resourceType",
        ),
        (
            {"resourceType": "Bundle", "entry": [{"resource": {"resourceType": "Nope"}}]},
            "Bundle.entry[0].resource.resourceType",
            "'Nope' is not a FHIR R4 resource type",
        ),
        (
            {
                "resourceType": "Bundle",
                "type": "collection",
                "entry": [{"resource": {"resourceType": "Patient", "birthDate": "soon"}}],
            },
            "Bundle.entry[0].resource.birthDate",
            "'soon'",
        ),
        ({"resourceType": "Bundle"}, "Bundle.type", "is required"),
    ],
)
def test_a_body_that_is_not_a_fhir_bundle_is_a_400_outcome(client, body, expression, words):
    oo = outcome(post(client, body), 400)
    assert words in oo.issue[0].diagnostics
    assert oo.issue[0].expression == ([expression] if expression else None)


def test_unknown_nested_resource_types_and_deep_nesting_are_400s_not_crashes(client):
    b = json.loads(bundle_json(patient(), patient_observations()))
    b["entry"][1]["resource"]["contained"] = [{"resourceType": "Nope"}]
    oo = outcome(post(client, b), 400)
    assert oo.issue[0].expression == ["Bundle.entry[1].resource.contained[0].resourceType"]
    ext: dict = {"url": "urn:x", "valueString": "x"}
    for _ in range(300):
        ext = {"url": "urn:x", "extension": [ext]}
    b["entry"][1]["resource"] = {**b["entry"][1]["resource"], "contained": [], "extension": [ext]}
    oo = outcome(post(client, b), 400)
    assert oo.issue[0].code == "too-costly" and "nested deeper" in oo.issue[0].diagnostics


def test_a_bundle_needs_exactly_one_patient_with_an_id_or_full_url(client):
    none = outcome(post(client, bundle_json(None, patient_observations())), 422)
    assert none.issue[0].code == "required" and "no Patient" in none.issue[0].diagnostics
    two = bundle(patient(), patient_observations())
    two.entry.append(bundle(patient("pat-2"), []).entry[0])
    assert "2 Patients" in outcome(post(client, two.model_dump_json()), 422).issue[0].diagnostics
    anonymous = bundle(patient(id=None), [])
    anonymous.entry[0].fullUrl = None
    oo = outcome(post(client, anonymous.model_dump_json()), 422)
    assert oo.issue[0].expression == ["Bundle.entry[0].resource.id"]


def test_observations_without_ids_are_referenced_by_their_full_url(client):
    obs = patient_observations(subject="urn:uuid:the-patient")
    b = json.loads(bundle_json(patient(id=None), obs))
    b["entry"][0]["fullUrl"] = "urn:uuid:the-patient"
    for i, entry in enumerate(b["entry"][1:]):
        del entry["resource"]["id"]
        entry["fullUrl"] = f"urn:uuid:obs-{i}"
    ra = assessed(post(client, b))
    assert ra.subject.reference == "urn:uuid:the-patient"
    assert ra.basis[0].reference == "urn:uuid:obs-0"


def test_another_content_type_is_a_415_outcome(client):
    oo = outcome(post(client, "PRG=6", headers={"content-type": "text/plain"}), 415)
    assert (
        oo.issue[0].code == "not-supported" and "application/fhir+json" in oo.issue[0].diagnostics
    )


def test_a_named_model_answers_and_an_unknown_one_is_a_422(client):
    body = bundle_json(patient(), patient_observations())
    ra = assessed(post(client, body, model="random_forest"))
    assert ra.method.coding[0].code == "random_forest"
    oo = outcome(post(client, body, model="nope"), 422)
    assert oo.issue[0].code == "not-found" and oo.issue[0].expression == ["model"]


def test_the_capability_statement_names_the_operation(client):
    r = client.get("/fhir/metadata")
    assert r.status_code == 200 and r.headers["content-type"] == "application/fhir+json"
    cs = CapabilityStatement.model_validate(r.json())
    assert cs.fhirVersion == "4.0.1"
    [rest] = cs.rest
    [resource] = rest.resource
    [op] = resource.operation
    assert resource.type == "RiskAssessment" and op.name == "predict"
    definition = client.get(op.definition.removeprefix("http://testserver"))
    od = OperationDefinition.model_validate(definition.json())
    assert od.code == "predict" and od.type is True and od.resource == ["RiskAssessment"]
    assert [(p.name, p.use, p.type) for p in od.parameter] == [
        ("bundle", "in", "Bundle"),
        ("return", "out", "RiskAssessment"),
    ]


def test_the_openapi_example_is_the_readmes_bundle_and_the_operation_scores_it(client):
    spec = client.get("/openapi.json").json()
    op = spec["paths"][PREDICT]["post"]
    example = op["requestBody"]["content"]["application/fhir+json"]["example"]
    assert example == json.loads(EXAMPLE.read_text(encoding="utf-8"))
    ra = assessed(post(client, EXAMPLE.read_bytes()))
    assert client.get(f"/v1/predictions/{ra.id}").json()["inputs"]["TS"] is None
    RiskAssessment.model_validate(
        op["responses"]["200"]["content"]["application/fhir+json"]["example"]
    )


def test_keys_are_needed_when_configured_and_the_metadata_stays_open(make_client):
    key = "f" * 24
    secured = make_client(api_keys=f"ehr:{key}")
    body = bundle_json(patient(), patient_observations())
    refused = outcome(post(secured, body), 401)
    assert refused.issue[0].code == "login" and "API key" in refused.issue[0].diagnostics
    assert secured.get("/fhir/metadata").status_code == 200
    ra = assessed(post(secured, body, headers={**FHIR, "Authorization": f"Bearer {key}"}))
    record = secured.get(f"/v1/predictions/{ra.id}", headers={"X-API-Key": key}).json()
    assert record["caller"] == "ehr" and record["source"] == "fhir"


def test_the_body_size_limit_applies(make_client):
    small = make_client(max_body_bytes=2_000)
    body = bundle_json(patient(), patient_observations())
    assert len(body) > 2_000
    assert post(small, body).status_code == 413


def test_an_operator_mapping_file_replaces_the_default(make_client, tmp_path):
    doc = json.loads(DEFAULT_MAPPING.read_text())
    doc["features"]["PL"]["codes"] = [{"system": "urn:hospital:lab", "code": "OGTT-2H"}]
    path = tmp_path / "mapping.json"
    path.write_text(json.dumps(doc))
    client = make_client(fhir_mapping=path)
    obs = [*without("obs-PL"), observation("g", "urn:hospital:lab", "OGTT-2H", 148, "mg/dL")]
    ra = assessed(post(client, bundle_json(patient(), obs)))
    assert "Observation/g" in [b.reference for b in ra.basis]
    assert float(ra.prediction[0].probabilityDecimal) == v1(client)["probability"]


def test_a_broken_mapping_file_stops_the_app_from_being_built(make_client, tmp_path):
    path = tmp_path / "mapping.json"
    path.write_text('{"features": {}}')
    with pytest.raises(MappingFileError, match="required feature"):
        make_client(fhir_mapping=path)
