"""The Temporal side: names, wire types, invoke workflow, creator, status activity, workers, server.

Kept import-light: workflow modules below are re-imported by the sandbox.
"""
