"""One runnable script per study (`python sweeps/<study>.py`) and the shared runner they call."""
