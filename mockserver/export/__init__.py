"""The journal goes out: the NDJSON and HAR exports, and the CI check with its JUnit report.

Imports the layers below it (`mockserver`, `contract`, `journal`); never a web framework.
`web` (the admin export) and `serve` (the commands) build on it.
"""
