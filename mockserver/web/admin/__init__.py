"""The admin API under `/_mock`: small named handlers, each with its OpenAPI operation beside
it, grouped by what they serve (the journal, results, the fault plan, the datafiles).

`routes.py` puts them together into Starlette routes and the OpenAPI document; `http.py`
holds what the handlers share (JSON answers, problem documents, query parameters).
"""
