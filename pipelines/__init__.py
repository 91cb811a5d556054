"""pipelines: the training half of mlcycle, one module per step.

`data` (synthetic credit-risk table or a user's CSV) → `preprocess` (split + preprocessing
spec) → `train` (Keras network) and `baseline` (scikit-learn) → `evaluate` (metrics) →
`register` (registry version, Staging, champion/challenger gate); `pipeline` chains them in one
MLflow run and `cli` exposes it as `mlcycle train` / `python -m pipelines train` (the MLproject's
`main` entry point). `finetune` continues a registered version on new labelled rows and gates the
result (`python -m pipelines finetune`, entry point `finetune`). `model_code` is the
self-contained pyfunc logged with each model.
Importing the package does no I/O and loads neither TensorFlow nor MLflow.
"""
