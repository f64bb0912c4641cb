"""The client-side pacing rule (shared/azure/pacing.py) on a fake clock: who may send when, after a 429,
under the rate headers and the Automation quotas. No sleeps: the clock moves only when a test moves it."""

from __future__ import annotations

import math

import pytest

from shared.azure.pacing import CALM_AFTER, Limiter, arm_key, retry_after

SUB = "/subscriptions/6a2b5c1e-0d3f-4e8a-9b7c-1d2e3f4a5b6c"
ACCOUNT = f"{SUB}/resourceGroups/rg/providers/Microsoft.Automation/automationAccounts/aa1"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def admitted(limiter: Limiter, key: str, count: int) -> int:
    """How many of ``count`` requests may go now (each admitted one stays in flight)."""
    return sum(1 for _ in range(count) if limiter.try_acquire(key) == 0.0)


def test_an_untouched_gate_lets_everything_through(clock):
    limiter = Limiter(clock=clock)
    assert admitted(limiter, "graph", 100) == 100


def test_a_429_holds_every_request_of_the_gate_until_retry_after(clock):
    limiter = Limiter(clock=clock)
    assert admitted(limiter, "graph", 10) == 10
    limiter.release("graph", 429, {"Retry-After": "3"})
    # Nobody else goes for the 3 seconds, not only the request that was refused.
    assert limiter.try_acquire("graph") == pytest.approx(3.0)
    clock.now += 2.5
    assert limiter.try_acquire("graph") == pytest.approx(0.5)
    # Other gates are not held.
    assert limiter.try_acquire("arm:sub:writes") == 0.0


def test_after_the_hold_one_goes_first_and_more_follow_as_answers_succeed(clock):
    limiter = Limiter(clock=clock)
    admitted(limiter, "graph", 20)
    for _ in range(20):
        limiter.release("graph", 200, {})
    admitted(limiter, "graph", 1)
    limiter.release("graph", 429, {"retry-after": "1"})
    clock.now += 1
    assert admitted(limiter, "graph", 10) == 1  # no herd: one probe
    assert limiter.try_acquire("graph") == math.inf  # the rest wait for its answer
    limiter.release("graph", 200, {})
    assert admitted(limiter, "graph", 10) == 2  # one more in flight per success


def test_after_a_hold_it_sends_half_of_what_got_through_before_then_one_at_a_time(clock):
    limiter = Limiter(clock=clock)
    # 8 got through, then the 9th was refused.
    assert admitted(limiter, "graph", 9) == 9
    for _ in range(8):
        limiter.release("graph", 200, {})
    limiter.release("graph", 429, {"Retry-After": "1"})
    clock.now += 1
    sent = 0
    for _ in range(20):  # each request answered before the next one asks
        if limiter.try_acquire("graph") == 0.0:
            sent += 1
            limiter.release("graph", 200, {})
    assert sent == 20
    # 4 (half of 8) went as the window grew; from then on one at a time.
    assert admitted(limiter, "graph", 5) == 1


def test_a_gate_that_was_calm_for_a_while_opens_again(clock):
    limiter = Limiter(clock=clock)
    admitted(limiter, "graph", 1)
    limiter.release("graph", 429, {"Retry-After": "1"})
    clock.now += CALM_AFTER + 1
    admitted(limiter, "graph", 1)
    limiter.release("graph", 200, {})
    assert admitted(limiter, "graph", 50) == 50


def test_arms_remaining_header_caps_the_requests_in_flight(clock):
    limiter = Limiter(clock=clock)
    key = arm_key("PUT", f"{SUB}/resourceGroups/rg")
    admitted(limiter, key, 1)
    limiter.release(key, 201, {"x-ms-ratelimit-remaining-subscription-writes": "3"})
    assert admitted(limiter, key, 10) == 3


def test_graphs_throttle_percentage_sends_one_at_a_time(clock):
    limiter = Limiter(clock=clock)
    admitted(limiter, "graph", 1)
    limiter.release("graph", 200, {"x-ms-throttle-limit-percentage": "0.9"})
    assert admitted(limiter, "graph", 10) == 1


def test_failures_without_an_answer_free_the_slot_and_change_nothing(clock):
    limiter = Limiter(clock=clock)
    admitted(limiter, "graph", 1)
    limiter.release("graph", None)
    limiter.release("graph", 503, {})
    assert admitted(limiter, "graph", 10) == 10


def test_module_imports_keep_the_accounts_quota_of_5_per_30_seconds(clock):
    limiter = Limiter(clock=clock)
    key = arm_key("PUT", f"{ACCOUNT}/modules/ExchangeOnlineManagement")
    assert key == f"automation-imports:{ACCOUNT.lower()}"
    assert admitted(limiter, key, 8) == 5
    assert limiter.try_acquire(key) == pytest.approx(6.0)  # one token every 6 s
    clock.now += 6
    assert admitted(limiter, key, 3) == 1
    # Another account has its own quota.
    assert admitted(limiter, arm_key("PUT", f"{ACCOUNT}2/modules/X"), 5) == 5


def test_a_throttled_import_empties_the_accounts_bucket(clock):
    limiter = Limiter(clock=clock)
    key = arm_key("PUT", f"{ACCOUNT}/runtimeEnvironments/exomi-7-4/packages/ExchangeOnlineManagement")
    assert key.startswith("automation-imports:")
    admitted(limiter, key, 1)
    limiter.release(key, 429, {"Retry-After": "10"})  # another instance used the quota
    assert limiter.try_acquire(key) == pytest.approx(10.0)  # held for the Retry-After
    clock.now += 10
    # The bucket was emptied at the 429: the 10 s brought back one token (5 per 30 s), not five.
    assert limiter.try_acquire(key) == 0.0
    limiter.release(key, 201, {})
    assert limiter.try_acquire(key) == pytest.approx(2.0)  # the next token in 2 s


@pytest.mark.parametrize(
    ("method", "path", "key"),
    [
        ("GET", f"{ACCOUNT}", "arm:6a2b5c1e-0d3f-4e8a-9b7c-1d2e3f4a5b6c:reads"),
        ("DELETE", f"{ACCOUNT}/runbooks/r", "arm:6a2b5c1e-0d3f-4e8a-9b7c-1d2e3f4a5b6c:deletes"),
        ("POST", f"{SUB}/providers/x", "arm:6a2b5c1e-0d3f-4e8a-9b7c-1d2e3f4a5b6c:writes"),
        ("PUT", f"{ACCOUNT}/jobs/0b1c", f"automation-jobs:{ACCOUNT.lower()}"),
        ("GET", f"{ACCOUNT}/jobs/0b1c", "arm:6a2b5c1e-0d3f-4e8a-9b7c-1d2e3f4a5b6c:reads"),
        ("GET", "/providers/Microsoft.Authorization/roleDefinitions", "arm:tenant:reads"),
    ],
)
def test_each_arm_request_has_the_gate_of_its_bucket(method, path, key):
    assert arm_key(method, path) == key


def test_retry_after_reads_seconds_and_http_dates():
    assert retry_after({"Retry-After": "7"}) == 7.0
    assert retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0  # in the past
    assert retry_after({"Retry-After": "soon"}) is None
    assert retry_after({}) is None
