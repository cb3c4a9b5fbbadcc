"""Standard protocols at the edges: thin adapters over the one model resolver
(ml/scoring.resolve) and the one scoring-plus-audit path (api/service.Service).

Each module is an APIRouter with its own error shape: ``v2`` (Open Inference Protocol V2),
``mlflow`` (MLflow's scoring protocol), ``fhir`` (FHIR R4 RiskAssessment), ``cds_hooks`` (CDS
Hooks 2.0, with ``cds_cards``, ``cds_fhir`` and ``cds_auth``); ``common`` holds what they
share. ``fhir_mapping`` (no FastAPI) turns FHIR Observations into features.
"""
