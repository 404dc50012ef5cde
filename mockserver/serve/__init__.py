"""Serving: the threaded and foreground server, `serve --workers`, datafile watching, the CLI.

The top layer: may import every other part of `mockserver`.
"""
