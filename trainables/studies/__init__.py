"""What belongs to one study: its own trial loop (depth_width, dying_relu, transfer, ...) or the part of it the
shared loops do not cover (weight_init's layer statistics, the optimizers study's learning-rate search)."""
