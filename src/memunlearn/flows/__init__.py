"""Prefect flows: the DVC pipeline and the experiment grids as flows and deployments, and the Prefect/Dask
runners of the exact-memorization subset models (docs/architecture.md rule 6: the only package that imports
``prefect``). Run ``python -m memunlearn.flows.pipeline`` or ``python -m memunlearn.flows.sweep``.

This file imports nothing: the memorize stage imports ``memorize`` alone, without the DVC flows.
"""
