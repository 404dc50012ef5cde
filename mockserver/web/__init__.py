"""The ASGI door: the app, wire rendering, the admin guard, the admin API and its OpenAPI
document, and the web inspector (with its static files).

Imports the layers below it (`mockserver`, `contract`, `journal`) and starlette.
"""
