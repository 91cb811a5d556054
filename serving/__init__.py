"""serving: the production model behind a fast Flask app that follows promotions.

In: the MLflow registry (`models:/<name>` at the `production` alias / Production stage) and HTTP
requests. Out: predictions (MLflow scoring protocol, `/predict`, Open Inference Protocol v2),
the prediction log (Contract 2) and Prometheus metrics (Contract 3). Never imports `pipelines`.
Entry points: `serving.app.create_app`, `mlcycle serve`, `python -m serving`.
"""
