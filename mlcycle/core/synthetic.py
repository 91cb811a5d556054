"""The bundled synthetic credit-risk table: a neutral data source for every stage.

In: a row count, a seed, a drift level and a concept-shift level. Out: a pandas DataFrame of 13
raw input columns plus the target `default` as 0/1 integers. Training uses it as its bundled
data; the traffic simulator draws live-looking requests from it (with drift); tests and
benchmarks use it as a fixture. It lives in the core so that monitoring never imports training
code.

The data is **synthetic**: every row is drawn from hand-written distributions (see `generate`),
and the target follows a logistic model of the features (more late payments, higher credit
utilisation, a higher debt-to-income ratio and a larger loan relative to income raise the risk).
No real person's data is involved. A well-fitted model reaches a ROC AUC of about 0.8 on it; the
`drift` knob shifts the input distributions for monitoring work, and the `concept` knob changes
how the inputs relate to default while leaving the inputs exactly as they were (concept drift: a
model can be right about the inputs and still wrong about the risk).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

TARGET = "default"

HOME_OWNERSHIP = ["MORTGAGE", "OWN", "RENT", "OTHER"]
LOAN_PURPOSE = [
    "debt_consolidation",
    "credit_card",
    "home_improvement",
    "car",
    "medical",
    "small_business",
    "education",
]
EMPLOYMENT_TYPE = ["salaried", "self_employed", "contract", "unemployed"]

# Category mixes without drift and at full drift (`drift=1`); the generator interpolates.
_HOME_P = ([0.42, 0.12, 0.44, 0.02], [0.25, 0.08, 0.60, 0.07])
_PURPOSE_P = (
    [0.40, 0.22, 0.12, 0.10, 0.06, 0.06, 0.04],
    [0.25, 0.20, 0.06, 0.07, 0.16, 0.20, 0.06],
)
_EMPLOYMENT_P = ([0.70, 0.14, 0.12, 0.04], [0.52, 0.16, 0.20, 0.12])
_PURPOSE_RISK = {
    "debt_consolidation": 0.15,
    "credit_card": 0.05,
    "home_improvement": -0.20,
    "car": -0.25,
    "medical": 0.30,
    "small_business": 0.55,
    "education": 0.10,
}
_HOME_RISK = {"MORTGAGE": -0.20, "OWN": -0.25, "RENT": 0.15, "OTHER": 0.30}
# Scale of the risk score in the logit: sets how learnable the target is (ROC AUC ~0.8).
_RISK_SCALE = 1.7
_INTERCEPT = -2.5
_EMPLOYMENT_RISK = {"salaried": -0.10, "self_employed": 0.15, "contract": 0.20, "unemployed": 0.70}
# The rule at full concept shift (`concept=1`): low income dominates, car loans turn risky and a
# recent late payment *lowers* the risk (a sign flip), so the old model ranks rows badly.
_SHIFTED_INTERCEPT = -2.0
_SHIFTED_LOW_INCOME = (45_000, 3.0)
_SHIFTED_CAR = 2.0
_SHIFTED_ANY_LATE = -1.5


def _mix(pair: tuple[list[float], list[float]], drift: float) -> np.ndarray:
    """Interpolate a category distribution between no drift and full drift."""
    p = (1 - drift) * np.asarray(pair[0]) + drift * np.asarray(pair[1])
    return p / p.sum()


def _shifted_logit(income: np.ndarray, purpose: np.ndarray, late: np.ndarray) -> np.ndarray:
    """The logit of default under the concept-shifted rule (`concept=1`)."""
    threshold, weight = _SHIFTED_LOW_INCOME
    return (
        _SHIFTED_INTERCEPT
        + weight * (income < threshold)
        + _SHIFTED_CAR * (purpose == "car")
        + _SHIFTED_ANY_LATE * (late > 0)
    )


def generate(
    n_rows: int = 20_000, seed: int = 42, drift: float = 0.0, concept: float = 0.0
) -> pd.DataFrame:
    """Draw a synthetic credit-risk table (deterministic for a given seed).

    Args:
        n_rows: number of rows.
        seed: random seed; the same (n_rows, seed, drift, concept) always gives the same table.
        drift: 0 for the training distribution, up to 1 for a strongly shifted population
            (lower incomes, higher utilisation and more late payments, more renters and more
            small-business and medical loans). Values in between shift proportionally.
        concept: 0 for today's rule relating inputs to default, up to 1 for a new rule
            (logit = -2 + 3·[income < 45,000] + 2·[loan_purpose = car] - 1.5·[any late
            payment in 12 months]); values in between mix the two logits. The input columns do
            not depend on it: for the same (n_rows, seed, drift) only `default` changes.

    Returns:
        A DataFrame with 13 input columns and the 0/1 target column `default`.

    Raises:
        ValueError: if `n_rows` < 1 or `drift` or `concept` is outside [0, 1].
    """
    if n_rows < 1:
        raise ValueError(f"n_rows must be at least 1, got {n_rows}")
    if not 0.0 <= drift <= 1.0:
        raise ValueError(f"drift must be between 0 and 1, got {drift}")
    if not 0.0 <= concept <= 1.0:
        raise ValueError(f"concept must be between 0 and 1, got {concept}")
    rng = np.random.default_rng(seed)
    n = n_rows

    age = np.clip(rng.normal(42 - 4 * drift, 12, n), 18, 80).round().astype(np.int64)
    employment_type = rng.choice(EMPLOYMENT_TYPE, size=n, p=_mix(_EMPLOYMENT_P, drift))
    max_years = np.maximum(age - 18, 0)
    employment_years = np.minimum(rng.gamma(2.0, 3.5 * (1 - 0.3 * drift), n), max_years)
    employment_years = np.where(employment_type == "unemployed", 0.0, employment_years)
    employment_years = employment_years.round(1)
    credit_history_years = np.minimum(rng.gamma(3.0, 3.0, n), max_years).round(1)

    log_income = (
        np.log(52_000)
        + 0.012 * (age - 42)
        + 0.02 * np.minimum(employment_years, 20)
        - 0.45 * (employment_type == "unemployed")
        - np.log1p(0.35 * drift)
        + rng.normal(0, 0.45, n)
    )
    income = np.clip(np.exp(log_income), 8_000, 600_000).round(-2)
    home_ownership = rng.choice(HOME_OWNERSHIP, size=n, p=_mix(_HOME_P, drift))
    loan_purpose = rng.choice(LOAN_PURPOSE, size=n, p=_mix(_PURPOSE_P, drift))
    loan_amount = np.clip(income * rng.lognormal(np.log(0.25), 0.5, n), 1_000, 250_000).round(-2)
    loan_term_months = rng.choice([12, 24, 36, 48, 60], size=n, p=[0.10, 0.20, 0.35, 0.15, 0.20])

    credit_utilization = rng.beta(2.0 + 2.0 * drift, 4.5 - 1.5 * drift, n).round(3)
    debt_to_income = np.clip(
        rng.beta(2.2, 6.0, n) + 0.15 * drift + 0.08 * (loan_amount / income), 0, 1.5
    ).round(3)
    late_rate = 0.15 + 1.4 * credit_utilization**2 + 0.4 * drift
    num_late_payments_12m = rng.poisson(late_rate * (1 + drift)).astype(np.int64)
    num_open_accounts = (1 + rng.poisson(4 + 3 * credit_utilization, n)).astype(np.int64)

    risk = (
        0.45 * np.minimum(num_late_payments_12m, 6)
        + 2.2 * (credit_utilization - 0.3)
        + 2.0 * (debt_to_income - 0.3)
        + 0.9 * np.minimum(loan_amount / income, 2.0)
        - 0.45 * np.log(income / 52_000)
        - 0.015 * (age - 42)
        - 0.03 * np.minimum(employment_years, 15)
        - 0.03 * np.minimum(credit_history_years, 20)
        + 0.006 * (loan_term_months - 36)
        + pd.Series(loan_purpose).map(_PURPOSE_RISK).to_numpy()
        + pd.Series(home_ownership).map(_HOME_RISK).to_numpy()
        + pd.Series(employment_type).map(_EMPLOYMENT_RISK).to_numpy()
    )
    logit = _INTERCEPT + _RISK_SCALE * risk
    if concept > 0:
        logit = (1 - concept) * logit + concept * _shifted_logit(
            income, loan_purpose, num_late_payments_12m
        )
    default = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int64)

    return pd.DataFrame(
        {
            "age": age,
            "income": income,
            "employment_type": employment_type,
            "employment_years": employment_years,
            "home_ownership": home_ownership,
            "loan_purpose": loan_purpose,
            "loan_amount": loan_amount,
            "loan_term_months": loan_term_months.astype(np.int64),
            "credit_utilization": credit_utilization,
            "debt_to_income": debt_to_income,
            "num_late_payments_12m": num_late_payments_12m,
            "num_open_accounts": num_open_accounts,
            "credit_history_years": credit_history_years,
            TARGET: default,
        }
    )
