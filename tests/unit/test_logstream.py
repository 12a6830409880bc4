"""The live log's bookkeeping: a dropped stream resumed by timestamp, a retried submitter's replay dropped."""

from __future__ import annotations

import pytest

from aks_ray.logstream import RESUME_MARGIN_SECONDS, DriverLines, PodPosition, split_timestamp


@pytest.mark.parametrize(
    ("raw", "stamp", "text"),
    [
        ("2026-11-25T20:01:02.123456789Z epoch 1", (1795636862, 123456789), "epoch 1"),
        ("2026-11-25T20:01:02.1Z epoch 1", (1795636862, 100000000), "epoch 1"),  # RFC3339Nano trims zeros
        ("2026-11-25T20:01:02Z x", (1795636862, 0), "x"),
        ("2026-11-25T21:01:02+01:00 x", (1795636862, 0), "x"),
        ("2026-11-25T20:01:02.5Z ", (1795636862, 500000000), ""),
        ("no timestamp here", None, "no timestamp here"),
    ],
)
def test_split_timestamp(raw, stamp, text):
    assert split_timestamp(raw) == (stamp, text)


def read(position, raws):
    position.restart()
    taken = []
    for raw in raws:
        stamp, text = split_timestamp(raw)
        if position.take(stamp):
            taken.append(text)
    return taken


def test_a_resumed_stream_prints_nothing_twice_and_loses_nothing():
    first = ["2026-11-25T20:00:01.1Z a", "2026-11-25T20:00:02.2Z b", "2026-11-25T20:00:02.2Z b-again", "2026-11-25T20:00:03.3Z c"]
    # The stream drops; the resumed one starts a margin earlier, so it repeats what was taken.
    second = [first[1], first[2], first[3], "2026-11-25T20:00:03.3Z c-same-nanosecond", "2026-11-25T20:00:04Z d"]
    position = PodPosition()
    assert read(position, first) == ["a", "b", "b-again", "c"]
    assert read(position, second) == ["c-same-nanosecond", "d"]
    # A third stream after nothing new: nothing.
    assert read(position, second) == []


def test_lines_sharing_a_nanosecond_are_counted_not_collapsed():
    same = ["2026-11-25T20:00:01.1Z x", "2026-11-25T20:00:01.1Z x", "2026-11-25T20:00:01.1Z x"]
    position = PodPosition()
    assert read(position, same[:2]) == ["x", "x"]
    assert read(position, same) == ["x"]


def test_the_resumed_stream_asks_from_before_the_last_line():
    position = PodPosition()
    assert position.since_seconds(now=1795636900.0) is None, "the first stream reads the whole log"
    read(position, ["2026-11-25T20:01:02.9Z a"])
    assert position.since_seconds(now=1795636862 + 30.2) == 31 + RESUME_MARGIN_SECONDS


DRIVER = [
    "Running entrypoint for job aks-ray-1-ab12cd-tp9wx: python train_mnist.py --epochs 3",
    'AKS_RAY_METRICS {"kind": "dataset"}',
    "",
    'AKS_RAY_METRICS {"kind": "epoch", "epoch": 1}',
    "",
    'AKS_RAY_METRICS {"kind": "epoch", "epoch": 2}',
]
WAITING = "Waiting for Ray Dashboard GCS to become healthy at http://aks-ray-1-ab12cd-head-svc:8265 ..."


def feed(lines, pod, texts):
    return [text for text in texts if lines.new(pod, text)]


def test_a_retried_submitters_replay_is_dropped_and_its_new_lines_printed():
    lines = DriverLines()
    first = [WAITING, WAITING, "Job 'aks-ray-1-ab12cd-tp9wx' submitted successfully", *DRIVER]
    assert feed(lines, "submitter-1", first) == first
    # The second pod checks the job's status (silently), then follows it from its start.
    retry = [WAITING, "Still waiting: something only this pod says", *DRIVER, 'AKS_RAY_METRICS {"kind": "epoch", "epoch": 3}', ""]
    printed = feed(lines, "submitter-2", retry)
    assert printed == ["Still waiting: something only this pod says", 'AKS_RAY_METRICS {"kind": "epoch", "epoch": 3}', ""]
    # Every driver line is in the shared record exactly once, in order.
    assert lines.lines[3:] == [*DRIVER, 'AKS_RAY_METRICS {"kind": "epoch", "epoch": 3}', ""]


def test_a_third_submitter_replays_past_both():
    lines = DriverLines()
    feed(lines, "s1", DRIVER[:3])
    feed(lines, "s2", [*DRIVER[:3], *DRIVER[3:5]])
    assert feed(lines, "s3", [WAITING, *DRIVER, "the end"]) == [WAITING, DRIVER[5], "the end"]


def test_a_common_line_at_the_end_alone_does_not_end_the_replay():
    """The last line printed is blank; a retry's first blank line must not count as caught up."""
    lines = DriverLines()
    feed(lines, "s1", DRIVER[:5])  # ends with ""
    assert feed(lines, "s2", ["", *DRIVER[:5], "new"]) == ["new"]


def test_the_first_pod_prints_everything_even_repeated_lines():
    lines = DriverLines()
    assert feed(lines, "s1", ["x", "x", "", "x"]) == ["x", "x", "", "x"]


def test_two_pods_streaming_at_once_print_each_line_once():
    """As seen on the test cluster: the old submitter's container streams on while its pod terminates.

    The new pod has caught up, and both then get every epoch's lines, in either order.
    """
    lines = DriverLines()
    epoch = [f'(RayTrainWorker pid=137) AKS_RAY_METRICS {{"epoch": {n}}}' for n in range(1, 8)]
    report = [f"(RayTrainWorker pid=137) Reporting training result {n}" for n in range(1, 8)]
    printed = feed(lines, "old", [*DRIVER, epoch[0], report[0], epoch[1], report[1]])
    printed += feed(lines, "new", [WAITING, *DRIVER, epoch[0], report[0], epoch[1], report[1]])  # its replay
    for n in range(2, 7):  # interleaved: the old pod first for some lines, the new pod first for others
        first, second = ("old", "new") if n % 2 else ("new", "old")
        printed += feed(lines, first, [epoch[n]])
        printed += feed(lines, second, [epoch[n], report[n]])
        printed += feed(lines, first, [report[n]])
    pairs = [line for n in range(7) for line in (epoch[n], report[n])]
    # The new pod's own "waiting" line is its own, printed as it came; every driver line once, in order.
    assert printed == [*DRIVER, *pairs[:4], WAITING, *pairs[4:]]
    assert feed(lines, "new", ["after the old pod is gone"]) == ["after the old pod is gone"]
