"""RetryInfo for a tenant refused for its concurrent streams grows with its refusals."""

from __future__ import annotations

from gateway.runs import _Backpressure


def test_retry_after_grows_with_the_tenants_refusals() -> None:
    bp = _Backpressure()
    first = bp.retry_after("acme", most=10)
    assert 1.0 <= first <= 1.5  # one refusal: about a second, jittered
    for _ in range(50):
        later = bp.retry_after("acme", most=10)
    assert 10.0 <= later <= 15.0  # 50 refusals within a second, 5 a second allowed: ~10 s
    big = _Backpressure()
    for _ in range(101):
        wide = big.retry_after("acme", most=200)
    assert 10.0 <= wide <= 15.0  # a limit of 200 streams: 10 refusals a second allowed
    assert 1.0 <= bp.retry_after("beta", most=10) <= 1.5  # per tenant
    for _ in range(10_000):
        capped = bp.retry_after("acme", most=10)
    assert capped <= 30.0 * 1.5
