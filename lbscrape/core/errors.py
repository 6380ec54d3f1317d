"""lbscrape's own errors and exit codes.

Every error carries a one-line message meant for a person: it names the input or
system at fault and says what to do. Stages raise these; the CLI prints them.
"""

from __future__ import annotations

from enum import IntEnum


class ExitStatus(IntEnum):
    OK = 0
    ERROR = 1  # the run could not do its job (discovery, AWS, checkpoint, remote write down)
    USAGE = 2  # bad option or environment, found before anything was fetched or written
    PARTIAL = 3  # some load balancers failed; the others were written and checkpointed


class LbscrapeError(Exception):
    """Base class; str(e) is the one-line message."""


class ConfigError(LbscrapeError):
    """Bad input from the user: exit 2, nothing fetched or written."""


class KubeError(LbscrapeError):
    """The Kubernetes API could not be read or written; `status` is the HTTP status if any."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


NO_CREDENTIALS = ("AWS credentials not found: configure a role (IRSA), a profile or "
                  "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY")


class AwsError(LbscrapeError):
    """An AWS API call failed in a way that stops the whole run."""


class CheckpointError(LbscrapeError):
    """The checkpoint could not be read, parsed or stored."""


class RemoteWriteError(LbscrapeError):
    """A remote-write request failed.

    `retryable`: the endpoint was unavailable (5xx, 429, connection trouble) and may
    accept the same request later. `sample`: the endpoint refused the request because of
    some of its samples (400 and friends), so the rest may be written without them.
    `stale`: the refusal says the samples are older than, or conflict with, what the
    series already holds (typically already written by an interrupted run).
    `named`: (labels, timestamp ms) of the samples the receiver says it refused, when it
    names them (Mimir, Cortex): such a receiver stored the rest of the request.
    `reason`: the refusal without the sample it names, to group refusals by.
    """

    def __init__(self, message: str, *, status: int | None = None, retryable: bool = False,
                 sample: bool = False, stale: bool = False,
                 named: tuple[tuple[tuple[tuple[str, str], ...], int], ...] = (),
                 reason: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.retryable = retryable
        self.sample = sample
        self.stale = stale
        self.named = named
        self.reason = reason or message
