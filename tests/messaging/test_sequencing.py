"""delivery.push_batch gives each recipient strictly consecutive seqs (SPEC §3, §5)."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from messaging.models import Message, StreamEntry
from messaging.streams import delivery
from messaging.streams.delivery import PushRequest
from messaging.streams.names import personal_stream

pytestmark = pytest.mark.django_db(transaction=True)


def request(*targets: str, persist: bool = True, data: object = None) -> PushRequest:
    return PushRequest(
        targets=targets, event="message", data=data, sender=None, persist=persist
    )


def seqs_of(receipt: delivery.PushReceipt) -> dict[str, int | None]:
    return {r.user_id: r.seq for r in receipt.recipients}


def stored_seqs(user_id: str) -> list[int]:
    return list(
        StreamEntry.objects.filter(stream=personal_stream(user_id))
        .order_by("seq")
        .values_list("seq", flat=True)
    )


def test_seqs_are_consecutive_per_user_across_pushes():
    receipts = [
        delivery.push(request("alice")),
        delivery.push(request("alice", "bob")),
        delivery.push(request("bob")),
        delivery.push(request("alice")),
    ]
    assert [seqs_of(r) for r in receipts] == [
        {"alice": 1},
        {"alice": 2, "bob": 1},
        {"bob": 2},
        {"alice": 3},
    ]
    assert stored_seqs("alice") == [1, 2, 3]
    assert stored_seqs("bob") == [1, 2]


def test_one_batch_gives_consecutive_seqs_in_request_order():
    receipts = delivery.push_batch(
        [request("alice", data=i) for i in range(5)] + [request("bob", "alice", data=5)]
    )
    assert [seqs_of(r)["alice"] for r in receipts] == [1, 2, 3, 4, 5, 6]
    entries = StreamEntry.objects.filter(stream=personal_stream("alice")).order_by(
        "seq"
    )
    assert [e.message.data for e in entries] == [0, 1, 2, 3, 4, 5]


def test_one_message_is_stored_once_whatever_the_number_of_recipients():
    receipt = delivery.push(request("alice", "bob", "carol", data={"k": 1}))
    assert Message.objects.count() == 1
    assert Message.objects.get().data == {"k": 1}
    assert {
        e.stream for e in StreamEntry.objects.filter(message_id=receipt.message_id)
    } == {"user:alice", "user:bob", "user:carol"}


def test_live_only_pushes_get_no_seq_and_leave_no_gap():
    delivery.push(request("alice"))
    live = delivery.push(request("alice", persist=False))
    after = delivery.push(request("alice"))
    assert seqs_of(live) == {"alice": None}
    assert seqs_of(after) == {"alice": 2}
    assert stored_seqs("alice") == [1, 2]


def test_concurrent_pushes_to_one_user_get_distinct_consecutive_seqs():
    threads_count, pushes_each = 4, 5
    seen: list[int] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    start = threading.Barrier(threads_count)

    def worker() -> None:
        try:
            start.wait(timeout=10)
            for _ in range(pushes_each):
                receipt = delivery.push(request("alice"))
                with lock:
                    seen.append(seqs_of(receipt)["alice"])
        except BaseException as exc:  # reported below, with the thread's traceback
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not any(thread.is_alive() for thread in threads)
    assert errors == []
    total = threads_count * pushes_each
    assert sorted(seen) == list(range(1, total + 1))
    assert stored_seqs("alice") == list(range(1, total + 1))


def test_concurrent_batches_to_overlapping_users_keep_each_stream_consecutive():
    errors: list[BaseException] = []

    def worker(targets: tuple[str, ...]) -> None:
        try:
            for _ in range(3):
                delivery.push_batch([request(*targets), request(*reversed(targets))])
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    pairs = [("alice", "bob"), ("bob", "carol"), ("carol", "alice")]
    threads = [threading.Thread(target=worker, args=(pair,)) for pair in pairs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not any(thread.is_alive() for thread in threads)
    assert errors == []
    for user in ("alice", "bob", "carol"):
        assert stored_seqs(user) == list(range(1, 13)), user
