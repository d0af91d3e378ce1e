"""The fair queue serves folders in turn and holds retries until due."""

from hotfolder.jobqueue import FairQueue


def test_busy_folder_does_not_starve_others() -> None:
    queue = FairQueue()
    for i in range(100):
        queue.put("busy", f"b{i}")
    queue.put("quiet", "q0")
    first_two = [queue.pop(0.0), queue.pop(0.0)]
    assert ("quiet", "q0") in first_two


def test_delayed_job_waits_for_its_time() -> None:
    queue = FairQueue()
    queue.put("f", "retry", not_before=10.0, now=0.0)
    assert queue.pop(5.0) is None
    assert queue.next_due() == 10.0
    assert queue.pop(10.0) == ("f", "retry")
    assert queue.size() == 0


def test_remove_takes_a_job_out() -> None:
    queue = FairQueue()
    queue.put("f", "a")
    queue.put("f", "b")
    assert queue.remove("a")
    assert queue.pop(0.0) == ("f", "b")
    assert queue.pop(0.0) is None
