"""Backoff: exponential, capped, jittered within bounds, whatever the random source does."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.outbox import RetryPolicy, backoff_delay


@st.composite
def policies(draw: st.DrawFn) -> RetryPolicy:
    base = draw(st.floats(min_value=0.0, max_value=10_000.0))
    return RetryPolicy(
        max_attempts=draw(st.integers(min_value=1, max_value=50)),
        base_delay=base,
        max_delay=draw(st.floats(min_value=base, max_value=1e6)),
        jitter=draw(st.floats(min_value=0.0, max_value=0.99)),
    )


@settings(max_examples=300)
@given(
    attempt=st.integers(min_value=-5, max_value=10_000),
    policy=policies(),
    draw=st.floats(min_value=0.0, max_value=1.0),
)
def test_delay_stays_within_the_jitter_band_and_the_cap(
    attempt: int, policy: RetryPolicy, draw: float
) -> None:
    delay = backoff_delay(attempt, policy, lambda: draw)
    nominal = min(policy.max_delay, policy.base_delay * 2.0 ** min(max(attempt, 1) - 1, 64))
    assert 0.0 <= delay <= policy.max_delay
    assert delay >= nominal * (1 - policy.jitter) - 1e-9 * max(nominal, 1.0)
    assert delay <= nominal * (1 + policy.jitter) + 1e-9 * max(nominal, 1.0)


@settings(max_examples=100)
@given(policy=policies(), attempts=st.lists(st.integers(1, 200), min_size=2, max_size=10))
def test_without_jitter_the_delay_never_shrinks_as_attempts_grow(
    policy: RetryPolicy, attempts: list[int]
) -> None:
    steady = RetryPolicy(
        max_attempts=policy.max_attempts,
        base_delay=policy.base_delay,
        max_delay=policy.max_delay,
        jitter=0.0,
    )
    delays = [backoff_delay(a, steady, lambda: 0.5) for a in sorted(attempts)]
    assert delays == sorted(delays)


@settings(max_examples=100)
@given(draw=st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.just(math.nan)))
def test_a_broken_random_source_cannot_escape_the_bounds(draw: float) -> None:
    policy = RetryPolicy(base_delay=30.0, max_delay=3600.0, jitter=0.2)
    delay = backoff_delay(3, policy, lambda: draw)
    assert 120.0 * 0.8 <= delay <= 120.0 * 1.2


def test_the_default_schedule_doubles_from_thirty_seconds_to_an_hour() -> None:
    policy = RetryPolicy(jitter=0.0)
    assert [backoff_delay(a, policy, lambda: 0.5) for a in range(1, 10)] == [
        30.0,
        60.0,
        120.0,
        240.0,
        480.0,
        960.0,
        1920.0,
        3600.0,
        3600.0,
    ]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_attempts": 0},
        {"base_delay": -1.0},
        {"base_delay": 10.0, "max_delay": 5.0},
        {"jitter": 1.0},
        {"jitter": -0.1},
    ],
)
def test_nonsense_policies_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - the message is the field's rule
        RetryPolicy(**kwargs)  # type: ignore[arg-type]
