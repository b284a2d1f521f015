"""Shipped model weights (installed as the package data ``bdx.weights``); provenance in manifest.json."""
