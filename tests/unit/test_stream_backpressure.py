"""RetryInfo for a tenant refused for its concurrent streams grows with its refusals."""

from __future__ import annotations

from gateway.runs import _Backpressure


def test_retry_after_grows_with_refusals_per_allowed_stream() -> None:
    bp = _Backpressure()
    first = bp.retry_after("acme", most=10)
    assert 1.0 <= first <= 1.5  # one refusal: about a second, jittered
    for _ in range(100):
        later = bp.retry_after("acme", most=10)
    assert 10.0 <= later <= 15.0  # 100 refusals within a second for 10 streams: ~10 s
    assert 1.0 <= bp.retry_after("beta", most=10) <= 1.5  # per tenant
    for _ in range(10_000):
        capped = bp.retry_after("acme", most=10)
    assert capped <= 30.0 * 1.5
