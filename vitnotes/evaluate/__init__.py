"""Studies over maps and models: agreement, deletion, sanity, diagnosis, cost."""
