"""Diffusion building blocks for DisDiff: DDPM schedule, UNet + sub-gradient decoder,
first stages (identity, average-pool, KL-f4 autoencoder) and the cached pre-training of
phases 1 and 2. Not a method module itself, so discovery does not import it."""
