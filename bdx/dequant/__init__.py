"""Bit-depth dequantizers: estimate the high-precision values inside each quantization bin."""
