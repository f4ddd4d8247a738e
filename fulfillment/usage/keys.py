"""Every Redis key of usage reporting, built here and nowhere else.

With the default prefix ``ff:``::

    ff:usage:sub:<scope>:<id>             hash  one subscription (:class:`~.models.Subscription`)
    ff:usage:subs                         zset  <scope>:<id> by when it became active
    ff:usage:day:<yyyy-mm-dd>             hash  one day's run: counts, state, its clock
    ff:usage:day:<yyyy-mm-dd>:pending     set   the run's jobs not finished yet
    ff:usage:job:<yyyy-mm-dd>:<job>       hash  one job's claim, attempts and progress
    ff:usage:days                         zset  every run's day by when it was planned
    ff:usage:period:<scope>:<id>:<period> hash  a subscription's period: last post, closed
    ff:usage:closed:<period>              set   <scope>:<id> whose closing totals Pax8 has
    ff:usage:posts:<scope>:<id>:<period>  list  every post: the lines sent and Pax8's answer
    ff:usage:recent                       list  the latest posts of every subscription
    ff:usage:stats                        hash  running totals (posts, lines, 429s, jobs)
    ff:usage:ratelimit                    str   the shared limiter's state (GCRA)
    ff:usage:lock:run                     str   the run lock (one planner at a time)
    ff:usage:alerted:<period>:<scope>     str   the overdue alert went to Sentry
    ff:usage:overdue                      hash  what the latest check found overdue

A job is named ``<scope>:<id>:<period>``; ids are checked (:func:`fulfillment.ledger.refs.check_id`)
before they become part of a key.
"""

from __future__ import annotations

from dataclasses import dataclass

from fulfillment.ledger.refs import Scope, check_id


@dataclass(frozen=True)
class UsageKeys:
    """The key names under one prefix."""

    prefix: str = "ff:"

    @property
    def base(self) -> str:
        """Every usage key starts with this."""
        return f"{self.prefix}usage:"

    def subscription(self, member: str) -> str:
        """The hash of one subscription (``member``: ``<scope>:<id>``)."""
        return f"{self.base}sub:{member}"

    @property
    def subscriptions(self) -> str:
        """Every subscription by when it became active."""
        return f"{self.base}subs"

    def day(self, day: str) -> str:
        """One day's run."""
        return f"{self.base}day:{day}"

    def pending(self, day: str) -> str:
        """The jobs of a day's run not finished yet."""
        return f"{self.base}day:{day}:pending"

    def job(self, day: str, job: str) -> str:
        """One job of a day's run."""
        return f"{self.base}job:{day}:{job}"

    @property
    def days(self) -> str:
        """Every run by when it was planned."""
        return f"{self.base}days"

    def period(self, member: str, period: str) -> str:
        """A subscription's state in one billing period."""
        return f"{self.base}period:{member}:{period}"

    def closed(self, period: str) -> str:
        """The subscriptions whose closing totals of ``period`` Pax8 has."""
        return f"{self.base}closed:{period}"

    def posts(self, member: str, period: str) -> str:
        """Every post of a subscription's period."""
        return f"{self.base}posts:{member}:{period}"

    @property
    def recent(self) -> str:
        """The latest posts of every subscription."""
        return f"{self.base}recent"

    @property
    def stats(self) -> str:
        """Running totals."""
        return f"{self.base}stats"

    @property
    def ratelimit(self) -> str:
        """The shared limiter's state."""
        return f"{self.base}ratelimit"

    @property
    def run_lock(self) -> str:
        """The run lock."""
        return f"{self.base}lock:run"

    @property
    def overdue(self) -> str:
        """What the latest check found overdue, per scope."""
        return f"{self.base}overdue"

    def alerted(self, period: str, scope: Scope) -> str:
        """Set once the overdue alert of ``period`` in ``scope`` went to Sentry."""
        return f"{self.base}alerted:{period}:{scope}"


def member(scope: Scope, subscription_id: str) -> str:
    """A subscription's name in the usage sets and keys: ``<scope>:<id>`` (id checked)."""
    return f"{scope}:{check_id(subscription_id, 'subscriptionId')}"


def job_name(member_name: str, period: str) -> str:
    """A job's name: ``<scope>:<id>:<period>``."""
    return f"{member_name}:{period}"


def split_job(job: str) -> tuple[Scope, str, str]:
    """(scope, subscription id, period) of a job name; ValueError when malformed."""
    scope, subscription_id, period = job.split(":")
    return Scope(scope), check_id(subscription_id, "subscriptionId"), period
