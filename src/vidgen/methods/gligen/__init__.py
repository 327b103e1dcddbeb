"""GLIGEN (Li et al. 2023): gated self-attention grounding on sd1.5, ModelScope and Wan2.1 (issue 14)."""
