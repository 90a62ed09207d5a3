#!/usr/bin/env python3
"""Check a learner's own course-style L-layer network with minidl's drop-in gradient_check_n.

    python scripts/course_gradcheck.py                 # the cat data ($MINIDL_DATA_DIR), or random data
    python scripts/course_gradcheck.py --loop-sample 200

The network below is written the way the course writes it (parameters W1, b1, ...; examples in
columns). The script checks its gradients three ways: correct, then with the course's two classic
mistakes (dW2 doubled, db1 with 4/m), and times the drop-in check next to the course's own loop
(which evaluates the whole forward pass twice per coordinate; timed on a sample, extrapolated).
"""
import argparse
import os
import sys
import time

import numpy as np

import minidl as mdl
import _cli as cli      # the scripts' own helpers, beside them


# ---------------------------------------------------------------- the learner's code, course conventions
def initialize_parameters(layer_dims, rng):
    parameters = {}
    for l in range(1, len(layer_dims)):
        parameters[f"W{l}"] = rng.standard_normal((layer_dims[l], layer_dims[l - 1])) / np.sqrt(layer_dims[l - 1])
        parameters[f"b{l}"] = np.zeros((layer_dims[l], 1))
    return parameters


def L_model_forward(X, parameters):
    L = len(parameters) // 2
    A, caches = X, []
    for l in range(1, L + 1):
        Z = parameters[f"W{l}"] @ A + parameters[f"b{l}"]
        caches.append((A, Z))
        A = np.maximum(Z, 0) if l < L else 1 / (1 + np.exp(-Z))
    return A, caches


def compute_cost(AL, Y, parameters, lambd):
    m = Y.shape[1]
    L = len(parameters) // 2
    l2 = lambd / (2 * m) * sum(np.sum(np.square(parameters[f"W{l}"])) for l in range(1, L + 1))
    return float(-np.sum(Y * np.log(AL) + (1 - Y) * np.log(1 - AL)) / m + l2)


def L_model_backward(AL, Y, caches, parameters, lambd, broken=False):
    grads, m, L = {}, Y.shape[1], len(caches)
    dZ = AL - Y
    for l in range(L, 0, -1):
        A_prev, _ = caches[l - 1]
        grads[f"dW{l}"] = dZ @ A_prev.T / m + lambd / m * parameters[f"W{l}"]
        grads[f"db{l}"] = np.sum(dZ, axis=1, keepdims=True) / m
        if broken and l == 2:
            grads["dW2"] = 2 * grads["dW2"]                               # the course's first mistake
        if broken and l == 1:
            grads["db1"] = 4 * np.sum(dZ, axis=1, keepdims=True) / m      # the second: 4/m where 1/m belongs
        if l > 1:
            dA = parameters[f"W{l}"].T @ dZ
            dZ = dA * (caches[l - 2][1] > 0)
    return grads


def course_loop(parameters, gradients, X, Y, lambd, coordinates, epsilon=1e-7):
    """The course's gradient_check_n on some coordinates: theta as a vector, a whole forward pass per side."""
    keys = [f"{n}{l}" for l in range(1, len(parameters) // 2 + 1) for n in "Wb"]
    theta = np.concatenate([parameters[k].ravel() for k in keys])
    shapes = [parameters[k].shape for k in keys]

    def to_dict(vector):
        out, offset = {}, 0
        for k, shape in zip(keys, shapes):
            size = int(np.prod(shape))
            out[k] = vector[offset:offset + size].reshape(shape)
            offset += size
        return out

    gradapprox = []
    for i in coordinates:
        plus, minus = theta.copy(), theta.copy()
        plus[i] += epsilon
        minus[i] -= epsilon
        J_plus = compute_cost(L_model_forward(X, to_dict(plus))[0], Y, to_dict(plus), lambd)
        J_minus = compute_cost(L_model_forward(X, to_dict(minus))[0], Y, to_dict(minus), lambd)
        gradapprox.append((J_plus - J_minus) / (2 * epsilon))
    return theta.size, np.array(gradapprox)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--data-dir", default=os.environ.get("MINIDL_DATA_DIR") or None,
                        help="folder with the cat files (default: %(default)s, from $MINIDL_DATA_DIR); "
                             "random data of the same shape without it")
    parser.add_argument("--examples", type=cli.positive_int, default=8, help="examples in the check's batch")
    parser.add_argument("--lambd", type=cli.non_negative_float, default=0.0, help="the course's L2 strength")
    parser.add_argument("--loop-sample", type=cli.positive_int, default=100,
                        help="coordinates the course's loop is timed on (then extrapolated)")
    parser.add_argument("--seed", type=cli.non_negative_int, default=1)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    if args.data_dir:
        try:
            X_train, Y_train, *_ = mdl.datasets.load_cat(args.data_dir)
        except mdl.DataFileError as exc:
            parser.error(str(exc))
        X, Y, source = X_train[:args.examples].T, Y_train[:args.examples].T, "the first cat images"
    else:
        X = rng.random((12288, args.examples))
        Y = (rng.random((1, args.examples)) > 0.5).astype(float)
        source = "random data (set MINIDL_DATA_DIR for the cat images)"
    parameters = initialize_parameters([12288, 20, 7, 5, 1], rng)
    AL, caches = L_model_forward(X, parameters)
    cost = compute_cost(AL, Y, parameters, args.lambd)
    print(f"the course's 4-layer network 12288-20-7-5-1 on {source}, m = {X.shape[1]}, lambd = {args.lambd:g}\n")

    for title, broken in (("your backward pass", False), ("the course's broken backward pass", True)):
        gradients = L_model_backward(AL, Y, caches, parameters, args.lambd, broken)
        start = time.perf_counter()
        report = mdl.course.gradient_check_n(parameters, gradients, X, Y, lambd=args.lambd, cost=cost)
        seconds = time.perf_counter() - start
        print(f"--- {title}: minidl.course.gradient_check_n, every coordinate, {seconds:.2f} s ---")
        print(report, "\n")

    gradients = L_model_backward(AL, Y, caches, parameters, args.lambd)
    coordinates = np.sort(rng.choice(245_973, size=args.loop_sample, replace=False))
    start = time.perf_counter()
    P, _ = course_loop(parameters, gradients, X, Y, args.lambd, coordinates)
    per = (time.perf_counter() - start) / coordinates.size
    times = {}
    for settings in ({}, {"scipy_check": False}):
        runs = []
        for _ in range(5):
            start = time.perf_counter()
            mdl.course.gradient_check_n(parameters, gradients, X, Y, lambd=args.lambd, **settings)
            runs.append(time.perf_counter() - start)
        times["defaults" if not settings else "scipy_check=False"] = sorted(runs)[2]
    drop_in = times["defaults"]
    print(f"timing, side by side: the course's loop {per * 1e3:.2f} ms per coordinate, so {per * P:.0f} s for all "
          f"{P:,}; minidl's drop-in check of all of them, median of 5: {drop_in:.3f} s with the default settings "
          f"({per * P / drop_in:,.0f}x faster), {times['scipy_check=False']:.3f} s with scipy_check=False")
    return 0


if __name__ == "__main__":
    sys.exit(main())
