"""Experiment grids: backbone x method x seed cells, run, tracked and summarised.

Kedro-free: the grid takes resolved parameters (a plain dict, as Kedro's config loader
produces from ``conf/``) and sample frames, so the same cells run from a benchmark
script, a notebook or a test.
"""
