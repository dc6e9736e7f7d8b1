"""What runs inside a trial: data, models, training loops, and the thin Ray Tune session."""
