"""Dataset readers, windowed sampling and demonstration generation."""
