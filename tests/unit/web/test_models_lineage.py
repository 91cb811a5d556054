"""The Models page's rows (serving.web.models): lineage and size of compressed versions."""

from __future__ import annotations

from types import SimpleNamespace

from serving.web.models import version_rows


class Registry:
    """The few `MlflowClient` calls `version_rows` makes, over fixed versions."""

    def __init__(self, versions):
        self.versions = versions

    def search_model_versions(self, query):
        return self.versions

    def get_registered_model(self, name):
        return SimpleNamespace(aliases={})

    def get_run(self, run_id):
        raise LookupError(run_id)


def _version(number: int, **tags):
    return SimpleNamespace(
        version=number, current_stage="Staging", creation_timestamp=0, run_id="r", tags=tags
    )


def test_rows_show_each_versions_parent_method_and_weight_size():
    client = Registry(
        [
            _version(1, **{"mlcycle.val_auc": "0.8"}),
            _version(
                2,
                **{
                    "mlcycle.parent_version": "1",
                    "mlcycle.compression.method": "int8",
                    "mlcycle.weight_bytes": "3350",
                },
            ),  # fmt: skip
            _version(3, **{"mlcycle.parent_version": "1"}),
        ]
    )
    rows = {r.version: r for r in version_rows(client, "credit-risk", None, "")}
    assert (rows["2"].lineage, rows["2"].size) == ("int8 of v1", "3.4 KB")
    assert rows["3"].lineage == "fine-tuned from v1" and rows["3"].size == ""
    assert rows["1"].lineage == "" and rows["1"].weight_bytes is None
