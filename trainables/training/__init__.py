"""Training components shared by the studies' loops: image training steps (`classify`), fused populations of
small models (`population`), batched augmentation, optimizers and schedules."""
