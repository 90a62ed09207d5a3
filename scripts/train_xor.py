#!/usr/bin/env python3
"""Train the XOR network of the API (2-4-1, tanh, sigmoid) and print what it learned.

    python scripts/train_xor.py --debug      # with the gradient checks of the debug mode
"""
import argparse
import sys

import minidl as mdl
import _cli as cli      # the scripts' own helpers, beside them


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--epochs", type=cli.positive_int, default=500,
                        help="passes over the 4 examples (one update each)")
    parser.add_argument("--lr", type=cli.positive_float, default=0.05, help="Adam learning rate")
    parser.add_argument("--l2", type=cli.non_negative_float, default=0.0, help="L2 regularization strength")
    parser.add_argument("--dropout", type=cli.fraction, default=0.0, help="dropout rate after the hidden layer")
    parser.add_argument("--hidden", type=cli.positive_int, default=4, help="hidden units")
    parser.add_argument("--seed", type=cli.non_negative_int, default=0, help="seed of the model and the trainer")
    parser.add_argument("--debug", action="store_true",
                        help="check the gradients before training and after --gradcheck-after steps")
    parser.add_argument("--gradcheck-after", type=cli.positive_int, default=100, help="steps before the second check")
    parser.add_argument("--save", metavar="PATH", type=cli.output_path,
                        help="write the trained model to this HDF5 file")
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    X, Y = mdl.datasets.xor()
    try:
        cli.check_trainable([2, args.hidden, 1], "--hidden")
        layers = [mdl.Dense(2, args.hidden), mdl.Tanh()]
        layers += [mdl.Dropout(args.dropout)] if args.dropout else []
        model = mdl.Sequential(layers + [mdl.Dense(args.hidden, 1), mdl.Sigmoid()],
                               loss=mdl.BinaryCrossEntropy(l2=args.l2), seed=args.seed)
        trainer = mdl.Trainer(model, mdl.Adam(lr=args.lr), epochs=args.epochs, batch_size=4, seed=args.seed,
                              debug=args.debug or None, gradcheck_after=args.gradcheck_after)
    except (ValueError, TypeError) as exc:
        parser.error(str(exc))
    try:                      # Ctrl-C from the summary on ends in the message below, with --save honoured
        print(model, flush=True)
        initial_cost = model.cost(X, Y)
        history = trainer.fit(X, Y)
    except KeyboardInterrupt:
        return cli.interrupted(trainer, args.epochs, (lambda: save(model, args.save)) if args.save else None)
    except mdl.GradientCheckError as exc:
        print(exc, file=sys.stderr)
        return 1
    except mdl.NonFiniteError:
        return cli.say_diverged(initial_cost, float("nan"), args.lr, where=f"step {trainer.step + 1}")
    for step, report in history["gradchecks"]:
        print(f"\n--- gradient check at step {step} ---\n{report}")
    if cli.diverged(initial_cost, history):
        return cli.say_diverged(initial_cost, history["cost"][-1], args.lr)
    A = model.forward(X)
    print(f"\nafter {args.epochs} epochs: cost {history['cost'][-1]:.4f}, accuracy {history['accuracy'][-1]:.0%}")
    for x, y, a in zip(X, Y, A):
        print(f"  {x.astype(int).tolist()} -> {a[0]:.3f} (label {int(y[0])})")
    if args.save:
        save(model, args.save)
    return 0


def save(model, path):
    model.save(path)
    print(f"saved to {path}")


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(cli.INTERRUPTED)
