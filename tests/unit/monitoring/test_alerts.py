"""Alert rules: promtool unit tests (fire and not fire per alert) and the metric contract."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

MONITORING = Path(__file__).resolve().parents[3] / "monitoring"
CONTRACT_METRICS = {
    "mlcycle_drift_detected",
    "mlcycle_drift_share",
    "mlcycle_drift_last_run_timestamp_seconds",
    "mlcycle_requests_total",
    "mlcycle_request_duration_seconds_bucket",
    "mlcycle_model_load_failures_total",
    "mlcycle_prediction_log_queue_depth",
    "mlcycle_prediction_log_write_failures_total",
    "mlcycle_live_auc",
    "mlcycle_estimated_auc",
    "mlcycle_validation_auc",
}


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed")
def test_promtool_rule_tests_pass() -> None:
    for args in (["check", "rules", "alerts.yml"], ["test", "rules", "alerts_test.yml"]):
        proc = subprocess.run(
            ["promtool", *args], cwd=MONITORING, capture_output=True, text=True, timeout=120
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr


def test_every_alert_is_tested_firing_and_not_firing() -> None:
    rules = (MONITORING / "alerts.yml").read_text()
    tests = (MONITORING / "alerts_test.yml").read_text()
    alerts = set(re.findall(r"- alert: (\w+)", rules))
    assert len(alerts) >= 6
    for alert in alerts:
        blocks = re.findall(
            rf"alertname: {alert}\n\s+exp_alerts:(.*?)(?=\n\s+- eval_time|\Z)", tests, flags=re.S
        )
        assert any(b.strip().startswith("[]") for b in blocks), f"{alert}: no not-firing case"
        assert any("exp_labels" in b for b in blocks), f"{alert}: no firing case"


def test_rules_use_only_contract_metrics() -> None:
    text = (MONITORING / "alerts.yml").read_text()
    exprs = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    used = set(re.findall(r"\bmlcycle_[a-z_]+", exprs))
    assert used <= CONTRACT_METRICS, used - CONTRACT_METRICS
    assert used >= CONTRACT_METRICS
