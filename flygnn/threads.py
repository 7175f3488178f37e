"""How many CPU threads flygnn's simulation and training loops use (the knob and its policy).

torch parallelises every operation over ``torch.get_num_threads()`` OpenMP threads, which by
default spin-wait for work between operations. On a machine whose cores are busy with other
work (a second process, a notebook beside a build, a shared CI runner) a spinning thread
competes with the thread that does the work, and an Euler step of a few milliseconds can take
tens. flygnn therefore applies a policy to its simulation calls
(:func:`flygnn.simulate.simulate`, :func:`~flygnn.simulate.steady_state`,
:func:`~flygnn.simulate.fade_in_state`, the stacked ensembles; the analysis runners and
training simulate through them) and restores torch's setting afterwards; nothing is changed
at import. The policy covers the whole call, not only its loop (:func:`under_policy`): one
operation at torch's full count before the loop (a check of the input, the gather of the
weights) wakes the OpenMP workers, which then spin beside the loop's thread and take turns
with it on the busy core. Measured beside one CPU-bound process on 2 cores, with the policy
on the loop alone, about one run in six of 20 steps took 3.7x as long as the others.

Everything in these calls gives the same bits at any thread count (one thread per output
row of the sparse product, element-wise work). Work whose rounding depends on the thread
count stays at torch's setting: the flow decoder's convolutions and the losses' reductions in
training, so that a resumed run repeats the original bit for bit whatever the machine's load.

Policies (:func:`set_num_threads`):

* ``"auto"`` (default): torch's thread count, capped by the number of cores other work leaves
  idle: the cores this process may use minus the other processes' load, taken as the larger
  of the tasks runnable right now (``/proc/loadavg``) and the CPU time the machine spent
  outside this process since the last look (``/proc/stat`` minus this process's own time;
  a core counts as busy from a quarter of its time). Re-checked about once a second in long
  loops. A step that suddenly takes several times the loop's fastest (a core was taken
  between two checks: parallel regions then wait for a descheduled thread) drops the loop to
  one thread for a few seconds. On systems without ``/proc``, torch's count. A quiet machine
  gets all of torch's threads, a loaded one fewer.
* an ``int``: exactly that many threads inside flygnn's loops.
* ``None``: leave torch's setting alone (flygnn never calls ``torch.set_num_threads``).

Environment: ``FLYGNN_NUM_THREADS`` (``auto``, ``torch`` for None, or a number) sets the
initial policy. The ``flygnn`` command additionally sets ``OMP_WAIT_POLICY=PASSIVE`` before
torch starts (:func:`configure_process`), unless the variable is already set, so that idle
OpenMP threads sleep instead of spinning.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
import time

__all__ = ["LoopThreads", "auto_threads", "configure_process", "get_num_threads", "last_applied",
           "num_threads", "set_num_threads", "under_policy"]

_REFRESH_S = 1.0  # seconds between re-checks of the machine's load inside a loop
_BUSY_FRACTION = 0.25  # another process's average use of a core from which it counts as busy
_MAX_INTERVAL_S = 10.0  # an older /proc/stat sample says nothing about the load now
_SLOW_FACTOR = 4.0  # a step this many times the loop's fastest is a sign of a taken core
_BACKOFF_S = 5.0  # one thread for that long after such steps


def _initial_policy() -> int | str | None:
    value = os.environ.get("FLYGNN_NUM_THREADS", "auto").strip().lower()
    if value in ("", "auto"):
        return "auto"
    if value == "torch":
        return None
    try:
        return max(1, int(value))
    except ValueError:
        return "auto"  # a bad variable must not break imports; set_num_threads validates


_policy: int | str | None = _initial_policy()


def set_num_threads(policy: int | str | None) -> None:
    """Set the thread policy of flygnn's loops: ``"auto"``, a positive ``int`` or ``None``.

    Raises:
        ValueError: anything else.
    """
    global _policy
    if policy is None or policy == "auto":
        _policy = policy
        return
    if isinstance(policy, bool) or not isinstance(policy, int) or policy < 1:
        raise ValueError("set_num_threads: expected 'auto', None or a positive int, "
                         f"got {policy!r}")
    _policy = int(policy)


_last_applied: int | None = None


def last_applied() -> int | None:
    """Threads the last flygnn loop ran with (None: none ran under a policy yet)."""
    return _last_applied


def get_num_threads() -> int | str | None:
    """The current policy (``"auto"``, an ``int`` or ``None``)."""
    return _policy


def _usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _own_running_threads() -> int:
    running = 0
    try:
        for task in os.listdir("/proc/self/task"):
            try:
                with open(f"/proc/self/task/{task}/stat", "rb") as f:
                    stat = f.read()
            except OSError:
                continue
            if stat[stat.rfind(b")") + 2:][:1] == b"R":
                running += 1
    except OSError:
        return 1
    return max(running, 1)


def _other_runnable() -> int | None:
    """Runnable tasks of the machine that are not this process's threads (Linux), else None."""
    try:
        with open("/proc/loadavg") as f:
            running = int(f.read().split()[3].split("/")[0])
    except (OSError, ValueError, IndexError):
        return None
    return max(0, running - _own_running_threads())


def _cpu_times() -> tuple[float, float, float] | None:
    """``(wall, machine busy, own)`` seconds now: the machine's non-idle CPU time from the
    first line of ``/proc/stat`` and this process's user + system time; None without /proc."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
        ticks = [int(x) for x in fields[1:]]
        hz = os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, AttributeError):
        return None
    if fields[:1] != ["cpu"] or len(ticks) < 5:
        return None
    idle = ticks[3] + ticks[4]  # idle + iowait
    busy = (sum(ticks[:8]) - idle) / hz  # user .. steal; guest time is inside user
    own = os.times()
    return time.monotonic(), busy, own.user + own.system


_last_sample: tuple[float, float, float] | None = None


def _other_busy() -> float | None:
    """Cores' worth of CPU time other processes used since the previous call (None: no
    usable previous sample, too recent, too old, or no /proc)."""
    global _last_sample
    now = _cpu_times()
    if now is None:
        return None
    last, _last_sample = _last_sample, now
    if last is None:
        return None
    wall = now[0] - last[0]
    if not 0.2 <= wall <= _MAX_INTERVAL_S:
        if wall < 0.2:
            _last_sample = last  # keep the older sample: the interval grows
        return None
    return max(0.0, ((now[1] - last[1]) - (now[2] - last[2])) / wall)


def _busy_cores(runnable: int | None, busy: float | None) -> int | None:
    """Cores taken by other work: the runnable tasks now and the recent average use, whichever
    is larger (a core counts from :data:`_BUSY_FRACTION` of its time)."""
    if runnable is None and busy is None:
        return None
    recent = 0 if busy is None else int(busy + 1.0 - _BUSY_FRACTION)
    return max(runnable or 0, recent)


def auto_threads(requested: int) -> int:
    """``requested`` capped by the cores other work leaves idle (at least 1); see the module
    docstring."""
    others = _busy_cores(_other_runnable(), _other_busy())
    if others is None:
        return max(1, requested)
    return max(1, min(requested, _usable_cores() - others))


class LoopThreads:
    """Applies the policy while a loop runs (a context manager); :meth:`tick` once per step
    re-checks the load about once a second under ``"auto"``. Restores torch's count on exit."""

    def __init__(self, policy: int | str | None = None, inert: bool = False):
        self.policy = None if inert else (_policy if policy is None else policy)
        self._saved = None
        self._count = 0
        self._checked = 0.0
        self._threads = 0
        self._last_tick = None
        self._fastest = float("inf")
        self._slow = 0
        self._backoff_until = 0.0

    def _apply(self, limit: int | None = None) -> None:
        import torch

        global _last_applied
        n = self.policy if isinstance(self.policy, int) else auto_threads(self._saved)
        if limit is not None or time.monotonic() < self._backoff_until:
            n = 1 if limit is None else min(n, limit)
        _last_applied = n
        if n != torch.get_num_threads():
            torch.set_num_threads(n)
        if n != self._threads:  # a new thread count: its steps are timed afresh
            self._threads, self._fastest, self._slow = n, float("inf"), 0
        self._checked = time.monotonic()

    def __enter__(self):
        if self.policy is not None:
            import torch

            self._saved = torch.get_num_threads()
            self._apply()
        return self

    def restart(self) -> None:
        """A new loop begins under this manager: its first step is not timed against the
        previous loop's last one."""
        self._last_tick = None

    def tick(self) -> None:
        """Call once per step; cheap (a clock read), re-checks the load every ~second and
        drops to one thread when steps suddenly slow down (see the module docstring)."""
        if self.policy != "auto" or self._saved is None:
            return
        self._count += 1
        now = time.perf_counter()
        last, self._last_tick = self._last_tick, now
        if last is not None and self._threads > 1:
            step = now - last
            self._fastest = min(self._fastest, step)
            self._slow = self._slow + 1 if step > _SLOW_FACTOR * self._fastest else 0
            if self._slow >= 2 and self._count > 8:  # two slow steps in a row
                self._backoff_until = time.monotonic() + _BACKOFF_S
                self._apply(limit=1)
                return
        if self._count % 32 == 0 and time.monotonic() - self._checked > _REFRESH_S:
            self._apply()

    def __exit__(self, *exc) -> None:
        if self._saved is not None:
            import torch

            if torch.get_num_threads() != self._saved:
                torch.set_num_threads(self._saved)
            self._saved = None


_active: LoopThreads | None = None  # the manager of the outermost active use


@contextlib.contextmanager
def num_threads(policy: int | str | None = None):
    """Context manager: run the body under a thread policy (default: the current policy).

    Nested uses inside an active one (:func:`~flygnn.simulate.simulate` inside a runner, the
    Euler loop inside :func:`~flygnn.simulate.simulate`) keep the outer setting and yield
    the outer :class:`LoopThreads`, so every loop's ``tick()`` re-checks the load.
    """
    global _active
    if policy is not None and policy != "auto" and (
            isinstance(policy, bool) or not isinstance(policy, int) or policy < 1):
        raise ValueError(f"num_threads: expected 'auto', None or a positive int, got {policy!r}")
    if _active is not None:
        _active.restart()  # a new loop: its first step is not timed against the last one
        yield _active
        return
    with LoopThreads(policy) as loop:
        _active = loop
        try:
            yield loop
        finally:
            _active = None


def under_policy(fn):
    """Decorator: the whole call runs under the thread policy (:func:`num_threads`).

    Not only the loops: every parallel operation of the call (input checks, the weights'
    gather, the output's copy) then runs at the policy's count. An operation at torch's
    full count on a machine with a busy core wakes OpenMP workers, which spin after it for a
    while and take turns on that core with this process's own thread.
    """
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with num_threads():
            return fn(*args, **kwargs)
    return wrapper


def configure_process(environ: dict | None = None) -> bool:
    """For programs built on flygnn (the ``flygnn`` command): let idle OpenMP threads sleep
    (``OMP_WAIT_POLICY=PASSIVE``) unless the variable is set. Effective only before torch is
    imported; returns whether it was set."""
    environ = os.environ if environ is None else environ
    if "torch" in sys.modules or "OMP_WAIT_POLICY" in environ:
        return False
    environ["OMP_WAIT_POLICY"] = "PASSIVE"
    return True
