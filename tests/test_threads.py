"""The "auto" thread policy's reading of the machine's load and its reaction to slow steps."""

import time

import pytest
import torch

from flygnn import threads


@pytest.fixture
def clean_sample(monkeypatch):
    monkeypatch.setattr(threads, "_last_sample", None)
    monkeypatch.setattr(threads, "_usable_cores", lambda: 2)


def _feed(monkeypatch, samples):
    samples = iter(samples)
    monkeypatch.setattr(threads, "_cpu_times", lambda: next(samples))


def test_other_processes_cpu_time_is_the_machines_minus_our_own(clean_sample, monkeypatch):
    # 2 s: the machine spent 3.5 s busy, we 1.5 s of it -> others used one core's worth
    _feed(monkeypatch, [(10.0, 100.0, 5.0), (12.0, 103.5, 6.5), (12.1, 103.6, 6.6),
                        (40.0, 200.0, 7.0)])
    assert threads._other_busy() is None  # no earlier sample
    assert threads._other_busy() == pytest.approx(1.0)
    assert threads._other_busy() is None  # 0.1 s: too short, the older sample is kept
    assert threads._other_busy() is None  # 28 s since then: too old to describe now


@pytest.mark.parametrize("runnable, busy, expected", [
    (0, 0.0, 0), (0, 0.2, 0), (0, 0.3, 1), (0, 1.1, 1), (1, 0.0, 1), (0, 1.8, 2),
    (None, None, None), (None, 0.9, 1), (2, None, 2)])
def test_busy_cores_takes_the_larger_of_now_and_recently(runnable, busy, expected):
    assert threads._busy_cores(runnable, busy) == expected


def test_auto_threads_leaves_the_busy_cores_alone(clean_sample, monkeypatch):
    monkeypatch.setattr(threads, "_other_runnable", lambda: 0)
    _feed(monkeypatch, [(0.0, 0.0, 0.0), (1.0, 1.9, 1.0), (2.0, 2.0, 1.1), (3.0, 2.1, 1.2)])
    assert threads.auto_threads(2) == 2  # quiet, first look
    assert threads.auto_threads(2) == 1  # others used 0.9 of a core in the last second
    assert threads.auto_threads(2) == 2  # quiet again
    monkeypatch.setattr(threads, "_other_runnable", lambda: 5)
    assert threads.auto_threads(2) == 1  # never below one thread
    monkeypatch.setattr(threads, "_other_runnable", lambda: None)
    monkeypatch.setattr(threads, "_cpu_times", lambda: None)
    assert threads.auto_threads(3) == 3  # nothing to read: torch's count


def test_sudden_slow_steps_drop_the_loop_to_one_thread(monkeypatch):
    if torch.get_num_threads() < 2:
        torch_threads = torch.get_num_threads()
        torch.set_num_threads(2)
    else:
        torch_threads = None
    monkeypatch.setattr(threads, "auto_threads", lambda requested: requested)
    clock = [0.0]
    monkeypatch.setattr(time, "perf_counter", lambda: clock[0])
    try:
        with threads.LoopThreads("auto") as loop:
            assert torch.get_num_threads() == 2
            for _ in range(12):  # steady 1 ms steps
                clock[0] += 1e-3
                loop.tick()
            clock[0] += 6e-3  # one slow step: noise
            loop.tick()
            clock[0] += 1e-3
            loop.tick()
            assert torch.get_num_threads() == 2
            for _ in range(2):  # two in a row: a core was taken
                clock[0] += 6e-3
                loop.tick()
            assert torch.get_num_threads() == 1 and threads.last_applied() == 1
            loop._checked = -1e9  # the next re-check comes within the back-off: still one
            for _ in range(32):
                clock[0] += 1e-3
                loop.tick()
            assert torch.get_num_threads() == 1
            loop._backoff_until = 0.0
            loop._checked = -1e9
            for _ in range(32):
                clock[0] += 1e-3
                loop.tick()
            assert torch.get_num_threads() == 2  # after the back-off, the load decides again
    finally:
        if torch_threads is not None:
            torch.set_num_threads(torch_threads)


def test_proc_readers_give_plausible_values_here():
    sample = threads._cpu_times()
    if sample is None:
        pytest.skip("no /proc/stat on this system")
    wall, busy, own = sample
    assert busy >= own >= 0 and wall > 0
