"""Shared network building blocks and training helpers for the torch methods."""
