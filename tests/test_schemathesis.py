"""Generated requests for every operation of /api/schema never get a 5xx (SPEC §6:
"No request, however malformed, gets a 500").

The schema is loaded from a running daphne (open mode, so that every operation
is reachable without a key); each operation gets a bounded, derandomized number
of schema-conforming and schema-violating examples: about 400 requests in
`make test`, and at least 5,000 in the nightly size (`make fuzz`, `-m fuzz`).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from bridge_project.embedded_redis import EmbeddedRedis
from tests.support.daphne import DaphneProcess, running_daphnes
from tests.support.logs import assert_no_crash

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

REQUEST_TIMEOUT = 5.0


@dataclass(frozen=True)
class Size:
    examples_per_operation_and_mode: int
    # Generation stops for the remaining operations once this much time is spent.
    time_budget_seconds: float
    # Fewer requests than this fails the run: a nightly run that quietly sent
    # a tenth of its requests would be a pass that tested nothing.
    minimum_requests: int


SMALL = Size(25, 40.0, 0)
# 8 operations x 2 modes (GET /health has only positive examples) x 330 is
# 5,280 examples; some are headers no client can send, never sent.
NIGHTLY = Size(330, 1500.0, 5000)


@pytest.fixture(scope="module")
def bridge(
    redis_server: EmbeddedRedis, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DaphneProcess]:
    workdir: Path = tmp_path_factory.mktemp("schemathesis")
    # Namespaces the generated topic names hit (shrunk examples look like
    # "a:0"), so the topic endpoints answer more than 400 and 404.
    namespaces = '{"a": {}, "b": {"presence": false}, "c": {"history_size": 0}}'
    with running_daphnes(
        redis_server.url, workdir, 1, BRIDGE_TOPIC_NAMESPACES=namespaces
    ) as (process,):
        yield process


# The schema types each field of a push but cannot say "exactly one of
# user_id, user_ids, broadcast" and "exactly one of data, message" (SPEC §6),
# so almost no schema-conforming push is a valid one and the delivery path
# would go untested. Positive pushes are completed into valid ones, keeping
# every generated value (data, message, event, sender, idempotency_key).
PUSH_OPERATIONS = ("POST /sse/push", "POST /sse/push/batch")
TARGETS = ("user_id", "user_ids", "broadcast")
PAYLOADS = ("data", "message")


def spec_conforming_push(case: schemathesis.Case) -> schemathesis.Case:
    body = case.body
    if not isinstance(body, dict):
        return case  # no body at all: 415, as SPEC says
    if "messages" in body or case.operation.label.endswith("/batch"):
        items = body.get("messages") or [{}]
        case.body = {**body, "messages": [_one_push(item) for item in items]}
    else:
        case.body = _one_push(body)
    return case


def _one_push(body: object) -> dict:
    if not isinstance(body, dict):
        body = {}
    push = {key: value for key, value in body.items() if key not in TARGETS}
    target = next((key for key in TARGETS if key in body), None)
    if target == "user_ids":
        push["user_ids"] = list(dict.fromkeys(body["user_ids"]))
    elif target == "broadcast" and body["broadcast"] is True:
        push["broadcast"] = True
    else:
        push["user_id"] = body.get("user_id", "fuzz-target")
    payload = next((key for key in PAYLOADS if key in body), None)
    for key in PAYLOADS:
        if key != payload:
            push.pop(key, None)
    if payload is None:
        push["message"] = "fuzz"
    return push


class Run:
    """Requests sent per operation and mode, and every 5xx seen, within one budget."""

    def __init__(self, base_url: str, size: Size) -> None:
        self.base_url = base_url
        self.size = size
        self.started = time.monotonic()
        self.session = requests.Session()
        self.sent: dict[str, int] = {}
        self.server_errors: list[str] = []
        self.statuses: dict[str, Counter] = {}

    def examples(
        self, operation: schemathesis.APIOperation, mode: GenerationMode
    ) -> None:
        key = f"{operation.label} [{mode.value}]"
        self.sent[key] = 0
        self.statuses[key] = Counter()
        strategy = operation.as_strategy(generation_mode=mode)
        if mode is GenerationMode.POSITIVE and operation.label in PUSH_OPERATIONS:
            strategy = strategy.map(spec_conforming_push)

        @settings(
            max_examples=self.size.examples_per_operation_and_mode,
            derandomize=True,
            database=None,
            deadline=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=strategy)
        def send(case) -> None:
            if time.monotonic() - self.started > self.size.time_budget_seconds:
                return
            try:
                response = case.call(
                    base_url=self.base_url,
                    session=self.session,
                    timeout=REQUEST_TIMEOUT,
                )
            except (ValueError, requests.exceptions.InvalidHeader):
                return  # a header no HTTP client can send: nothing reached us
            self.sent[key] += 1
            self.statuses[key][response.status_code] += 1
            if response.status_code >= 500:
                self.server_errors.append(
                    f"{response.status_code} for {case.as_curl_command()}"
                    f"\n  -> {response.text[:300]}"
                )

        try:
            send()
        except Unsatisfiable:
            # Nothing in this operation can be made invalid (GET /health has no
            # parameters): there is no negative example to send.
            assert mode is GenerationMode.NEGATIVE, key
            del self.sent[key]


@pytest.mark.parametrize(
    "size",
    [
        pytest.param(SMALL, id="small"),
        pytest.param(
            NIGHTLY, id="5000", marks=[pytest.mark.fuzz, pytest.mark.timeout(1800)]
        ),
    ],
)
def test_no_generated_request_gets_a_server_error(
    bridge: DaphneProcess, size: Size
) -> None:
    schema = schemathesis.openapi.from_url(
        f"{bridge.http}/api/schema?format=json", timeout=REQUEST_TIMEOUT
    )
    operations = [result.ok() for result in schema.get_all_operations()]
    labels = sorted(operation.label for operation in operations)
    assert "POST /sse/push" in labels and "POST /api/tokens" in labels, labels

    run = Run(bridge.http, size)
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            run.examples(operation, mode)

    total = sum(run.sent.values())
    elapsed = time.monotonic() - run.started
    print(
        f"\nschemathesis: {total} generated requests over {len(operations)} "
        f"operations in {elapsed:.1f}s, {len(run.server_errors)} 5xx; "
        f"statuses: {run.statuses}"
    )
    assert not run.server_errors, "\n".join(run.server_errors[:20])
    assert total >= size.minimum_requests, (total, run.sent)
    for label in labels:
        assert run.sent[f"{label} [positive]"] > 0, run.sent
    for label in PUSH_OPERATIONS:
        assert run.statuses[f"{label} [positive]"][202] > 0, run.statuses
    assert_no_crash(bridge.log())
