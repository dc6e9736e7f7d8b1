"""Each study's figures and summary, one module per study (named as in sweeps/registry.py)."""
