"""Data sets: the image data-set registry and loaders (`vision`, `digits`), and synthesized data (`eggholder`)."""
