"""Admin operations on the datafiles batches are checked against: list, add, clear."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from ...contract.datafile import VERSIONS, Datafile, DatafileError, Datafiles
from ...endpoint import Endpoint
from ..guard import ADMIN_PREFIX
from ..openapi import BAD_QUERY, STR, array, json_content, obj
from .http import JSONResponse, Operations, bounded_body, off_loop, problem_response

__all__ = ["MAX_DATAFILE_BYTES", "OPERATIONS", "SCHEMAS"]

MAX_DATAFILE_BYTES = 32 * 1024 * 1024
"""The largest datafile `POST /_mock/datafiles` reads (real ones are rarely over 1 MB)."""
OPERATIONS = Operations()


OPERATIONS.listing(
    "/datafiles",
    "datafiles",
    "Datafile",
    "The datafiles batches are checked against",
    lambda endpoint: [f.summary() for f in endpoint.config.datafiles.files],
)


@OPERATIONS.add(
    "POST",
    "/datafiles",
    {
        "summary": "Check batches against one more datafile (one of the same "
        "project and revision is replaced)",
        "requestBody": {"required": True, "content": json_content("DatafileUpload")},
        "responses": {
            "201": {"description": "Loaded.", "content": json_content("Datafile")},
            "400": BAD_QUERY,
            "413": BAD_QUERY,
        },
    },
)
async def add_datafile(endpoint: Endpoint, request: Request) -> Response:
    body = await bounded_body(request, MAX_DATAFILE_BYTES)
    if body is None:
        return problem_response(413, f"a datafile over {MAX_DATAFILE_BYTES:,} bytes is not read")
    try:
        datafile = Datafile.from_json(body, source=f"POST {ADMIN_PREFIX}/datafiles")
    except DatafileError as exc:
        return problem_response(400, str(exc))
    await off_loop(endpoint.change_datafiles, lambda current: current.added(datafile))
    return JSONResponse(datafile.summary(), status_code=201)


OPERATIONS.clearing(
    "/datafiles", "Stop checking against datafiles", lambda e: e.use_datafiles(Datafiles())
)


_KEYED = obj({"id": STR, "key": STR}, ["id", "key"])
SCHEMAS: dict[str, Any] = {
    "DatafileUpload": {
        **obj(
            {
                "version": {"enum": list(VERSIONS)},
                "accountId": STR,
                "projectId": STR,
                "revision": STR,
                "anonymizeIP": {"type": ["boolean", "null"]},
                "botFiltering": {"type": ["boolean", "null"]},
                "events": {"type": "array", "items": _KEYED},
                "attributes": {"type": "array", "items": _KEYED},
                "experiments": array("DatafileExperiment"),
                "groups": {
                    "type": "array",
                    "items": obj({"experiments": array("DatafileExperiment")}),
                },
                "rollouts": {
                    "type": "array",
                    "items": obj({"id": STR, "experiments": array("DatafileExperiment")}, ["id"]),
                },
                "holdouts": array("DatafileHoldout"),
                "localHoldouts": array("DatafileHoldout"),
                "featureFlags": {
                    "type": "array",
                    "items": obj(
                        {"key": STR, "experimentIds": {"type": "array", "items": STR}}, ["key"]
                    ),
                },
            },
            ["version", "accountId", "projectId", "revision"],
        ),
        "description": "An Optimizely datafile (only the parts logx-mock checks against are "
        "described; the rest is ignored).",
    },
    "DatafileExperiment": obj(
        {
            "id": STR,
            "key": STR,
            "layerId": STR,
            "variations": {"type": "array", "items": _KEYED},
        },
        ["id", "key", "layerId"],
    ),
    "DatafileHoldout": obj(
        {
            "id": STR,
            "key": STR,
            "layerId": STR,
            "variations": {"type": "array", "items": _KEYED},
        },
        ["id", "key"],
    ),
    "Datafile": obj(
        {
            "source": STR,
            "account_id": STR,
            "project_id": STR,
            "revision": STR,
            "anonymize_ip": {"type": ["boolean", "null"]},
            "bot_filtering": {"type": ["boolean", "null"]},
            "experiments": {"type": "integer"},
            "flags": {"type": "integer"},
            "events": {"type": "integer"},
            "attributes": {"type": "integer"},
            "sdk_key": {"type": ["string", "null"]},
        },
        ["source", "account_id", "project_id", "revision"],
    ),
}
