#!/usr/bin/env python3
"""What verifying a user layer's declarations costs: the gradient check with and without the probes.

The same network, checked side by side in one process, with minidl.contract.probe as it is and with it
replaced by one that trusts every declaration (the behaviour before declarations were verified). The
layers' declarations are true, so both checks take the same path; the difference is the probes' cost.

    python benchmarks/probe_cost.py              # about half a minute
    python benchmarks/probe_cost.py --repeats 3
"""
import argparse
import statistics
import time

import numpy as np

import minidl as mdl
from minidl import contract


class LeakyReLU(mdl.Layer):
    """A user's layer with true declarations (so the probes confirm them and no path changes)."""
    elementwise = rowwise = True

    def forward(self, X, training=False):
        self.X = X
        return np.where(X > 0, X, 0.01 * X)

    def backward(self, dA):
        return dA * np.where(self.X > 0, 1.0, 0.01)

    def kink_pattern(self, X):
        return X > 0


def trusting_probe(layer, X, A, training, where, structure=True):
    return contract.Shortcuts(bool(layer.elementwise), bool(layer.rowwise))


def network(widths):
    layers = []
    for n_in, n_out in zip(widths, widths[1:]):
        layers += [mdl.Dense(n_in, n_out), LeakyReLU()]
    return mdl.Sequential(layers + [mdl.Dense(widths[-1], 1), mdl.Sigmoid()], seed=0)


def median_seconds(run, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=7, help="timed runs per setting (median reported)")
    parser.add_argument("--quick", action="store_true", help="the small network only")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    cases = [("12288-20-7-5-1, m=8", [12288, 20, 7, 5], 8), ("64-32-16-1, m=256", [64, 32, 16], 256)]
    cases = cases[1:] if args.quick else cases
    print(f"{'network (LeakyReLU layers of the user)':<40} {'probed s':>9} {'trusted s':>10} {'ratio':>6}")
    for name, widths, m in cases:
        model = network(widths)
        X, Y = rng.random((m, widths[0])), rng.integers(0, 2, m)
        check = lambda: model.gradcheck(X, Y)       # noqa: E731
        check()                                      # warm up
        probed = median_seconds(check, args.repeats)
        original = contract.probe
        contract.probe = trusting_probe
        try:
            trusted = median_seconds(check, args.repeats)
        finally:
            contract.probe = original
        print(f"{name:<40} {probed:>9.4f} {trusted:>10.4f} {probed / trusted:>6.2f}")
    A = rng.standard_normal((209, 20))
    layer = LeakyReLU()
    out = layer.forward(A)
    alone = median_seconds(lambda: contract.probe(layer, A, out, False, "layer 1 (LeakyReLU)"), 50)
    print(f"one probe of a LeakyReLU on (209, 20): {alone * 1e3:.3f} ms")


if __name__ == "__main__":
    main()
