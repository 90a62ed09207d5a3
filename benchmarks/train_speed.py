#!/usr/bin/env python3
"""Time per training step (forward, backward, Adam update): minidl against PyTorch eager on the CPU.

The cat network 12288-20-7-5-1 on all 209 examples and the XOR network 2-4-1 on its 4 examples, in float64
and float32, both libraries with the same number of threads, measured side by side in one process.
PyTorch is optional (pip install -e ".[bench]"); without it only minidl's times are printed.

    python benchmarks/train_speed.py
"""
import argparse
import os
import platform
import statistics
import time

import numpy as np

import minidl as mdl


def minidl_step(widths, activation, X, Y, dtype):
    layers = []
    for n_in, n_out in zip(widths, widths[1:]):
        layers += [mdl.Dense(n_in, n_out), activation()]
    layers[-1] = mdl.Sigmoid()
    model = mdl.Sequential(layers, seed=0, dtype=dtype)
    optimizer = mdl.Adam(1e-3)
    X, Y = model.check_XY(X, Y)

    def step():
        model.trusted_backprop(X, Y, training=True)
        optimizer.step(model)
    return step


def torch_step(torch, widths, activation, X, Y, dtype):
    modules = []
    for n_in, n_out in zip(widths, widths[1:]):
        modules += [torch.nn.Linear(n_in, n_out, dtype=dtype), activation()]
    model = torch.nn.Sequential(*modules[:-1])            # logits; the loss applies the sigmoid
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    Xt, Yt = torch.from_numpy(X).to(dtype), torch.from_numpy(Y).to(dtype)

    def step():
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(Xt), Yt)
        loss.backward()
        optimizer.step()
    return step


def median_seconds(step, repeats, warmup=5):
    for _ in range(warmup):
        step()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=60, help="timed steps per configuration")
    args = parser.parse_args()
    try:
        import torch
    except ImportError:
        torch = None
    threads = os.cpu_count()
    if torch is not None:
        torch.set_num_threads(threads)
    print(f"machine: {platform.machine()}, {threads} cores, NumPy {np.__version__}, "
          f"PyTorch {torch.__version__ if torch else 'not installed'}; median of {args.repeats} steps, "
          f"{threads} threads each\n")

    data_dir = os.environ.get("MINIDL_DATA_DIR")
    if data_dir and os.path.isfile(os.path.join(data_dir, "train_catvnoncat.h5")):
        X_cat, Y_cat, *_ = mdl.datasets.load_cat(data_dir)
    else:
        rng = np.random.default_rng(0)
        X_cat, Y_cat = rng.random((209, 12288)), rng.integers(0, 2, (209, 1)).astype(float)
    X_xor, Y_xor = mdl.datasets.xor()
    cases = [("cat 12288-20-7-5-1, m=209", [12288, 20, 7, 5, 1], mdl.ReLU, "ReLU", X_cat, Y_cat),
             ("XOR 2-4-1, m=4", [2, 4, 1], mdl.Tanh, "Tanh", X_xor, Y_xor)]
    # minidl first, then PyTorch: PyTorch's OpenMP threads keep spinning for a while after each step and
    # would slow whatever NumPy runs right after them.
    results = {}
    for name, widths, activation, _, X, Y in cases:
        for dtype in (np.float64, np.float32):
            results[name, dtype] = [median_seconds(minidl_step(widths, activation, X, Y, dtype), args.repeats)]
    for name, widths, _, torch_activation, X, Y in cases:
        for dtype in (np.float64, np.float32):
            if torch is not None:
                tdtype = torch.float64 if dtype == np.float64 else torch.float32
                step = torch_step(torch, widths, getattr(torch.nn, torch_activation), X, Y, tdtype)
                results[name, dtype].append(median_seconds(step, args.repeats))
    print(f"  {'network':<28} {'dtype':<8} {'minidl':>11} {'PyTorch':>11} {'PyTorch / minidl':>17}")
    for (name, dtype), times in results.items():
        line = f"  {name:<28} {np.dtype(dtype).name:<8} {times[0] * 1e3:>8.3f} ms"
        if len(times) == 2:
            line += f" {times[1] * 1e3:>8.3f} ms {times[1] / times[0]:>16.2f}x"
        else:
            line += f" {'not installed':>11}"
        print(line)


if __name__ == "__main__":
    main()
