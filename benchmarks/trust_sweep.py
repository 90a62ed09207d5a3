"""Try to fool the gradient checker: random correct networks that must pass, and broken ones that must fail.

Two tables, printed side by side for every family of networks:

* false alarms: correct networks that the check fails (must be 0);
* detection: the smallest uniform relative error ``r`` in one parameter (the first Dense's dW,
  the parameter farthest from the loss, multiplied by ``1 + r`` inside backward) that the
  check catches, median and worst over the family's networks, on the ladder 1e-1 ... 1e-9 (networks
  whose first dW is exactly zero carry no error and are left out).

scipy's cross-check is counted beside them: correct networks where it is said to disagree with the
verdict, and broken networks (r = 1e-1) minidl fails where scipy sees the error too.

Then two counts: float32 models whose first dW is rounded through float16 (a slip 1,000 times float32's
rounding that only the float32 comparison can see), caught of tried; and a blind spot, first-layer errors in
wide networks with every unit of one example at its kink (see ``every_unit_at_a_kink``).

Uses only minidl's public API, so the same script measures any version:
``PYTHONPATH=/path/to/old/checkout python benchmarks/trust_sweep.py``.

Usage: ``python benchmarks/trust_sweep.py [--per-family 80] [--detect 5] [--seed 0]``
"""
import argparse
import math
import sys
import time

import numpy as np

import minidl as mdl

LADDER = [10.0 ** -e for e in range(1, 10)]


class ScaledDense(mdl.Dense):
    """A Dense whose backward multiplies dW by ``1 + r``: a uniform relative error in one parameter."""
    r = 0.0

    def backward(self, dZ):
        dX = super().backward(dZ)
        self.grads["W"] = self.grads["W"] * (1 + self.r)
        return dX


class InplaceReLU(mdl.ReLU):
    """Correct, but writes its output into its input."""

    def forward(self, Z, training=False):
        self.Z = Z.copy()
        return np.maximum(Z, 0, out=Z)


class MySigmoid(mdl.Sigmoid):
    """A Sigmoid subclass: the loss then works from clipped probabilities."""


def _net(first, widths, acts, rng, l2=0.0, dtype=np.float64, head=mdl.Sigmoid, dropout=0.0, scale=1.0):
    layers = [first(widths[0], widths[1])]
    for i, w in enumerate(widths[1:-1]):
        layers.append(acts[i % len(acts)]())
        if dropout:
            layers.append(mdl.Dropout(dropout))
        layers.append(mdl.Dense(w, widths[i + 2]))
    layers.append(head())
    model = mdl.Sequential(layers, loss=mdl.BinaryCrossEntropy(l2), seed=int(rng.integers(10 ** 6)), dtype=dtype)
    for name, value in model.named_parameters():
        value[...] = value * scale + (rng.normal(0, 0.3, value.shape) if name.endswith(".b") else 0)
    return model


def _widths(rng, n_in, depth=None):
    depth = depth or int(rng.integers(1, 4))
    return [n_in] + [int(rng.integers(2, 9)) for _ in range(depth)] + [1]


def _smooth(rng):
    return [[mdl.Tanh], [mdl.Sigmoid], [mdl.Tanh, mdl.Sigmoid]][rng.integers(3)]


def _labels(rng, m):
    return rng.integers(0, 2, (m, 1))


# Each family: rng, first Dense class -> (model, X, Y, gradcheck options)
def saturated(rng, first):
    X = rng.standard_normal((8, 5))
    return _net(first, _widths(rng, 5), _smooth(rng), rng, scale=rng.uniform(8, 30)), X, _labels(rng, 8), {}


def huge_l2(rng, first):
    X = rng.standard_normal((8, 5))
    model = _net(first, _widths(rng, 5), _smooth(rng), rng, l2=rng.uniform(5, 50), scale=rng.uniform(5, 20))
    return model, X, _labels(rng, 8), {}


def one_example(rng, first):
    X = rng.standard_normal((1, 5)) * rng.choice([0.1, 1, 5])
    return _net(first, _widths(rng, 5), [mdl.Tanh, mdl.ReLU], rng, l2=rng.choice([0, 0.5])), X, _labels(rng, 1), {}


def float32(rng, first):
    X = rng.standard_normal((8, 5)) * rng.choice([0.1, 1, 10])
    model = _net(first, _widths(rng, 5), [mdl.ReLU, mdl.Tanh, mdl.Sigmoid], rng, l2=rng.choice([0, 0.3]),
                 dtype=np.float32, scale=rng.choice([1, 3]))
    return model, X, _labels(rng, 8), {}


def many_kinks(rng, first):
    X = rng.standard_normal((8, 5)) * 1e-3          # ReLU inputs near 0 everywhere
    model = _net(first, _widths(rng, 5, depth=int(rng.integers(2, 4))), [mdl.ReLU], rng)
    for _, value in model.named_parameters():
        if value.ndim == 1:
            value[...] = rng.normal(0, 1e-6, value.shape)
    return model, X, _labels(rng, 8), {}


def tiny_gradients(rng, first):
    X = rng.standard_normal((8, 5)) * 1e-4
    return _net(first, _widths(rng, 5), _smooth(rng), rng, scale=1e-2), X, _labels(rng, 8), {}


def frozen_dropout(rng, first):
    X = rng.standard_normal((8, 5))
    model = _net(first, _widths(rng, 5, depth=2), [mdl.ReLU, mdl.Tanh], rng, dropout=rng.uniform(0.1, 0.6),
                 l2=rng.choice([0, 0.5]))
    return model, X, _labels(rng, 8), {"dropout": "frozen"}


def raw_pixels(rng, first):
    X = rng.integers(0, 256, (8, 64)).astype(float)
    model = _net(first, _widths(rng, 64), [mdl.ReLU, mdl.Tanh], rng)
    model.layers[0].params["W"][...] *= 1 / 255
    return model, X, _labels(rng, 8), {}


def large_cancelling(rng, first):
    X = 5e4 + rng.standard_normal((8, 3)) * rng.uniform(1, 20)
    model = _net(first, _widths(rng, 3), _smooth(rng), rng)
    dense = model.layers[0]
    dense.params["b"][...] = -(X @ dense.params["W"]).mean(axis=0)       # centred by the bias
    dense.params["W"][...] /= X.std(axis=0).mean()
    dense.params["b"][...] = -(X @ dense.params["W"]).mean(axis=0)
    return model, X, _labels(rng, 8), {}


def confident(rng, first):
    X = np.abs(rng.standard_normal((8, 5)))
    model = _net(first, _widths(rng, 5, depth=1), [mdl.Tanh], rng)
    model.layers[0].params["W"][...] = np.abs(model.layers[0].params["W"])
    model.layers[2].params["W"][...] = rng.uniform(6, 12)
    z_sign = 1 if rng.random() < 0.5 else -1
    model.layers[2].params["W"][...] *= z_sign
    Y = np.full((8, 1), 1 if z_sign > 0 else 0)                 # every label agrees with a logit of 10-40
    return model, X, Y, {}


def sigmoid_subclass(rng, first):
    X = rng.standard_normal((8, 5)) * 3
    model = _net(first, _widths(rng, 5), _smooth(rng), rng, head=MySigmoid, scale=rng.uniform(1, 10))
    return model, X, _labels(rng, 8), {}


def epsilons(rng, first):
    X = rng.standard_normal((8, 5))
    model = _net(first, _widths(rng, 5), _smooth(rng), rng, l2=rng.choice([0, 0.3]), scale=rng.uniform(1, 3))
    return model, X, _labels(rng, 8), {"epsilon": float(rng.choice([1e-3, 1e-4, 1e-5, 1e-6, 1e-8, 1e-9]))}


def large_steps(rng, first):
    """A large epsilon on large inputs: truncation, not rounding, is what the verdict must see through. The
    first W is scaled down with the inputs, so the units are not saturated: only the steps are large."""
    scale = rng.uniform(100, 1000)
    X = rng.random((4, 30)) * scale
    acts = [[mdl.ReLU, mdl.Tanh], [mdl.ReLU], [mdl.Tanh]][rng.integers(3)]
    model = _net(first, _widths(rng, 30), acts, rng)
    model.layers[0].params["W"] /= scale
    return model, X, _labels(rng, 4), {"epsilon": float(rng.choice([1e-3, 1e-2]))}


def inplace_layers(rng, first):
    X = rng.standard_normal((8, 5))
    return _net(first, _widths(rng, 5, depth=2), [InplaceReLU], rng, l2=rng.choice([0, 0.5])), X, _labels(rng, 8), {}


class CenterBatch(mdl.Layer):
    """Correct, but mixes examples while declaring the README LeakyReLU's ``elementwise = rowwise = True``."""
    elementwise = rowwise = True

    def forward(self, X, training=False):
        return X - X.mean(axis=0)

    def backward(self, dA):
        return dA - dA.mean(axis=0)


class PerUnit(mdl.Layer):
    """Correct, ``A = X * g`` with one g per unit, declared elementwise (it is only rowwise)."""
    elementwise = rowwise = True

    def __init__(self, n=1):
        super().__init__()
        self.params["g"] = np.linspace(0.5, 2.0, n)

    def forward(self, X, training=False):
        self.X = X
        return X * self.params["g"]

    def backward(self, dA):
        self.grads["g"] = (dA * self.X).sum(axis=0)
        return dA * self.params["g"]


def lying_layers(rng, first):
    """A user layer whose declarations are false (it mixes examples, or has per-unit parameters) after the
    first activation: the checker must find out on the data instead of trusting them."""
    X = rng.standard_normal((8, 5))
    w1, w2 = int(rng.integers(2, 9)), int(rng.integers(2, 9))
    lying = CenterBatch() if rng.random() < 0.5 else PerUnit(w1)
    layers = [first(5, w1), _smooth(rng)[0](), lying, mdl.Dense(w1, w2), mdl.Tanh(), mdl.Dense(w2, 1), mdl.Sigmoid()]
    model = mdl.Sequential(layers, loss=mdl.BinaryCrossEntropy(rng.choice([0, 0.3])), seed=int(rng.integers(10 ** 6)))
    return model, X, _labels(rng, 8), {}


def many_decades(rng, first):
    """Features spanning 1e-6 to 1e6 (the first W scaled so every unit stays O(1)): a step of epsilon on a
    weight that meets an input of 1e6 moves a unit by 0.1, so the step must suit the coordinate."""
    n = int(rng.integers(3, 9))
    scales = 10.0 ** rng.uniform(-6, 6, n)
    X = rng.standard_normal((8, n)) * scales
    acts = [[mdl.Tanh], [mdl.ReLU], [mdl.Sigmoid], [mdl.Tanh, mdl.ReLU]][rng.integers(4)]
    model = _net(first, _widths(rng, n, depth=int(rng.integers(1, 3))), acts, rng)
    model.layers[0].params["W"] /= scales[:, None] * np.sqrt(n)
    return model, X, _labels(rng, 8), {}


def wide_at_kinks(rng, first, units=None):
    """Over 1,000 parameters, so scipy checks one random direction, with some of one example's first-layer
    units (``units``, default 1 to 3 of 4) within 1e-8 to 1e-12 of their kink: scipy's step crosses kinks."""
    n, m = int(rng.integers(250, 600)), int(rng.integers(2, 9))
    X = rng.standard_normal((m, n))
    model = _net(first, [n, 4] + [int(rng.integers(2, 6))] + [1], [mdl.ReLU, [mdl.ReLU, mdl.Tanh][rng.integers(2)]],
                 rng, l2=float(rng.choice([0.0, 0.3])))
    W, b = model.layers[0].params["W"], model.layers[0].params["b"]
    at = rng.permutation(4)[:units or int(rng.integers(1, 4))]
    b[at] -= (X @ W + b)[0, at] - 10.0 ** -rng.uniform(8, 12, at.size)
    return model, X, _labels(rng, m), {}


FAMILIES = [saturated, huge_l2, one_example, float32, many_kinks, tiny_gradients, frozen_dropout, raw_pixels,
            large_cancelling, confident, sigmoid_subclass, epsilons, large_steps, inplace_layers, lying_layers,
            many_decades, wide_at_kinks]


class Float16SlipDense(mdl.Dense):
    """Rounds its dW through float16, but only when the model runs in float32 (a dtype slip): errors of
    about 1e-4 relative, thousands of times float32's rounding, invisible to the float64 check itself."""

    def backward(self, dZ):
        dX = super().backward(dZ)
        if self.params["W"].dtype == np.float32:
            self.grads["W"] = self.grads["W"].astype(np.float16).astype(np.float32)
        return dX


def float16_slips(networks, seed=0):
    """``(caught, tried)``: float32 models of the float32 family whose first Dense has a float16 slip."""
    caught = 0
    for s in range(seed * 100_000 + 90_000, seed * 100_000 + 90_000 + networks):
        model, X, Y, options = float32(np.random.default_rng(s), Float16SlipDense)
        caught += not model.gradcheck(X, Y, **options).passed
    return caught, networks


def every_unit_at_a_kink(networks, seed=0):
    """``(minidl fails, scipy sees, neither, tried)``: wide_at_kinks networks with every first-layer unit of one
    example at its kink and dW of the first layer 1.1 times the right value. Every step of the first W then
    crosses a kink, and coordinates whose steps cross kinks are left out of the verdict: what is left to see
    the error is the later layers' coordinates (not moved by it) and scipy's random direction."""
    fails = sees = neither = 0
    ScaledDense.r = 0.1
    try:
        for s in range(seed * 100_000 + 80_000, seed * 100_000 + 80_000 + networks):
            model, X, Y, options = wide_at_kinks(np.random.default_rng(s), ScaledDense, units=4)
            report = model.gradcheck(X, Y, **options)
            fails += not report.passed
            sees += not report.scipy_info["consistent"]
            neither += report.passed and report.scipy_info["consistent"]
    finally:
        ScaledDense.r = 0.0
    return fails, sees, neither, networks


def check(family, seed, first=mdl.Dense):
    rng = np.random.default_rng(seed)
    model, X, Y, options = family(rng, first)
    return model.gradcheck(X, Y, **options)


def _carries_an_error(family, seed):
    """Whether the first layer's dW has a nonzero entry: ``(1 + r) * 0`` is no error to catch (every
    unit dead or saturated to exactly +-1), so such networks are left out of the detection table."""
    model, X, Y, _ = family(np.random.default_rng(seed), mdl.Dense)
    return bool(np.any(model.gradients(X, Y)["0.W"]))


def sweep(per_family, detect, seed=0, out=sys.stdout):
    """Run both tables; returns ``{family: (networks, false alarms, median r, worst r, scipy disagrees,
    scipy sees, broken)}``."""
    results = {}
    for f_index, family in enumerate(FAMILIES):
        base = seed * 100_000 + f_index * 1_000
        reports = {s: check(family, s) for s in range(base, base + per_family)}
        alarms = [s for s, report in reports.items() if not report.passed]
        disagrees = sum(not report.scipy_info["agrees"] for report in reports.values() if report.scipy_info)
        caught, sees, broken = [], 0, 0
        for s in range(base, base + detect):
            if not _carries_an_error(family, s):
                continue
            smallest = math.inf
            for r in LADDER:
                ScaledDense.r = r
                report = check(family, s, ScaledDense)
                if r == LADDER[0] and not report.passed:
                    broken += 1
                    sees += bool(report.scipy_info) and not report.scipy_info["consistent"]
                if report.passed:
                    break
                smallest = r
            caught.append(smallest)
        ScaledDense.r = 0.0
        caught = caught or [math.nan]
        results[family.__name__] = (per_family, len(alarms), float(np.median(caught)), max(caught), disagrees,
                                    sees, broken)
        if alarms:
            print(f"  false alarms in {family.__name__}: seeds {alarms[:5]}", file=out)
    return results


def print_tables(results, out=sys.stdout):
    fmt = lambda r: "n/a" if math.isnan(r) else "missed" if not math.isfinite(r) else f"{r:.0e}"
    print(f"{'family':<18} {'networks':>8} {'false alarms':>13} {'caught r (median)':>18} {'(worst)':>8} "
          f"{'scipy disagrees':>16} {'scipy sees r=0.1':>17}", file=out)
    for name, (n, alarms, median, worst, disagrees, sees, broken) in results.items():
        print(f"{name:<18} {n:>8} {alarms:>13} {fmt(median):>18} {fmt(worst):>8} {disagrees:>16} "
              f"{f'{sees} of {broken}':>17}", file=out)
    total = sum(v[0] for v in results.values())
    alarms = sum(v[1] for v in results.values())
    disagrees = sum(v[4] for v in results.values())
    sees, broken = sum(v[5] for v in results.values()), sum(v[6] for v in results.values())
    print(f"{'all':<18} {total:>8} {alarms:>13} {'':>18} {'':>8} {disagrees:>16} {f'{sees} of {broken}':>17}",
          file=out)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-family", type=int, default=80, help="correct networks per family (default 80)")
    parser.add_argument("--detect", type=int, default=5, help="broken networks per family for detection (default 5)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    print_tables(sweep(args.per_family, args.detect, args.seed))
    caught, tried = float16_slips(args.per_family, args.seed)
    print(f"float16 slips inside float32 models (first dW rounded through float16): {caught} of {tried} caught")
    fails, sees, neither, tried = every_unit_at_a_kink(args.per_family // 2, args.seed)
    print(f"every unit of one example at its kink, first dW 1.1x: minidl fails {fails} of {tried}, scipy sees "
          f"{sees}, neither {neither} (steps that cross kinks are left out of the verdict)")
    print(f"({time.perf_counter() - start:.0f} s, minidl {mdl.__file__})")


if __name__ == "__main__":
    main()
