"""Models: the registry (`registry.build_model`), the architectures it builds, pretrained weights, and counts of
parameters and multiply-accumulates (`stats`, `paleo`)."""
