"""The service kernel: what the inference service (`app/`) and the control plane (`control/`)
share, with light imports only (no MLflow, SQLAlchemy, pandas or FastAPI): API keys, the error
base, request ids and bodies, and the log set-up."""
