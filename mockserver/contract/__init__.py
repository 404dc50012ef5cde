"""Judging a payload: decoding, validation, the datafile checks, flattening, history.

Pure functions of a payload. Imports only the top of `mockserver` (model, violations) and
never a web framework (starlette, uvicorn).
"""
