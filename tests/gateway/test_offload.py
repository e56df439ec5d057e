"""Job threads (`start_blocking`): the caller's context goes along, a failure is logged and
does not cost a thread, and shutdown lets queued jobs finish first."""

from __future__ import annotations

import contextvars
import threading

from structlog.testing import capture_logs

from gateway import offload

WHO: contextvars.ContextVar[str] = contextvars.ContextVar("who", default="nobody")


def test_a_job_runs_in_a_job_thread_with_the_callers_context() -> None:
    seen: list[tuple[str, str]] = []
    done = threading.Event()

    def job(tag: str) -> None:
        seen.append((tag, WHO.get()))
        done.set()

    token = WHO.set("the caller")
    try:
        offload.start_blocking(job, "first")
    finally:
        WHO.reset(token)
    assert done.wait(5)
    assert seen == [("first", "the caller")]


def test_a_failing_job_is_logged_and_the_next_ones_still_run() -> None:
    ran = threading.Semaphore(0)

    def broken() -> None:
        raise ValueError("refused")

    def fine() -> None:
        ran.release()

    with capture_logs() as logs:
        for _ in range(offload.JOB_THREADS):  # one failure per thread, if they were lost
            offload.start_blocking(broken)
        for _ in range(offload.JOB_THREADS):
            offload.start_blocking(fine)
        for _ in range(offload.JOB_THREADS):
            assert ran.acquire(timeout=5)
    failed = [e for e in logs if e["event"] == "offload.job_failed"]
    assert len(failed) == offload.JOB_THREADS
    assert failed[0]["error"] == "ValueError: refused"


def test_shutdown_lets_queued_jobs_finish_and_later_jobs_get_new_threads() -> None:
    gate, finished = threading.Event(), []

    def slow(n: int) -> None:
        gate.wait(5)
        finished.append(n)

    for n in range(20):
        offload.start_blocking(slow, n)
    stopper = threading.Thread(target=offload.shutdown)
    stopper.start()
    gate.set()
    stopper.join(10)
    assert not stopper.is_alive()
    assert sorted(finished) == list(range(20))
    names = {t.name for t in threading.enumerate()}
    assert not any(name.startswith("raccord-job-") for name in names)
    again = threading.Event()
    offload.start_blocking(again.set)
    assert again.wait(5)
