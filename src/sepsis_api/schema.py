"""The feature schema: the single source of truth for every input the model reads.

Request models, CSV validation, the UI form, ``/v1/features`` and the docs all read from here.
Descriptions and units are the dataset publisher's dictionary; see ``PROVENANCE``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Feature:
    code: str  # column name in the data set (PRG, PL, ...)
    name: str  # descriptive API name used by the case study (plasma_glucose, ...)
    description: str  # the publisher's dictionary
    unit: str | None
    minimum: float  # valid range, inclusive
    maximum: float
    zero_means_missing: bool  # 0 is physiologically impossible and means "not measured"
    integer: bool = False
    choices: tuple[int, ...] | None = None  # categorical features: the only allowed values

    @property
    def nullable(self) -> bool:
        """Whether the feature may be left out ("not measured") and imputed by the model."""
        return self.zero_means_missing

    def check(self, value: float) -> str | None:
        """The rule ``value`` breaks, or None when it is valid (NaN = missing is checked apart)."""
        if not math.isfinite(value):
            return "must be a finite number"
        if self.choices is not None:
            if value not in self.choices:
                return f"must be one of {', '.join(map(str, self.choices))}"
            return None
        if not self.minimum <= value <= self.maximum:
            return f"must be between {_fmt(self.minimum)} and {_fmt(self.maximum)}"
        return None

    @property
    def rule(self) -> str:
        """A one-line statement of what is valid, for error messages and docs."""
        if self.choices is not None:
            allowed = f"one of {', '.join(map(str, self.choices))}"
        else:
            allowed = f"a number from {_fmt(self.minimum)} to {_fmt(self.maximum)}"
        if self.zero_means_missing:
            allowed += "; 0 or empty means not measured"
        return allowed


def _fmt(x: float) -> str:
    return f"{x:g}"


# Ranges are wide enough for every row of the data set and every plausible patient, narrow
# enough to reject typos (age 500, BMI 900). Maximums seen in the data: PRG 17, PL 198,
# PR 122, SK 99, TS 846, M11 67.1, BD2 2.42, Age 81.
FEATURES: tuple[Feature, ...] = (
    Feature("PRG", "plasma_glucose", "Plasma glucose", None, 0, 30, False, integer=True),
    Feature("PL", "blood_work_result_1", "Blood work result 1", "mu U/ml", 0, 600, True),
    Feature("PR", "blood_pressure", "Blood pressure", "mm Hg", 0, 250, True),
    Feature("SK", "blood_work_result_2", "Blood work result 2", "mm", 0, 150, True),
    Feature("TS", "blood_work_result_3", "Blood work result 3", "mu U/ml", 0, 1500, True),
    Feature("M11", "body_mass_index", "Body mass index", "kg/m²", 0, 100, True),
    Feature("BD2", "blood_work_result_4", "Blood work result 4", "mu U/ml", 0, 10, False),
    Feature("Age", "age", "Age", "years", 0, 120, False, integer=True),
    Feature(
        "Insurance",
        "insurance",
        "Holds health insurance (1) or not (0)",
        None,
        0,
        1,
        False,
        integer=True,
        choices=(0, 1),
    ),
)

FEATURE_CODES: tuple[str, ...] = tuple(f.code for f in FEATURES)
BY_CODE: dict[str, Feature] = {f.code: f for f in FEATURES}
BY_NAME: dict[str, Feature] = {f.name: f for f in FEATURES}
ZERO_MISSING_INDEX: tuple[int, ...] = tuple(
    i for i, f in enumerate(FEATURES) if f.zero_means_missing
)

ID_COLUMN = "ID"
LABEL_COLUMN = "Sepssis"  # spelled this way in the data set
LABEL_POSITIVE = "Positive"
LABEL_NEGATIVE = "Negative"
LABELS = (LABEL_NEGATIVE, LABEL_POSITIVE)

PROVENANCE = (
    "The data set is published as ICU sepsis data, but its values are identical, row for row, "
    "to the public Pima Indians Diabetes data set (there PRG is the number of pregnancies, "
    "PL the plasma glucose and BD2 the diabetes pedigree function); the 'Insurance' column "
    "is not part of that data set. The publisher's dictionary is kept for the feature names."
)
NOT_A_DEVICE = (
    "This is not a validated clinical device. Its estimates must not be used to make "
    "decisions about real patients."
)


def feature_for(key: str) -> Feature | None:
    """The feature named by a dataset code or a descriptive name (exact spelling)."""
    return BY_CODE.get(key) or BY_NAME.get(key)
