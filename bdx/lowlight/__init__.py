"""Low-light enhancement with pixel-wise curves (Zero-DCE family), done in high bit depth."""
