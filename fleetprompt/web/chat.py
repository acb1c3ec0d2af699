"""Chat pages (being written)."""

routes: list = []
