"""Parquet/Arrow data lake: data sets on disk, content hashes, panels for the kernel."""
