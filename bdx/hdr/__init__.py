"""Single-image HDR reconstruction (LDR to scene-linear EXR) and bracket merging."""
