"""The OEE flow: per asset and minute, the ISO 22400-2 time elements and counts (see .flow)."""
