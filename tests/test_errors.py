"""Bad input at every public entry point: the right exception type, a message that names the argument,
and nothing changed (model, optimizer, files)."""
import numpy as np
import pytest

import minidl as mdl
from conftest import assert_unchanged, small_model, snapshot

X = np.random.default_rng(0).standard_normal((6, 5))
Y = np.array([0, 1, 1, 0, 1, 0])

ARRAYS = {
    "object": (np.array([[object()] * 5] * 6, dtype=object), mdl.InputTypeError, "dtype object"),
    "str": (np.full((6, 5), "1.0"), mdl.InputTypeError, "dtype <U3"),
    "bool": (np.ones((6, 5), dtype=bool), mdl.InputTypeError, "dtype bool"),
    "complex": (np.ones((6, 5), dtype=complex), mdl.InputTypeError, "dtype complex128"),
    "nan": (np.where(np.eye(6, 5) > 0, np.nan, 1.0), mdl.InputError, "must be finite; received NaN or inf"),
    "inf": (np.full((6, 5), np.inf), mdl.InputError, "must be finite"),
    "empty": (np.ones((0, 5)), mdl.InputError, "must not be empty"),
    "1-D": (np.ones(5), mdl.InputError, "must be a 2-D array"),
    "3-D": (np.ones((6, 5, 1)), mdl.InputError, "must be a 2-D array"),
    "wrong width": (np.ones((6, 4)), mdl.InputError, "has 4 features per example, but 5 were expected"),
    "ragged list": ([[1.0, 2.0], [3.0]], mdl.InputTypeError, "NumPy cannot convert"),
    "None": (None, mdl.InputTypeError, "must be a numeric array; received NoneType"),
}

LABELS = {
    "2 as a label": (np.array([0, 1, 2, 0, 1, 0]), "must hold labels in {0, 1}; received values [2.0]"),
    "0.5 as a label": (np.full(6, 0.5), "received values [0.5]"),
    "too few": (np.array([0, 1]), "must have shape (6, 1) to match X's 6 examples; received shape (2, 1)"),
    "2-D wide": (np.zeros((6, 2)), "received shape (6, 2)"),
    "3-D": (np.zeros((6, 1, 1)), "must be a 2-D array"),
    "nan": (np.full(6, np.nan), "must be finite"),
    "str": (np.array(["0"] * 6), "dtype <U1"),
}


def entry_points(model, optimizer):
    """(name, call taking X, call taking Y) for every public function that takes data."""
    trainer = mdl.Trainer(model, optimizer, epochs=1, progress=False)
    return [
        ("forward", lambda x: model.forward(x), None),
        ("predict", lambda x: model.predict(x), None),
        ("cost", lambda x: model.cost(x, Y), lambda y: model.cost(X, y)),
        ("gradients", lambda x: model.gradients(x, Y), lambda y: model.gradients(X, y)),
        ("backward", lambda x: model.backward(x, Y), lambda y: model.backward(X, y)),
        ("gradcheck", lambda x: model.gradcheck(x, Y), lambda y: model.gradcheck(X, y)),
        ("mdl.gradcheck", lambda x: mdl.gradcheck(model, x, Y), lambda y: mdl.gradcheck(model, X, y)),
        ("fit", lambda x: trainer.fit(x, Y), lambda y: trainer.fit(X, y)),
        ("fit validation", lambda x: trainer.fit(X, Y, validation=(x, Y)),
         lambda y: trainer.fit(X, Y, validation=(X, y))),
        ("train_val_split", lambda x: mdl.datasets.train_val_split(x, Y), lambda y: mdl.datasets.train_val_split(X, y)),
    ]


@pytest.mark.parametrize("case", ARRAYS)
def test_bad_X_everywhere(case, tmp_path):
    value, error, message = ARRAYS[case]
    model, optimizer = small_model(dropout=0.2), mdl.Adam(0.1)
    path = tmp_path / "m.h5"
    model.save(path)
    content = path.read_bytes()
    snap = snapshot(model)
    for name, call_x, _ in entry_points(model, optimizer):
        if case == "wrong width" and name == "train_val_split":
            continue                                  # it knows no model, so any width is fine
        with pytest.raises(error) as info:
            call_x(value)
        assert message in str(info.value), (name, str(info.value))
        assert "X" in str(info.value), name       # the argument is named (X or X_val)
    assert_unchanged(model, snap)
    assert optimizer.t == 0 and optimizer.state == {}
    assert path.read_bytes() == content


@pytest.mark.parametrize("case", LABELS)
def test_bad_Y_everywhere(case):
    value, message = LABELS[case]
    model, optimizer = small_model(), mdl.Adam(0.1)
    snap = snapshot(model)
    for name, _, call_y in entry_points(model, optimizer):
        if call_y is None:
            continue
        with pytest.raises((mdl.InputError, mdl.InputTypeError)) as info:
            call_y(value)
        assert message in str(info.value), (name, str(info.value))
        assert "Y" in str(info.value)
    assert_unchanged(model, snap)
    assert optimizer.t == 0


@pytest.mark.parametrize("call, error, message", [
    (lambda: mdl.gradcheck_layer("relu", X), mdl.InputTypeError, "layer must be a minidl Layer; received str"),
    (lambda: mdl.gradcheck_layer(mdl.Dense(4, 2), X), mdl.InputError, "X has 5 features per example, but 4"),
    (lambda: mdl.gradcheck_layer(mdl.ReLU(), X, dropout="yes"), mdl.InputError, "dropout must be one of"),
    (lambda: mdl.check_gradient(3, lambda t: t, np.ones(2)), mdl.InputTypeError, "J and dJ must be callables"),
    (lambda: mdl.check_gradient(lambda t: float(t.sum()), lambda t: np.ones(3), np.ones(2)), mdl.InputError,
     r"dJ(theta) must have theta's shape (2,); received shape (3,)"),
    (lambda: mdl.check_gradient(lambda t: "a", lambda t: t, np.ones(2)), mdl.InputTypeError,
     "J(theta) must be a real number; received str 'a'"),
    (lambda: mdl.check_gradient(lambda t: float("nan"), lambda t: t, np.ones(2)), mdl.InputError,
     "J(theta) must be a finite number"),
    (lambda: mdl.check_gradient(lambda t: 0.0, lambda t: t, np.array(["x"])), mdl.InputTypeError,
     "theta must hold real numbers"),
    (lambda: mdl.gradcheck("model", X, Y), mdl.InputTypeError, "model must be a minidl Sequential; received str"),
    (lambda: mdl.save("model", "x.h5"), mdl.InputTypeError, "model must be a minidl Sequential"),
    (lambda: small_model().save("x.h5", optimizer="adam"), mdl.InputTypeError, "optimizer must be a minidl Optimizer"),
    (lambda: mdl.load(3.5), mdl.InputTypeError, "path must be a file path (str or os.PathLike); received float"),
    (lambda: mdl.load_checkpoint("x.h5", custom_layers=["LeakyReLU"]), mdl.InputTypeError,
     "custom_layers must be a dict"),
    (lambda: mdl.datasets.load_cat(data_dir=42), mdl.InputTypeError, "data_dir must be a path"),
    (lambda: mdl.Trainer("model"), mdl.InputTypeError, "model must be a minidl Sequential; received str"),
    (lambda: mdl.Trainer(small_model(), patience=0), mdl.InputError, "patience must be >= 1; received patience=0"),
    (lambda: mdl.Trainer(small_model(), seed=1.5), mdl.InputTypeError, "seed must be an integer"),
    (lambda: small_model().gradcheck(X, Y, chunk_size=0), mdl.InputError, "chunk_size must be >= 1"),
    (lambda: small_model().gradcheck(X, Y, method="slow"), mdl.InputError, "method must be one of 'fast', 'loop'"),
    (lambda: mdl.Adam().load_state_dict([1]), mdl.InputTypeError, "state must be a dict with keys 't' and 'arrays'"),
])
def test_other_entry_points(call, error, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(error) as info:
        call()
    assert message in str(info.value)
    assert list(tmp_path.iterdir()) == []          # no file written, not even a temporary one


def test_errors_are_value_or_type_errors():
    for cls in (mdl.InputError, mdl.DataFileError, mdl.MissingDataFileError, mdl.CheckpointError):
        assert issubclass(cls, ValueError)
    assert issubclass(mdl.InputTypeError, TypeError)
    assert issubclass(mdl.MissingDataFileError, FileNotFoundError)
