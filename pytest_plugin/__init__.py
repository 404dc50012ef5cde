"""The logx-mock pytest plugin (registered as the `logx_mock` pytest11 entry point)."""
