"""Routing-table speed at aggregator scale: build time and lookups per second.

    python -m benchmarks.routing [--routes 100000] [--lookups 50000] [--runs 3]

Prints the median of ``--runs`` runs. Kept out of the unit tests on purpose: a
timed assertion fails whenever the machine is busy (CI shares two cores).
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

from smsgw.routing import MtRoute, RoutingTable


def one_run(n_routes: int, n_lookups: int, seed: int) -> tuple[float, float]:
    """(build seconds, lookups per second) for a random table of ``n_routes``."""
    rng = random.Random(seed)
    routes = [MtRoute(id=0, prefix="", provider="catch")]
    customers = [f"c{i}" for i in range(200)]
    for i in range(n_routes):
        prefix = str(rng.randrange(1, 10**9))[: rng.randint(2, 9)]
        customer = rng.choice(customers) if i % 3 == 0 else None
        routes.append(
            MtRoute(id=i + 1, prefix=prefix, provider=f"p{i % 50}", customer=customer, priority=i)
        )
    start = time.perf_counter()
    table = RoutingTable(routes)
    built = time.perf_counter() - start
    numbers = [str(rng.randrange(10**10, 10**11)) for _ in range(n_lookups)]
    start = time.perf_counter()
    for n in numbers:
        table.route("c7", "447700900123", n)
    return built, n_lookups / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--routes", type=int, default=100_000)
    ap.add_argument("--lookups", type=int, default=50_000)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    runs = [one_run(args.routes, args.lookups, seed) for seed in range(args.runs)]
    build = statistics.median(r[0] for r in runs)
    rate = statistics.median(r[1] for r in runs)
    print(
        f"{args.routes:,} routes: build {build:.2f} s, {rate:,.0f} lookups/s",
        f"(median of {args.runs})",
    )


if __name__ == "__main__":
    main()
