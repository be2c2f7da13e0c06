#!/usr/bin/env python3
"""Generate examples/traces/demand_7d.csv: a 7-day diurnal demand trace, 5-minute rows.

Each region's users follow their local day: a raised-cosine hump peaking in the local
afternoon (squared, so nights stay quiet), 25% less traffic on Saturday and Sunday, and
+-4% noise from a fixed seed, so the file is reproducible byte for byte:

    python3 examples/traces/gen_demand.py > examples/traces/demand_7d.csv

Trace second 0 is Monday 00:00 UTC (the simulator's default origin, 2024-01-01, is one).
"""
import math
import random

STEP_S = 300
DAYS = 7
# region: (quiet rps, peak rps, peak hour in UTC)
REGIONS = {
    "eu-west": (40, 900, 14),
    "eu-central": (30, 700, 13),
    "na-us-east": (50, 1100, 19),
    "na-us-central": (20, 450, 20),
    "as-east": (30, 800, 5),
    "oc-aus": (10, 260, 3),
    "sa-brazil": (10, 300, 18),
}


def rate(region, t, rng):
    base, peak, peak_hour = REGIONS[region]
    hour = (t % 86400) / 3600.0
    shape = (1 + math.cos(2 * math.pi * (hour - peak_hour) / 24)) / 2
    value = base + (peak - base) * shape * shape
    day = int(t // 86400) % 7  # 0 = Monday
    if day >= 5:
        value *= 0.75
    return value * (1 + 0.04 * (2 * rng.random() - 1))


def main():
    rng = random.Random(20240101)
    print("time_s,region,rps")
    for t in range(0, DAYS * 86400 + 1, STEP_S):
        for region in sorted(REGIONS):
            print(f"{t},{region},{rate(region, t, rng):.1f}")


if __name__ == "__main__":
    main()
