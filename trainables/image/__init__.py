"""The image-classification trial that every image study runs: its config and its loop."""
