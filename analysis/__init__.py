"""MLflow records -> pandas -> matplotlib figures and tables (`python -m analysis STUDY`)."""
