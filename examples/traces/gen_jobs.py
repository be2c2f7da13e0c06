#!/usr/bin/env python3
"""Generate examples/traces/jobs_7d.csv: a week of ML training jobs for `steward simulate`.

Researchers submit during their working day: a Poisson process whose rate follows a
raised-cosine hump peaking at 14:00 UTC on weekdays (a quarter of it at night and on
weekends). Each job asks for 1, 2, 4 or 8 workers (1 or 2 GPUs each) and trains for a
log-normal time (median 50 min, clipped to 5 min .. 8 h). A fixed seed makes the file
reproducible byte for byte:

    python3 examples/traces/gen_jobs.py > examples/traces/jobs_7d.csv

The header comment gives the peak of concurrently wanted workers if every job started at
its submit time: the size a fixed pool needs so no job ever waits for capacity
(examples/ml/sim-fixed-pool.jsonc uses it).
"""
import math
import random

DAYS = 7
PEAK_PER_HOUR = 4.0  # weekday 14:00 UTC submit rate
FLOOR = 0.25         # the rest of the time, as a fraction of the peak shape
WORKERS = [(1, 0.35), (2, 0.30), (4, 0.25), (8, 0.10)]
GPUS = [(1, 0.7), (2, 0.3)]


def rate_per_s(t):
    hour = (t % 86400) / 3600.0
    shape = (1 + math.cos(2 * math.pi * (hour - 14) / 24)) / 2
    day = int(t // 86400) % 7  # 0 = Monday
    weekday = 1.0 if day < 5 else 0.3
    return PEAK_PER_HOUR / 3600.0 * weekday * (FLOOR + (1 - FLOOR) * shape ** 3)


def pick(rng, table):
    x = rng.random()
    for value, weight in table:
        x -= weight
        if x < 0:
            return value
    return table[-1][0]


def main():
    rng = random.Random(20240108)
    top = PEAK_PER_HOUR / 3600.0
    jobs = []
    t = 0.0
    while True:
        # Thinning: candidates at the peak rate, kept with probability rate(t) / peak.
        t += -math.log(1.0 - rng.random()) / top
        if t >= DAYS * 86400 - 8 * 3600:
            break
        if rng.random() * top > rate_per_s(t):
            continue
        minutes = math.exp(math.log(50) + 0.9 * rng.gauss(0, 1))
        duration = int(min(max(minutes, 5), 480) * 60)
        jobs.append((int(t), duration, pick(rng, WORKERS), pick(rng, GPUS)))
    edges = sorted([(s, w) for s, d, w, _ in jobs] + [(s + d, -w) for s, d, w, _ in jobs])
    busy = peak = 0
    for _, delta in edges:
        busy += delta
        peak = max(peak, busy)
    print(f"# {len(jobs)} ML training jobs over {DAYS} days (examples/traces/gen_jobs.py); "
          f"peak concurrent workers if every job started at submit: {peak}")
    print("submit_s,duration_s,workers,gpus_per_worker")
    for submit, duration, workers, gpus in jobs:
        print(f"{submit},{duration},{workers},{gpus}")


if __name__ == "__main__":
    main()
