"""Serving: the threaded and foreground server, `serve --workers`, datafile watching, the local
CA (`logx-mock ca`, `serve --tls`), the forward proxy (`serve --proxy-port`), the CLI.

The top layer: may import every other part of `mockserver`.
"""
