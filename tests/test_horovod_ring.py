"""Horovod ranks as Spark barrier tasks: the plan, the rendezvous, and a real allreduce."""

from __future__ import annotations

import socket
import time
import urllib.request

import pytest

from sparkzoo.trainer.horovod_ring import (
    RendezvousServer,
    horovod_env,
    interface_for_address,
    plan_ranks,
    task_host,
)


def test_task_host_strips_port_and_brackets():
    assert task_host("10.0.0.5:41234") == "10.0.0.5"
    assert task_host("[::1]:7077") == "::1"
    assert task_host("worker-1") == "worker-1"


@pytest.mark.horovod
def test_plan_single_host_numbers_ranks_in_partition_order():
    plan = plan_ranks(["127.0.0.1"] * 3)
    assert [r.rank for r in plan] == [0, 1, 2]
    assert [r.local_rank for r in plan] == [0, 1, 2]
    assert {(r.size, r.local_size, r.cross_rank, r.cross_size) for r in plan} == {(3, 3, 0, 1)}


@pytest.mark.horovod
def test_plan_groups_interleaved_hosts():
    # partitions 0..3 land on hosts a, b, a, b: ranks go host by host, as horovodrun numbers them
    plan = plan_ranks(["a", "b", "a", "b"])
    assert [(r.hostname, r.rank, r.local_rank, r.cross_rank) for r in plan] == [
        ("a", 0, 0, 0),
        ("b", 2, 0, 1),
        ("a", 1, 1, 0),
        ("b", 3, 1, 1),
    ]
    assert {(r.size, r.local_size, r.cross_size) for r in plan} == {(4, 2, 2)}


@pytest.mark.horovod
def test_plan_uneven_hosts():
    plan = plan_ranks(["a", "a", "b"])
    assert [(r.rank, r.local_size) for r in plan] == [(0, 2), (1, 2), (2, 1)]
    assert plan[2].cross_size == 2 and plan[1].cross_size == 1  # local rank 1 exists only on a


@pytest.mark.horovod
def test_plan_rejects_empty_world():
    with pytest.raises(ValueError, match="at least one task"):
        plan_ranks([])


def test_loopback_interface_is_found():
    assert interface_for_address("127.0.0.1")


def test_interface_for_foreign_address_says_what_to_set():
    with pytest.raises(RuntimeError, match="SPARK_LOCAL_IP"):
        interface_for_address("203.0.113.77")  # TEST-NET-3: held by no interface here


@pytest.mark.horovod
def test_env_carries_the_plan():
    env = horovod_env(plan_ranks(["h", "h"])[1], "h", 1234, "lo")
    assert env["HOROVOD_RANK"] == "1" and env["HOROVOD_SIZE"] == "2"
    assert (
        env["HOROVOD_GLOO_RENDEZVOUS_ADDR"] == "h" and env["HOROVOD_GLOO_RENDEZVOUS_PORT"] == "1234"
    )
    assert env["HOROVOD_CONTROLLER"] == "gloo" and env["HOROVOD_GLOO_IFACE"] == "lo"


@pytest.mark.horovod
def test_rendezvous_server_listens_on_the_given_address_only_and_stops():
    server = RendezvousServer("127.0.0.1", plan_ranks(["127.0.0.1"] * 2))
    try:
        host, port = server._httpd.server_address
        assert host == "127.0.0.1" and port > 0
        req = urllib.request.Request(f"http://127.0.0.1:{port}/global/key", data=b"v", method="PUT")
        assert urllib.request.urlopen(req, timeout=5).status == 200
        assert (
            urllib.request.urlopen(f"http://127.0.0.1:{port}/global/key", timeout=5).read() == b"v"
        )
    finally:
        server.stop()
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=2):
        pass


@pytest.mark.spark
@pytest.mark.horovod
def test_two_barrier_tasks_allreduce_to_the_right_sum(spark):
    from sparkzoo.trainer.selftest import allreduce_check

    result = allreduce_check(spark, 2)
    assert result.expected == [3.0, 6.0, 9.0]
    assert sorted(r["rank"] for r in result.ranks) == [0, 1]
    assert all(r["allreduced"] == [3.0, 6.0, 9.0] and r["size"] == 2 for r in result.ranks)
    assert result.ok


@pytest.mark.spark
@pytest.mark.horovod
def test_ring_comes_up_again_in_reused_python_workers(spark):
    from sparkzoo.trainer.selftest import allreduce_check

    assert allreduce_check(spark, 1).ok
    assert allreduce_check(spark, 2).ok


@pytest.mark.spark
@pytest.mark.horovod
def test_more_ranks_than_slots_fails_fast_with_a_clear_error(spark):
    from sparkzoo.trainer.selftest import allreduce_check

    start = time.monotonic()
    with pytest.raises(ValueError, match=r"3 Horovod ranks .* has 2 task slots"):
        allreduce_check(spark, 3)
    assert time.monotonic() - start < 30
