"""Experiment drivers: what trains, unlearns and scores many models for one result (docs/architecture.md).

They sit above ``unlearning`` and ``evaluation``; the pure metrics never
import them. Each module is imported by path (this file imports nothing), so
a stage's DVC deps name only the drivers it runs.
"""
