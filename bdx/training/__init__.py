"""Training loops for the bdx models."""
