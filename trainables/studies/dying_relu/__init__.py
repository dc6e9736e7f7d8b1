"""Dying ReLU: the study's config (`config`, no torch) and its trial (`trial`: a fused population of deep, narrow
nets on the trial's device)."""
