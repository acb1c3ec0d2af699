"""Benchmark 4: 1,000 organizations on PostgreSQL: what creating them costs, and whether reads slow down.

Creation goes through `create_organization` (a schema plus the tenant migrations, per organization), one after
another, each timed. Reads are `forum_list_threads` through `call_tool` in this process, for one organization with
ten threads, in a database holding only it and in one holding it among 1,000. A third read mixes tenants (one call
per organization in turn, as an operator, over all 1,000), which is what a busy server sees: per-tenant statement
caches and prepared statements only help while the same few tenants come back.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench import common, world
from bench.common import Table
from fleetprompt.accounts.context import Actor, OrgRef, RequestContext
from fleetprompt.accounts.organizations import create_organization
from fleetprompt.platform import Platform
from fleetprompt.tools import call_tool

ORGS, QUICK_ORGS = 1000, 50
READS, QUICK_READS = 500, 100
THREADS = 10
MEASURED = "bench"  # the organization whose reads are compared


@dataclass
class Tenants:
    platform: Platform
    member: world.Member
    others: list[OrgRef] = field(default_factory=list)
    creation: list[float] = field(default_factory=list)


def _seed_measured(platform: Platform) -> world.Member:
    member = world.new_member(platform, MEASURED)
    world.new_thread(platform, member, threads=THREADS)
    return member


def build_many(platform: Platform, count: int) -> Tenants:
    """`count` organizations; the measured one is created halfway, so its schema sits among the others."""
    creation: list[float] = []
    others: list[OrgRef] = []
    member: world.Member | None = None
    for i in range(count - 1):
        if i == count // 2:
            member = _seed_measured(platform)
        started = time.perf_counter()
        others.append(create_organization(platform.db, f"tenant-{i:04d}", f"Tenant {i}"))
        creation.append(time.perf_counter() - started)
        if (i + 1) % 100 == 0:
            common.log(f"tenants: {i + 1} organizations created, {common.ms(common.median(creation[-100:]))} each")
    assert member is not None
    return Tenants(platform, member, others, creation)


def read_latencies(platform: Platform, contexts: list[RequestContext], reads: int) -> list[float]:
    """forum_list_threads through call_tool, one call after another, cycling through `contexts`."""
    latencies = []
    for n in range(reads):
        started = time.perf_counter()
        call_tool(platform.ledger, contexts[n % len(contexts)], "forum_list_threads", {})
        latencies.append(time.perf_counter() - started)
    return latencies


def operator(org: OrgRef) -> RequestContext:
    return RequestContext(org=org, actor=Actor.operator("bench"))


def run(quick: bool, log_dir: Path) -> Table:
    count, reads = (QUICK_ORGS, QUICK_READS) if quick else (ORGS, READS)
    with (
        world.fresh_database("tenants_one") as one_url,
        world.fresh_database("tenants_many") as many_url,
        tempfile.TemporaryDirectory(prefix="bench-tenants-") as tmp,
    ):
        one_platform = world.build(one_url, Path(tmp) / "one", queue="memory")
        many_platform = world.build(many_url, Path(tmp) / "many", queue="memory")
        try:
            one = _seed_measured(one_platform)
            common.log(f"tenants: creating {count:,} organizations")
            many = build_many(many_platform, count)
            everyone = [operator(org) for org in many.others]
            samples: dict[str, list[list[float]]] = {"one": [], "many": [], "same": [], "cycling": []}
            read_latencies(one_platform, [one.ctx()], 50)  # warm both: connections, statement caches
            read_latencies(many_platform, [many.member.ctx()], 50)
            for attempt in range(common.RUNS):
                common.log(f"tenants: reads, run {attempt + 1}/{common.RUNS}")
                samples["one"].append(read_latencies(one_platform, [one.ctx()], reads))
                samples["many"].append(read_latencies(many_platform, [many.member.ctx()], reads))
                samples["same"].append(read_latencies(many_platform, everyone[:1], reads))
                samples["cycling"].append(read_latencies(many_platform, everyone, max(reads, len(everyone))))
        finally:
            one_platform.close()
            many_platform.close()
    return table(many.creation, samples, count)


def _p50s(runs: list[list[float]]) -> list[float]:
    return [common.percentile(run, 50) for run in runs]


def table(creation: list[float], samples: dict[str, list[list[float]]], count: int) -> Table:
    out = Table(
        "tenants",
        f"4. Tenants on PostgreSQL: {count:,} organizations",
        ["measure", "figure", "ratio (goal ≤ 1.2x)"],
    )
    total = sum(creation)
    tenth = max(len(creation) // 10, 1)
    out.add(
        "create_organization, per organization",
        f"median {common.ms(common.median(creation))}, p95 {common.ms(common.percentile(creation, 95))}; "
        f"first {tenth}: {common.ms(common.median(creation[:tenth]))}, last {tenth}: "
        f"{common.ms(common.median(creation[-tenth:]))}",
        "-",
    )
    out.add(
        f"create_organization, {len(creation):,} timed one after another (plus the measured organization)",
        common.ms(total),
        "-",
    )
    one = _p50s(samples["one"])
    for key, label in (
        ("one", "forum_list_threads p50, the only organization"),
        ("many", f"forum_list_threads p50, one organization among {count:,}"),
        ("same", f"forum_list_threads p50, as operator, one empty organization among {count:,}, repeatedly"),
        ("cycling", f"forum_list_threads p50, as operator, cycling through the {count - 1:,} empty ones"),
    ):
        p50s = _p50s(samples[key])
        base = one if key in ("one", "many") else _p50s(samples["same"])
        share = common.ratio(common.median(p50s), common.median(base))
        baseline_row = key in ("one", "same")
        if baseline_row:
            shown = "1.00x"
        elif key == "many":
            shown = f"{common.times(share)} ({common.verdict(share <= 1.2)})"
        else:
            shown = f"{common.times(share)} (no goal)"
        out.add(label, common.spread(p50s, common.ms), shown)
    out.notes += [
        "Reads: call_tool in this process, one after another; the measured organization has 10 threads; the others "
        "are empty. Median of 3 runs of the p50 (range in brackets). The goal applies to the second row; the last "
        "two rows compare with each other (the ratio column then means: vs the same empty organization repeatedly).",
        "Operator reads skip the membership lookup (operators act as owner), which is what lets one call visit every "
        "organization without 1,000 users.",
    ]
    return out
