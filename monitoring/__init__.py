"""monitoring: drift detection on live inputs, drift metrics for Prometheus, traffic simulation.

In: the prediction log (Contract 2 in docs/architecture.md), the registry and the reference
sample logged with each model version's run. Out: Evidently HTML reports and JSON summaries in
the reports folder, an MLflow run per drift check in experiment `monitoring`, the Prometheus
text file `drift.prom`, and an exit code (0 no drift, 1 drift, 2 could not judge).

Modules: `settings` (env vars), `windows` (which rows), `logreader` (reading the log),
`reference` (model version, reference sample, column types), `drift` (the Evidently report and
its summary), `reports` (files, index, drift.prom, MLflow), `job` (one check end to end),
`schedule` (`--every`), `simulate` (synthetic CSVs and traffic), `synthlog` (writes log rows
for tests and benchmarks), `cli` (typer commands). Live performance: `labelled` (served rows
with their labels), `performance` (metrics per version and window, the CBPE estimate),
`perfreport` (JSON, HTML, performance.prom, MLflow), `perfjob` (one check end to end).
Importing the package does no I/O and imports no heavy library.
"""
