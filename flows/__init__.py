"""Prefect flows: the DVC pipeline (``pipeline.py``) and the experiment grids (``grids.py``) as flows and
deployments, and what both share (``tasks.py``). They drive the checkout they run in (DVC, params.yaml), so
they live beside dvc.yaml, not in the library; they import the installed ``memunlearn`` package.

Run from the project root: ``python -m flows.pipeline``, ``python -m flows.grids`` (``-m`` puts the root on
``sys.path``; a deployment loads ``flows/pipeline.py`` by path from the root, prefect.yaml).
"""
