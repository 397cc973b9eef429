"""The bottom layer: torch and transformers only; imports nothing above it."""
