"""Depth vs width: the study's config (`config`, no torch) and its trial (`trial`: MLP regression of the
Eggholder function on the trial's device)."""
