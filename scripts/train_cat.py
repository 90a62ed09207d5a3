#!/usr/bin/env python3
"""Train the cat / non-cat classifier (12288-20-7-5-1, ReLU, Sigmoid) and print train and test accuracy.

    python scripts/train_cat.py --data-dir ../shared/data --debug
"""
import argparse
import os
import sys

import numpy as np

import minidl as mdl
import _cli as cli      # the scripts' own helpers, beside them

DEFAULTS = dict(layers="20,7,5", epochs=100, lr=1e-3, l2=0.3, dropout=0.0, batch_size=32, seed=0)


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--data-dir", default=os.environ.get("MINIDL_DATA_DIR") or None,
                        help="folder with train_catvnoncat.h5 and test_catvnoncat.h5 "
                             "(default: %(default)s, from $MINIDL_DATA_DIR)")
    parser.add_argument("--download", action="store_true", help="fetch the files into --data-dir if missing")
    parser.add_argument("--layers", default=DEFAULTS["layers"], help="hidden layer widths, comma-separated")
    parser.add_argument("--epochs", type=cli.positive_int, default=DEFAULTS["epochs"],
                        help="passes over the training set")
    parser.add_argument("--lr", type=cli.positive_float, default=DEFAULTS["lr"], help="Adam learning rate")
    parser.add_argument("--l2", type=cli.non_negative_float, default=DEFAULTS["l2"],
                        help="L2 regularization strength")
    parser.add_argument("--dropout", type=cli.fraction, default=DEFAULTS["dropout"],
                        help="dropout rate after the first hidden layer")
    parser.add_argument("--batch-size", type=cli.positive_int, default=DEFAULTS["batch_size"], help="mini-batch size")
    parser.add_argument("--seed", type=cli.non_negative_int, default=DEFAULTS["seed"],
                        help="seed of the model and the trainer")
    parser.add_argument("--no-center", action="store_true",
                        help="train on raw pixels instead of pixels minus the training set's mean image")
    parser.add_argument("--float32", action="store_true",
                        help="train in float32 (checked in float64, and float32 backprop against float64)")
    parser.add_argument("--val-split", type=cli.fraction, default=0.0,
                        help="fraction of the training set held out for validation (0: none)")
    parser.add_argument("--patience", type=cli.positive_int, default=None,
                        help="early stopping: epochs without validation improvement (needs --val-split)")
    parser.add_argument("--doctor", action="store_true",
                        help="print why the network would not learn (data, initialisation, activations, gradients, "
                             "learning rate) and exit without training")
    parser.add_argument("--debug", action="store_true",
                        help="check every gradient coordinate before training and after --gradcheck-after steps")
    parser.add_argument("--gradcheck-after", type=cli.positive_int, default=100, help="steps before the second check")
    parser.add_argument("--save", metavar="PATH", type=cli.output_path,
                        help="write the trained model to this HDF5 file")
    parser.add_argument("--plot", metavar="PATH", type=cli.output_path,
                        help="write a PNG of the cost and accuracy curves (needs matplotlib: pip install -e '.[plot]')")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def parse_layers(text, itemsize=8):
    parts = text.split(",")
    if any(not part.strip() for part in parts):
        raise ValueError(f"--layers must be comma-separated integers such as 20,7,5, with no empty item; "
                         f"received {text!r}")
    try:
        widths = [int(part) for part in parts]
    except ValueError:
        raise ValueError(f"--layers must be comma-separated integers such as 20,7,5; received {text!r}") from None
    if min(widths) < 1:
        raise ValueError(f"--layers must list positive widths such as 20,7,5; received {text!r}")
    cli.check_trainable([12288] + widths + [1], "--layers", itemsize)
    return widths


def build_model(widths, l2, dropout, seed, dtype):
    layers, n_in = [], 12288
    for i, width in enumerate(widths):
        layers += [mdl.Dense(n_in, width), mdl.ReLU()]
        if dropout and i == 0:
            layers.append(mdl.Dropout(dropout))
        n_in = width
    layers += [mdl.Dense(n_in, 1), mdl.Sigmoid()]
    return mdl.Sequential(layers, loss=mdl.BinaryCrossEntropy(l2=l2), seed=seed, dtype=dtype)


def fold_mean(model, mu):
    """Fold the centering into the first bias: (X - mu) @ W + b = X @ W + (b - mu @ W)."""
    first = model.layers[0].params
    first["b"] -= (mu @ first["W"]).astype(first["b"].dtype)


def save(model, path):
    model.save(path)
    print(f"saved to {path}")


def plot(history, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ValueError("--plot needs matplotlib: pip install -e '.[plot]'") from None
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    epochs = np.arange(1, len(history["cost"]) + 1)
    left.plot(epochs, history["cost"], label="train")
    right.plot(epochs, history["accuracy"], label="train")
    if history["val_cost"]:
        left.plot(epochs, history["val_cost"], label="validation")
        right.plot(epochs, history["val_accuracy"], label="validation")
    left.set(xlabel="epoch", ylabel="cost J", title="cost")
    right.set(xlabel="epoch", ylabel="accuracy", title="accuracy")
    for axis in (left, right):
        axis.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.data_dir is None:
        parser.error("no data folder: pass --data-dir DIR or set MINIDL_DATA_DIR (see data/README.md)")
    try:
        widths = parse_layers(args.layers, 4 if args.float32 else 8)      # before any data is read
    except ValueError as exc:
        parser.error(str(exc))
    try:
        X_train, Y_train, X_test, Y_test, _ = mdl.datasets.load_cat(args.data_dir, download=args.download)
    except (mdl.DataFileError, OSError) as exc:
        parser.error(str(exc))
    try:
        if args.plot:
            import importlib.util
            if importlib.util.find_spec("matplotlib") is None:
                raise ValueError("--plot needs matplotlib: pip install -e '.[plot]'")
        model = build_model(widths, args.l2, args.dropout, args.seed, np.float32 if args.float32 else np.float64)
        validation = None
        if args.val_split:
            X_train, Y_train, X_val, Y_val = mdl.datasets.train_val_split(X_train, Y_train, args.val_split,
                                                                          seed=args.seed)
            validation = (X_val, Y_val)
        elif args.patience is not None:
            raise ValueError("--patience needs --val-split")
        trainer = mdl.Trainer(model, mdl.Adam(lr=args.lr), epochs=args.epochs, batch_size=args.batch_size,
                              seed=args.seed, debug=args.debug or None, gradcheck_after=args.gradcheck_after,
                              progress=not args.no_progress, patience=args.patience)
    except (ValueError, TypeError) as exc:
        parser.error(str(exc))
    print(model, flush=True)
    if args.doctor:
        mu = np.zeros(X_train.shape[1]) if args.no_center else X_train.mean(axis=0)
        print(mdl.doctor(model, X_train - mu, Y_train, trainer.optimizer, seed=args.seed))
        return 0
    # Centering (pixels minus the training set's mean image) keeps the ReLUs of the first layer from all
    # switching on or off together; it is folded into the first bias after training, so the model that is
    # evaluated and saved takes raw pixels: (X - mu) @ W + b = X @ W + (b - mu @ W).
    mu = np.zeros(X_train.shape[1]) if args.no_center else X_train.mean(axis=0)

    def fold_and_save():
        fold_mean(model, mu)
        save(model, args.save)

    try:
        initial_cost = model.cost(X_train - mu, Y_train)
        history = trainer.fit(X_train - mu, Y_train,
                              validation=None if validation is None else (validation[0] - mu, validation[1]))
    except KeyboardInterrupt:
        return cli.interrupted(trainer, args.epochs, fold_and_save if args.save else None)
    except mdl.GradientCheckError as exc:
        print(exc, file=sys.stderr)
        return 1
    except mdl.NonFiniteError:
        return cli.say_diverged(initial_cost, float("nan"), args.lr, where=f"step {trainer.step + 1}")
    if cli.diverged(initial_cost, history):
        return cli.say_diverged(initial_cost, history["cost"][-1], args.lr)
    fold_mean(model, mu)
    stopped = cli.early_stopping_line(trainer)
    if stopped:
        print(stopped)
    # The metrics of the model that is kept (after early stopping: the best epoch's weights).
    cost, train_accuracy = model.evaluate(X_train, Y_train)
    test_accuracy = model.evaluate(X_test, Y_test)[1]
    print(f"epochs {len(history['cost'])}  cost {cost:.4f}  "
          f"train accuracy {train_accuracy:.1%}  test accuracy {test_accuracy:.1%}")
    if args.save:
        save(model, args.save)
    if args.plot:
        try:
            plot(history, args.plot)
        except ValueError as exc:
            print(exc, file=sys.stderr)
            return 2
        print(f"plot written to {args.plot}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:          # outside training (loading data, evaluating): nothing to save
        print("interrupted", file=sys.stderr)
        sys.exit(cli.INTERRUPTED)
