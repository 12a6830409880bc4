"""Following the driver's log across dropped streams and submitter retries: the pure bookkeeping.

The live log is the submitter pod's `ray job logs --follow`, read through the API
server with `timestamps=true`, so that every line carries the kubelet's RFC3339Nano
time. Two things can repeat lines, and this module keeps each line to one printing:

- A dropped stream (an API server restart, an idle connection cut by a load
  balancer, a read timeout) is opened again from a little before the last line
  taken (`sinceSeconds`: the client has no `sinceTime`), and `PodPosition` drops
  what it already took, by timestamp.
- A retried submitter pod follows the same Ray job from its start, replaying the
  whole driver log; `DriverLines` matches each new pod's lines against those
  already printed and prints only what is new (and the submitter's own lines,
  such as "waiting for the dashboard", which are not the driver's).
"""

from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import dataclass, field

# "2026-11-25T20:01:02.123456789Z rest" (RFC3339Nano trims trailing zeros; RFC3339 has no fraction).
_TIMESTAMP = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d) ")
# Margin before the last line's time when a stream is opened again: the node's clock and this
# machine's may differ, and what is taken twice is dropped by timestamp anyway.
RESUME_MARGIN_SECONDS = 60


def split_timestamp(raw: str) -> tuple[tuple[int, int] | None, str]:
    """(epoch seconds, nanoseconds) and the line without its timestamp; (None, raw) if it has none."""
    match = _TIMESTAMP.match(raw)
    if not match:
        return None, raw
    zone = "+00:00" if match[3] == "Z" else match[3]
    seconds = int(dt.datetime.fromisoformat(match[1] + zone).timestamp())
    nanos = int((match[2] or "0").ljust(9, "0"))
    return (seconds, nanos), raw[match.end() :]


@dataclass
class PodPosition:
    """Where one pod's log has been read to: the last timestamp taken, and how many lines carried it."""

    last: tuple[int, int] | None = None
    at_last: int = 0
    # Lines of the stream being read that carried `last` so far (reset on each new stream).
    _seen_at_last: int = field(default=0, repr=False)

    def restart(self) -> None:
        """A new stream begins: it may repeat lines up to and including the last one taken."""
        self._seen_at_last = 0

    def take(self, stamp: tuple[int, int] | None) -> bool:
        """True if the line with this timestamp is new to this pod's log."""
        if stamp is None or self.last is None or stamp > self.last:
            if stamp is not None:
                self.last, self.at_last, self._seen_at_last = stamp, 1, 1
            return True
        if stamp < self.last:
            return False
        # The same nanosecond as the last line taken: new only past the ones taken before.
        self._seen_at_last += 1
        if self._seen_at_last > self.at_last:
            self.at_last += 1
            return True
        return False

    def since_seconds(self, now: float) -> int | None:
        """sinceSeconds for a stream opened again now; None for the first one (the whole log)."""
        if self.last is None:
            return None
        return max(1, math.ceil(now - self.last[0]) + RESUME_MARGIN_SECONDS)


# How many lines in a row a later pod must repeat, ending at the last line printed, to count as
# caught up: one common line ("", "Epoch done") alone could sit at the end by chance.
CATCH_UP_RUN = 3


@dataclass
class _Replay:
    """A later submitter pod's place in the lines printed before it: where its replay may be."""

    caught_up: bool = False
    # Position in DriverLines.lines its next line may repeat -> how many lines in a row it repeated to get there.
    candidates: dict[int, int] = field(default_factory=dict)
    # Once caught up: the position in DriverLines.lines of the first line this pod has not shown yet. Two pods
    # can stream at once (the old submitter's container runs on while its pod terminates), each the same lines.
    cursor: int = 0


class DriverLines:
    """The driver's lines printed so far, shared by every submitter pod of one run."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._positions: dict[str, list[int]] = {}
        self._pods: dict[str, _Replay] = {}

    def _append(self, line: str) -> None:
        self._positions.setdefault(line, []).append(len(self.lines))
        self.lines.append(line)

    def new(self, pod: str, line: str) -> bool:
        """True if this line of `pod` is to be printed.

        A pod that starts after others replays the driver's log from its beginning
        (`ray job logs --follow`): until its lines have run through to the last one
        printed, a line that continues or starts a run of lines already printed is
        a replay and is dropped. Its own lines that were never printed (a
        submitter's "waiting for the dashboard") are printed. Once caught up, a
        line is new unless another pod streaming at the same time printed it
        first (then it is among the lines after this pod's cursor).
        """
        replay = self._pods.get(pod)
        if replay is None:
            replay = self._pods[pod] = _Replay(caught_up=not self.lines)
        if replay.caught_up:
            return self._in_step(replay, line)
        matches: dict[int, int] = {j + 1: 1 for j in self._positions.get(line, ())}
        for position, run in replay.candidates.items():
            if position < len(self.lines) and self.lines[position] == line:
                matches[position + 1] = max(matches.get(position + 1, 0), run + 1)
        replay.candidates = matches
        if matches.get(len(self.lines), 0) >= min(CATCH_UP_RUN, len(self.lines)):
            replay.caught_up, replay.candidates, replay.cursor = True, {}, len(self.lines)
        return not matches

    def _in_step(self, replay: _Replay, line: str) -> bool:
        """A caught-up pod's line: dropped if another pod printed it since this pod's last line, else printed."""
        ahead = self.lines[replay.cursor :]
        if line in ahead:
            replay.cursor += ahead.index(line) + 1
            return False
        in_step = replay.cursor == len(self.lines)
        self._append(line)
        if in_step:
            replay.cursor = len(self.lines)
        return True
