#!/usr/bin/env python3
"""Find the bug: break a network's backward pass the way the course does, and let the check name both mistakes.

    python scripts/find_the_bug.py            # the course's two mistakes: dW doubled, db with 4/m
    python scripts/find_the_bug.py --fixed    # the same network with both fixed: the check passes
"""
import argparse
import sys

import numpy as np

import minidl as mdl
import _cli as cli      # the scripts' own helpers, beside them


class MyDense(mdl.Dense):
    """A Dense written by hand, as a learner would, with two optional mistakes from the course."""

    double_dW = False      # dW2 = 2 * (1/m) dZ2 A1^T    in the course's broken backward pass
    four_over_m = False    # db1 = 4/m * sum(dZ1)        where 1/m belongs

    def backward(self, dZ):
        X = self._cached("X")
        dW = X.T @ dZ                      # dZ already carries the 1/m of the cost
        db = dZ.sum(axis=0)
        if self.double_dW:
            dW = 2 * dW
        if self.four_over_m:
            db = 4 * db
        self.grads["W"], self.grads["b"] = dW, db
        return dZ @ self.params["W"].T


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--fixed", action="store_true", help="leave both mistakes out")
    parser.add_argument("--seed", type=cli.non_negative_int, default=1, help="seed of the data and the model")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    rng = np.random.default_rng(args.seed)
    X = rng.standard_normal((8, 4))                       # the course's gradient-check data: 4 features
    Y = rng.integers(0, 2, (8, 1))
    first, second = MyDense(4, 5), MyDense(5, 3)
    model = mdl.Sequential([first, mdl.ReLU(), second, mdl.ReLU(), mdl.Dense(3, 1), mdl.Sigmoid()], seed=args.seed)
    if not args.fixed:
        second.double_dW = True      # layer 2's dW: the course's "dW2"
        first.four_over_m = True     # layer 0's db: the course's "db1"
    print(model)
    report = model.gradcheck(X, Y)
    print(report)
    return 0 if report.passed == args.fixed else 1


if __name__ == "__main__":
    sys.exit(main())
