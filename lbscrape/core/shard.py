"""Shards: split the load balancers of one cluster over several runs of the same command.

A load balancer belongs to shard sha256(key) mod COUNT, its key being the checkpoint's
(app/NAME/ID, net/NAME/ID, elb/NAME). That depends on nothing else a run sees, so every
shard, however it is started and whatever it discovered, agrees with the others: each
load balancer is in exactly one shard. Python's hash() is salted per process; sha256 is
the same everywhere and forever, so a load balancer keeps its shard from run to run.

Checkpoints stay keyed by load balancer, in the one ConfigMap all shards share: a shard
updates and prunes only its own keys, so changing COUNT moves load balancers between
shards without losing a checkpoint.

Warning Events are about owners, not load balancers: an owner's are recorded by the shard
of the first (by key) of the load balancers it owns, so an owner's notices go out once and
with the same message as without shards; an owner with no load balancer goes to shard 0.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Container, Iterable, Mapping
from dataclasses import dataclass

from lbscrape.core.errors import ConfigError
from lbscrape.core.model import LoadBalancer, Owner

INDEX_ENV = "JOB_COMPLETION_INDEX"
"""Set by Kubernetes in each pod of an Indexed Job: 0 .. completions-1."""


@dataclass(frozen=True)
class Shard:
    index: int
    count: int

    def owns(self, key: str) -> bool:
        return shard_of(key, self.count) == self.index

    def keep(self, present: Collection[str]) -> Container[str]:
        """The checkpoint keys this shard must not prune: those it saw this run, and
        every other shard's (they are not its business, whatever their age)."""
        return _Kept(self, present)

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


@dataclass(frozen=True)
class _Kept:
    shard: Shard
    present: Collection[str]

    def __contains__(self, key: object) -> bool:
        return key in self.present or (isinstance(key, str) and not self.shard.owns(key))


def shard_of(key: str, count: int) -> int:
    """The shard of the load balancer with checkpoint key `key`, of `count`."""
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:8], "big") % count


def parse_shard(shard: str | None, shards: str | None,
                completion_index: str | None) -> Shard | None:
    """--shard INDEX/COUNT, or --shards COUNT with the index from JOB_COMPLETION_INDEX;
    None when neither is given. Raises ConfigError naming the option."""
    if shard and shards:
        raise ConfigError("--shard: not together with --shards; give INDEX/COUNT, or COUNT "
                          f"with the index in {INDEX_ENV} (an Indexed Job)")
    if shard:
        index, sep, count = shard.partition("/")
        if not sep or not _digits(index) or not _digits(count):
            raise ConfigError(f"--shard: cannot read {shard!r}; give INDEX/COUNT, e.g. 0/3")
        return _checked(int(index), int(count), "--shard")
    if shards:
        if not _digits(shards):
            raise ConfigError(f"--shards: cannot read {shards!r}; give the number of shards, "
                              "e.g. 3")
        if completion_index is None or not completion_index.strip():
            raise ConfigError(f"--shards: {INDEX_ENV} is not set; run it in an Indexed Job "
                              "(completionMode: Indexed), or give --shard INDEX/COUNT")
        if not _digits(completion_index):
            raise ConfigError(f"--shards: cannot read {INDEX_ENV}={completion_index!r} as a "
                              "shard index")
        return _checked(int(completion_index), int(shards), "--shards")
    return None


def parse_count(text: str | None) -> int | None:
    """--shards COUNT of `discover` and `estimate`: how many shards to show."""
    if not text:
        return None
    if not _digits(text) or int(text) < 1:
        raise ConfigError(f"--shards: cannot read {text!r}; give the number of shards (1 or "
                          "more), e.g. 3")
    return int(text)


def notice_shards(load_balancers: Iterable[LoadBalancer], count: int) -> Mapping[Owner, int]:
    """Owner -> the shard that records its Warning Events (absent: shard 0)."""
    first: dict[Owner, str] = {}
    for lb in load_balancers:
        for owner in lb.owners:
            if owner not in first or lb.key < first[owner]:
                first[owner] = lb.key
    return {owner: shard_of(key, count) for owner, key in first.items()}


def _checked(index: int, count: int, option: str) -> Shard:
    if count < 1:
        raise ConfigError(f"{option}: the number of shards must be 1 or more, not {count}")
    if index >= count:
        raise ConfigError(f"{option}: shard index {index} is not below the number of shards "
                          f"{count}; indexes run from 0 to {count - 1}")
    return Shard(index, count)


def _digits(text: str) -> bool:
    """A plain non-negative decimal (no sign, no spaces inside, ASCII digits only)."""
    t = text.strip()
    return t.isascii() and t.isdigit()
