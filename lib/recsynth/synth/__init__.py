"""Synthetic behaviour data: the data transformer (and, next, the GAN, sampling and gates)."""
