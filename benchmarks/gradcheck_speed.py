#!/usr/bin/env python3
"""How fast is minidl's every-coordinate gradient check? Side by side, in one process.

Checks the cat network 12288-20-7-5-1 (ReLU, Sigmoid; 245,973 parameters) on 8 examples with:
  - minidl's full check (every coordinate, central differences, fast path), with its default settings (the
    scipy cross-check on) and without the cross-check, interleaved;
  - the seed-course loop (copy theta, rebuild the parameter dicts, full forward per perturbation),
    timed on a seeded sample of coordinates and extrapolated to all of them;
  - torch.autograd.gradcheck in float64, per element on a sample (extrapolated) and fast_mode in full,
    when torch is installed (pip install -e ".[bench]" or pip install torch);
  - scipy.optimize.check_grad, all directions on a sample (extrapolated) and one random direction.
Then the scaling with the hidden width and with the number of examples, and a physical-limit line.

    python benchmarks/gradcheck_speed.py            # about two minutes on a 2-core machine
    python benchmarks/gradcheck_speed.py --quick    # fewer repeats and no scaling sweep
"""
import argparse
import os
import platform
import statistics
import time
import tracemalloc

import numpy as np
import scipy.optimize

import minidl as mdl
from minidl.gradcheck.engine import Evaluator as _Evaluator


def cat_network(hidden=20, seed=0):
    widths = [12288, hidden, 7, 5]
    layers = []
    for n_in, n_out in zip(widths, widths[1:]):
        layers += [mdl.Dense(n_in, n_out), mdl.ReLU()]
    layers += [mdl.Dense(widths[-1], 1), mdl.Sigmoid()]
    return mdl.Sequential(layers, seed=seed)


def examples(m, seed=0):
    data_dir = os.environ.get("MINIDL_DATA_DIR")
    if data_dir and os.path.isfile(os.path.join(data_dir, "train_catvnoncat.h5")) and m <= 209:
        X, Y, *_ = mdl.datasets.load_cat(data_dir)
        return X[:m], Y[:m], "cat images"
    rng = np.random.default_rng(seed)
    return rng.random((m, 12288)), rng.integers(0, 2, (m, 1)).astype(float), "random pixels"


def timed(fn, repeats):
    """Median seconds of ``repeats`` calls after one warm-up call, and the peak traced memory of one call (bytes)."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return statistics.median(times), peak, result


def side_by_side(a, b, repeats):
    """Median seconds of ``a`` and of ``b``, run alternately (a, b, a, b, ...) so that load hits both alike."""
    a(), b()
    times_a, times_b = [], []
    for _ in range(repeats):
        for fn, times in ((a, times_a), (b, times_b)):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
    return statistics.median(times_a), statistics.median(times_b)


# ------------------------------------------------------------------ the seed-course loop
def dictionary_to_vector(parameters):
    return np.concatenate([parameters[key].reshape(-1) for key in parameters])


def vector_to_dictionary(theta, shapes):
    parameters, start = {}, 0
    for key, shape in shapes.items():
        size = int(np.prod(shape))
        parameters[key] = theta[start:start + size].reshape(shape)
        start += size
    return parameters


def forward_cost(X, Y, parameters, n_layers):
    """The course's forward_propagation + compute_cost, examples as rows."""
    A = X
    for l in range(1, n_layers + 1):
        Z = A @ parameters[f"W{l}"] + parameters[f"b{l}"]
        A = np.maximum(Z, 0) if l < n_layers else 1 / (1 + np.exp(-Z))
    m = Y.shape[0]
    return float(-np.sum(Y * np.log(A) + (1 - Y) * np.log(1 - A)) / m)


def seed_loop(model, X, Y, coords, epsilon=1e-7):
    """gradapprox for the given flat coordinates, the way the seed notebook does it."""
    dense = [layer for layer in model.layers if isinstance(layer, mdl.Dense)]
    parameters = {}
    for l, layer in enumerate(dense, 1):
        parameters[f"W{l}"] = layer.params["W"]
        parameters[f"b{l}"] = layer.params["b"]
    shapes = {key: value.shape for key, value in parameters.items()}
    theta = dictionary_to_vector(parameters)
    gradapprox = np.zeros(len(coords))
    for n, i in enumerate(coords):
        thetaplus = np.copy(theta)
        thetaplus[i] = thetaplus[i] + epsilon
        J_plus = forward_cost(X, Y, vector_to_dictionary(thetaplus, shapes), len(dense))
        thetaminus = np.copy(theta)
        thetaminus[i] = thetaminus[i] - epsilon
        J_minus = forward_cost(X, Y, vector_to_dictionary(thetaminus, shapes), len(dense))
        gradapprox[n] = (J_plus - J_minus) / (2 * epsilon)
    return gradapprox


# --------------------------------------------------------------------------- helpers
def flat_cost(model, X, Y):
    """J(theta) and theta for the whole flattened parameter vector (float64 copy)."""
    ev = _Evaluator(model, X, Y)
    names = [name for name, _ in model.named_parameters()]
    theta = np.concatenate([a.ravel() for *_, a in ev.named_params()])
    return (lambda t: ev.cost_at(t, names)), theta, ev


def random_check_grad(J, g_flat, theta):
    """scipy's check_grad along one seeded random direction (``rng=`` since SciPy 1.15, ``seed=`` before)."""
    try:
        return scipy.optimize.check_grad(J, lambda t: g_flat, theta, direction="random", rng=np.random.default_rng(0))
    except TypeError:
        return scipy.optimize.check_grad(J, lambda t: g_flat, theta, direction="random", seed=0)


def noise_bound(report):
    """The largest rounding bound of the central differences at epsilon, over the report's parameters."""
    return max(float(np.max(g.sigma)) for g in report.groups) * 10 / report.epsilon


def numeric_of_report(report):
    return np.concatenate([g.numeric for g in report.groups])


def sample_coords(P, k, seed=0):
    return np.sort(np.random.default_rng(seed).choice(P, size=k, replace=False))


def fmt_bytes(n):
    return f"{n / 2 ** 20:8.1f} MB"


def row(name, checks, seconds, reference, peak, note=""):
    ratio = seconds / reference
    print(f"  {name:<34} {checks:<28} {seconds:>10.3f} s {ratio:>9.1f}x {fmt_bytes(peak)}  {note}")


# ----------------------------------------------------------------------------- main
def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats, no scaling sweep")
    parser.add_argument("--sample", type=int, default=300, help="coordinates timed for the per-coordinate methods")
    args = parser.parse_args()
    repeats = 1 if args.quick else 7

    model = cat_network()
    X, Y, source = examples(8)
    P = model.n_params
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"NumPy {np.__version__}; cat network 12288-20-7-5-1, P = {P:,}, m = 8 ({source})\n")

    t_full, peak_full, report = timed(lambda: model.gradcheck(X, Y, scipy_check=False), repeats)
    print(f"minidl full check: {report.summary()}")
    coords = sample_coords(P, args.sample)

    start = time.perf_counter()
    g_loop = seed_loop(model, X, Y, coords)
    t_loop_each = (time.perf_counter() - start) / len(coords)
    tracemalloc.start()
    seed_loop(model, X, Y, coords[:5])
    peak_loop = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    g_fast = numeric_of_report(report)[coords]
    agreement = np.linalg.norm(g_fast - g_loop) / (np.linalg.norm(g_fast) + np.linalg.norm(g_loop))
    worst_abs = np.max(np.abs(g_fast - g_loop))

    print(f"\n  {'method':<34} {'what it checks':<28} {'seconds':>12} {'vs minidl':>10} {'peak mem':>11}")
    t_default, t_bare = side_by_side(lambda: model.gradcheck(X, Y), lambda: model.gradcheck(X, Y, scipy_check=False),
                                     3 if args.quick else 40)
    ref = t_default     # the headline: the check as a user calls it, model.gradcheck(X, Y)
    row("minidl gradcheck, default settings", "every coordinate + scipy", t_default, ref, 0,
        f"interleaved medians of {3 if args.quick else 40}")
    row("minidl gradcheck, scipy_check=False", f"every coordinate ({P:,})", t_bare, ref, peak_full,
        f"scipy's cross-check on: {t_default / t_bare:.2f}x the check without it")
    X_cont = np.random.default_rng(1).random(X.shape)
    t_cont, peak_cont, _ = timed(lambda: model.gradcheck(X_cont, Y, scipy_check=False), repeats)
    row("minidl, continuous random inputs", "every coordinate", t_cont, ref, peak_cont,
        "no repeated input values")
    row("seed-course loop", "every coordinate (extrap.)", t_loop_each * P, ref, peak_loop,
        f"{t_loop_each * 1e3:.2f} ms/coord on {len(coords)}")

    J, theta, ev = flat_cost(model, X, Y)
    g_flat = np.concatenate([g.analytic for g in report.groups])
    # scipy: all directions on a sample of coordinates (the others held), extrapolated; one random direction.
    sub = coords[:100]

    def J_sub(values):
        t = theta.copy()
        t[sub] = values
        return J(t)
    start = time.perf_counter()
    scipy.optimize.check_grad(J_sub, lambda v: g_flat[sub], theta[sub])
    t_scipy_each = (time.perf_counter() - start) / len(sub)
    row("scipy check_grad, all directions", "every coordinate (extrap.)", t_scipy_each * P, ref, 0,
        f"forward differences, {len(sub)} timed")
    t_rand, peak_rand, _ = timed(lambda: random_check_grad(J, g_flat, theta), repeats)
    row("scipy check_grad, random direction", "one projection", t_rand, ref, peak_rand)

    try:
        import torch
    except ImportError:
        torch = None
        print(f"  {'torch.autograd.gradcheck':<34} {'not installed':<28}")
    if torch is not None:
        torch.set_num_threads(os.cpu_count())
        Xt, Yt = torch.from_numpy(X), torch.from_numpy(Y)
        shapes = [value.shape for _, value in model.named_parameters()]
        theta_t = torch.from_numpy(theta.copy())

        def torch_cost(flat):
            A, start, tensors = Xt, 0, []
            for shape in shapes:
                size = int(np.prod(shape))
                tensors.append(flat[start:start + size].reshape(shape))
                start += size
            for l in range(0, len(tensors), 2):
                Z = A @ tensors[l] + tensors[l + 1]
                A = torch.relu(Z) if l + 2 < len(tensors) else Z
            return torch.nn.functional.binary_cross_entropy_with_logits(A, Yt)

        sub_t = torch.from_numpy(coords[:100])

        def cost_of_sample(values):
            flat = theta_t.clone()
            flat[sub_t] = values
            return torch_cost(flat)
        values = theta_t[sub_t].clone().requires_grad_(True)
        start = time.perf_counter()
        torch.autograd.gradcheck(cost_of_sample, (values,), eps=1e-6, atol=1e-5, rtol=1e-3)
        t_torch_each = (time.perf_counter() - start) / len(sub_t)
        row("torch gradcheck, per element", "every coordinate (extrap.)", t_torch_each * P, ref, 0,
            f"{len(sub_t)} timed, torch {torch.__version__}")
        full = theta_t.clone().requires_grad_(True)
        t_fast, _, _ = timed(lambda: torch.autograd.gradcheck(torch_cost, (full,), eps=1e-6, atol=1e-5, rtol=1e-3,
                                                              fast_mode=True), repeats)
        row("torch gradcheck, fast_mode", "one projection", t_fast, ref, 0)

    print(f"\nagreement with the seed-course loop on {len(coords)} sampled coordinates: "
          f"difference {agreement:.2e} (||g_fast - g_loop|| / (||g_fast|| + ||g_loop||)), "
          f"largest |g_fast - g_loop| = {worst_abs:.1e} (float64 noise bound at epsilon 1e-7: ~{noise_bound(report):.0e})")
    print(f"speed-up over the seed-course loop: {t_loop_each * P / ref:.0f}x with default settings (target 100x, aim 300x)")

    physical_limit(model, X, t_full, t_cont)
    if not args.quick:
        scaling(repeats)


def dense_widths(model):
    return [(layer.n_in, layer.n_out) for layer in model.layers if isinstance(layer, mdl.Dense)]


def minimum_flops(model, m):
    """Floating-point work the exact check cannot avoid: for each perturbation (two per coordinate),
    the moved column through its activation, the rank-one update of the next layer's input, and every
    later layer's matrix product and activation, on m examples."""
    widths = dense_widths(model)
    total = 0
    for k, (n_in, n_out) in enumerate(widths):
        after = widths[k + 1:]
        per = m * 2                                    # the moved column and its activation
        if after:
            per += 2 * m * after[0][1] + m * after[0][1]   # rank-one update + activation
            per += sum(2 * m * a * b + m * b for a, b in after[1:])
        coords = n_in * n_out + n_out
        total += 2 * coords * per
    return total


def physical_limit(model, X, t_full, t_cont):
    flops = minimum_flops(model, X.shape[0])
    # (a) One large matmul of the same flop count, square-ish: the BLAS throughput ceiling of this machine.
    side = int(round((flops / 2) ** (1 / 3)))
    A, B = np.random.default_rng(0).random((side, side)), np.random.default_rng(1).random((side, side))
    A @ B
    t_square = statistics.median([_time(lambda: A @ B) for _ in range(5)])
    gflops = 2 * side ** 3 / t_square / 1e9
    bound = flops / (gflops * 1e9)
    # (b) Only the matrix products of that work, with the shapes they have: every perturbation of the
    # first layer's W through the later Dense layers (rank-one update, then 7x5, then 5x1), m rows each.
    widths = dense_widths(model)
    rows = 2 * widths[0][0] * widths[0][1] * X.shape[0]
    chunk = 400_000
    rng = np.random.default_rng(2)
    mats = [rng.random((n_in, n_out)) for n_in, n_out in widths[2:]]
    H = rng.random((chunk, widths[1][1]))

    def products():
        for _ in range(rows // chunk):
            A = H
            for W in mats:
                A = A @ W
    products()
    t_products = statistics.median([_time(products) for _ in range(3)])
    print(f"\nphysical limit: evaluating every perturbation (two per coordinate, through the layers after it, "
          f"m rows each) is at least {flops / 1e9:.2f} GFLOP.")
    print(f"  (a) at the speed of one large NumPy matmul ({side}x{side}, {gflops:.1f} GFLOP/s here): "
          f"{bound * 1e3:.1f} ms")
    print(f"  (b) the tall, skinny matrix products of that work alone, as NumPy runs them: {t_products * 1e3:.0f} ms")
    print(f"  minidl on the cat images: {t_full * 1e3:.0f} ms = {t_full / bound:.1f}x (a), {t_full / t_products:.1f}x "
          f"(b); the affine collapse evaluates only the loss for most perturbations, less work than (b) counts")
    print(f"  minidl on continuous inputs: {t_cont * 1e3:.0f} ms = {t_cont / bound:.1f}x (a), "
          f"{t_cont / t_products:.1f}x (b)")


def _time(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def scaling(repeats):
    print("\nscaling of the full check (m = 8 examples unless stated); memory = results kept per parameter "
          "(analytic, numeric, index, tolerance, ...) + a working set bounded by the chunk size:")
    print(f"  {'network':<20} {'m':>4} {'P':>11} {'seconds':>9} {'us/coord':>9} {'peak mem':>11} {'bytes/param':>12}")
    for hidden, m in [(5, 8), (20, 8), (80, 8), (320, 8), (20, 1), (20, 64)]:
        model = cat_network(hidden)
        X, Y, _ = examples(m)
        t, peak, _ = timed(lambda: model.gradcheck(X, Y, scipy_check=False), max(1, repeats // 2))
        print(f"  12288-{hidden}-7-5-1{'':<{7 - len(str(hidden))}} {m:>4} {model.n_params:>11,} {t:>9.3f} "
              f"{t / model.n_params * 1e6:>9.2f} {fmt_bytes(peak)} {peak / model.n_params:>12.0f}")
    print("\nworking set against the chunk size (12288-20-7-5-1, m = 8, continuous inputs): the results "
          "(~75 bytes per parameter) dominate the peak; the blocks in flight add what the chunk sets")
    model = cat_network(20)
    X, Y, _ = examples(8)
    X = np.random.default_rng(1).random(X.shape)
    for chunk in (500, 5000, 50000):
        t, peak, _ = timed(lambda: model.gradcheck(X, Y, scipy_check=False, chunk_size=chunk), 1)
        print(f"  chunk_size {chunk:>6,}: {t:.3f} s, peak {fmt_bytes(peak)}")


if __name__ == "__main__":
    main()
