"""Changing a model to see what changes: head ablation, weight randomisation."""
