"""The notebook in notebooks/ runs top to bottom and shows what its text says (executed with nbclient)."""
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_check_your_backprop_notebook_runs_and_finds_both_mistakes():
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    path = os.path.join(ROOT, "notebooks", "check_your_backprop.ipynb")
    notebook = nbformat.read(path, as_version=4)
    assert all(not cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code")   # committed clean
    nbclient.NotebookClient(notebook, timeout=120, kernel_name="python3",
                            resources={"metadata": {"path": ROOT}}).execute()
    texts, html = [], []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            texts.append(output.get("text", ""))
            html.append(output.get("data", {}).get("text/html", ""))
    text = "".join(texts)
    assert "Your backward propagation works perfectly fine! difference = " in text
    assert "There is a mistake in the backward propagation! difference = " in text
    assert "factor 2 - grads: dW2 is 2 times the right value" in text
    assert "factor 4 - grads: db1 is 4 times the right value" in text
    assert "TqdmWarning" not in text
    assert "gradcheck passed" in text                                     # the one-parameter exercise
    rendered = "".join(html)
    assert "<table>" in rendered and "PASSED" in rendered                  # the report as a table
    assert "<th>cost</th>" in rendered and "gradient checks" in rendered  # the history
    assert "Dense(4, 5)" in rendered                                       # the model summary
