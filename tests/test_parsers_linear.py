"""Every parser of the fault and filter syntax, and of the headers an attacker controls, runs
in linear time: Hypothesis feeds each one long "pumped" inputs (a prefix, a fragment repeated
thousands of times, a suffix: the shape of every regex blow-up) and each call must finish
within a CPU-time bound far above what linear work costs (so a loaded machine cannot flake
it) and far below what the quadratic duration pattern took (19.6 s for 64,000 spaces)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from mockserver import EndpointConfig, MemoryJournal, TrustedProxies
from mockserver.anonymize import ClientAddress, scrub_headers
from mockserver.contract.decoding import loads
from mockserver.endpoint import is_strict
from mockserver.faults import FaultError, FaultRule, parse_spec
from mockserver.timing import Delay, DurationError, parse_duration
from mockserver.web.guard import GuardConfig, cookie_value, token_digest, token_presented

CPU_SECONDS = 1.0
"""Per call. Linear parsing of 64 KB takes milliseconds; the old duration regex took 1.4 s
on 16,000 spaces and 19.6 s on 64,000."""

ALPHABET = " \t0123456789.,:;=-+_msx\\\"'[]%eE/abcdefghijklmnopqrstuvwxyz"
fragments = st.text(ALPHABET, max_size=8)
pumped = st.builds(
    lambda prefix, pump, times, suffix: prefix + pump * times + suffix,
    fragments,
    st.text(ALPHABET, min_size=1, max_size=4),
    st.integers(1_000, 16_000),
    fragments,
)
FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
REGEX_ATTACK = "1" + " " * 64_000 + "x"


def within_bound(parse: Callable[[str], Any], text: str, *errors: type[Exception]) -> None:
    """Call `parse(text)` (it may refuse the text with one of `errors`) and check its CPU time."""
    started = time.thread_time()
    with contextlib.suppress(errors):
        parse(text)
    spent = time.thread_time() - started
    assert spent < CPU_SECONDS, f"{spent:.2f} s of CPU for {len(text):,} characters"


@FUZZ
@given(pumped)
@example(REGEX_ATTACK)
@example("1" + " " * 64_000 + "ms x")
def test_durations_parse_in_linear_time(text: str) -> None:
    within_bound(parse_duration, text, DurationError)


@FUZZ
@given(pumped)
@example(REGEX_ATTACK)
@example("lognormal:" + "1" * 60_000 + ":" + " " * 2_000)
@example("1" + " " * 32_000 + "-" + " " * 32_000 + "x")
def test_delays_parse_in_linear_time(text: str) -> None:
    within_bound(Delay.parse, text, DurationError)


@FUZZ
@given(pumped)
@example("delay=" + REGEX_ATTACK)
@example("hang,hang_max=" + REGEX_ATTACK)
@example("sequence=" + "500:" * 16_000)
@example("," * 64_000)
def test_fault_specs_parse_in_linear_time(text: str) -> None:
    within_bound(parse_spec, text, FaultError)


@FUZZ
@given(st.sampled_from(["delay", "hang_max", "dribble_interval", "status", "seed", "rate"]), pumped)
@example("delay", REGEX_ATTACK)
def test_fault_rule_values_parse_in_linear_time(option: str, text: str) -> None:
    within_bound(lambda t: FaultRule.from_dict({option: t}), text, FaultError)


@FUZZ
@given(pumped)
@example("x" * 64_000)
def test_unknown_fault_options_are_named_in_linear_time(name: str) -> None:
    within_bound(lambda t: FaultRule.from_dict({t: 1}), name, FaultError)


@FUZZ
@given(pumped)
@example('logx_admin="' + "\\\\" * 32_000 + '"')
@example('a="' + "\\0" * 32_000 + '"')
def test_cookies_parse_in_linear_time(header: str) -> None:
    within_bound(lambda h: cookie_value(h, "logx_admin"), header)
    headers = {"cookie": header, "authorization": "Bearer " + header}
    within_bound(lambda _: token_presented(headers, token_digest("s3cret-token-for-tests")), header)


@FUZZ
@given(pumped)
@example("[" * 64_000)
@example("[::1" + ":" * 64_000)
def test_host_headers_parse_in_linear_time(host: str) -> None:
    within_bound(GuardConfig().host_allowed, host)


@FUZZ
@given(pumped)
@example("1.2.3.4," * 8_000)
@example("for=" + "1" * 64_000)
def test_forwarding_headers_parse_in_linear_time(value: str) -> None:
    trusted = EndpointConfig(trusted_proxies=TrustedProxies.parse(["0.0.0.0/0"])).trusted_proxies
    within_bound(
        lambda v: ClientAddress.resolve("10.0.0.1", v, trusted, anonymize=True),
        value,
    )
    names = ("x-forwarded-for", "forwarded", "via", "cf-connecting-ip")
    within_bound(lambda v: scrub_headers([(name, v) for name in names]), value)


@FUZZ
@given(pumped)
def test_strict_headers_parse_in_linear_time(value: str) -> None:
    within_bound(is_strict, value)


@FUZZ
@given(pumped)
@example("1" * 4_000 + "e400")
@example("1." + "0" * 64_000)
@example("[" * 64_000)
def test_json_numbers_decode_in_linear_time(text: str) -> None:
    within_bound(loads, text, ValueError, RecursionError)


@pytest.fixture(scope="module")
def journal() -> MemoryJournal:
    from helpers import impression

    from mockserver import Endpoint
    from mockserver.model import CoreRequest

    journal = MemoryJournal()
    endpoint = Endpoint(journal)
    for visitor in ("a", "b", "c"):
        body = __import__("json").dumps(impression(visitor)).encode()
        endpoint.handle(CoreRequest("POST", "/v1/events", body))
    return journal


@FUZZ
@given(st.sampled_from(["visitor_id", "key", "uuid", "client_name"]), pumped)
def test_event_filters_match_in_linear_time(journal: MemoryJournal, name: str, value: str) -> None:
    within_bound(lambda v: journal.events(**{name: v}), value)
