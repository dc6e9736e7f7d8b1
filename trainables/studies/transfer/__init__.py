"""Transfer learning: the study's config (`config`, no torch at its top) and its trial (`trial`: a pretrained ResNet
fine-tuned or as a feature extractor, on the trial's device)."""
