"""Audit pages (being written)."""

routes: list = []
