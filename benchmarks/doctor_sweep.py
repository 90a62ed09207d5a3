#!/usr/bin/env python3
"""Try to make the doctor cry wolf: random reasonable setups (widths, depths, activations, scaled inputs,
learning rates in the healthy range), each of which should get a healthy report.

    python benchmarks/doctor_sweep.py              # 200 setups, about a minute
    python benchmarks/doctor_sweep.py --setups 50
"""
import argparse
import collections
import time

import numpy as np

import minidl as mdl


def setup(seed):
    """One reasonable setup: (model, X, Y, optimizer)."""
    rng = np.random.default_rng(seed)
    n, m = int(rng.integers(2, 40)), int(rng.integers(32, 257))
    X = rng.standard_normal((m, n)) if rng.random() < 0.5 else rng.random((m, n))
    teacher = rng.standard_normal(n)
    score = (X - X.mean(axis=0)) @ teacher
    Y = (score > np.quantile(score, rng.uniform(0.3, 0.7))).astype(float)
    act = [mdl.ReLU, mdl.Tanh, mdl.Sigmoid][int(rng.integers(3))]
    depth = int(rng.integers(1, 4 if act is not mdl.Sigmoid else 3))
    widths = [n] + [int(rng.integers(4, 33)) for _ in range(depth)] + [1]
    layers = []
    for i, (a, b) in enumerate(zip(widths, widths[1:])):
        layers.append(mdl.Dense(a, b))
        if i < depth:
            layers.append(act())
            if rng.random() < 0.2:
                layers.append(mdl.Dropout(float(rng.uniform(0.05, 0.3))))
    model = mdl.Sequential(layers + [mdl.Sigmoid()], loss=mdl.BinaryCrossEntropy(float(rng.choice([0, 0.01, 0.1]))),
                           seed=int(rng.integers(10 ** 6)))
    if rng.random() < 0.5:
        optimizer = mdl.Adam(lr=float(10 ** rng.uniform(-3, -1.5)))
    else:
        optimizer = mdl.SGD(lr=float(10 ** rng.uniform(-1.5, -0.5)))
    return model, X, Y, optimizer


def check(seed):
    model, X, Y, optimizer = setup(seed)
    return mdl.doctor(model, X, Y, optimizer, seed=seed)


def main():
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--setups", type=int, default=200, help="random setups (default 200)")
    args = parser.parse_args()
    start = time.perf_counter()
    kinds = collections.Counter()
    flagged = []
    for seed in range(args.setups):
        report = check(seed)
        kinds.update(report.kinds())
        if not report.healthy:
            flagged.append((seed, report.kinds()))
    print(f"{args.setups} reasonable setups, {len(flagged)} with a finding (false alarms), "
          f"{time.perf_counter() - start:.0f} s")
    for kind, count in kinds.most_common():
        print(f"  {kind}: {count}")
    for seed, found in flagged[:10]:
        print(f"  seed {seed}: {found}")


if __name__ == "__main__":
    main()
