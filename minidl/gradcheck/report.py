"""GradCheckReport: the verdict of a gradient check, per parameter and per coordinate, and its printout."""
import html

import numpy as np

from ..validation import check_int
from .engine import MOVE_LIMIT
from .scipy_check import scipy_sentence
from .verdict import RTOL

CORRECT = 1e-7       # difference at or below: correct
LOOK_AGAIN = 1e-5    # up to here: worth a second look
BUG = 1e-3           # at or beyond: a bug


class GradCheckReport:
    """The result of a gradient check.

    Attributes
    ----------
    passed : bool
        No coordinate is confirmed wrong (see :mod:`minidl.gradcheck.verdict`) and, for float32
        models and layers, the float32 gradients match the float64 ones within float32 rounding.
    difference : float
        ``||g - g_num|| / (||g|| + ||g_num||)`` over every checked coordinate except kinks;
        ``g_num`` is the central difference at epsilon, or the confirmed estimate where a
        coordinate was evaluated again at other steps.
    per_parameter : dict
        Parameter name -> difference over that parameter's checked coordinates.
    kinks : list of (name, index tuple)
        Coordinates whose perturbation crossed a non-differentiable point; not in the verdict.
    scipy : float or None
        ``scipy.optimize.check_grad`` on the same J(theta) and gradient (``||g - g_fd||_2``).
    scipy_info : dict
        What scipy's forward differences allow (``expected``; ``kinks`` of it for steps that cross a
        kink), whether its number is consistent with right gradients (``consistent``) and whether
        that ``agrees`` with ``passed``.
    dtype_check : dict or None
        For float32 models and layers: ``{"dtype", "wrong": {name: count}, "passed"}``, the
        model's own float32 backprop against its float64 backprop at the same weights.
    diagnosis : list of Finding
        Empty when the check passed. Otherwise one finding per wrong quantity: the function
        (``finding.function``, ``finding.layer``), the quantity, the kind of mistake when one
        fits (``finding.kind``: "factor", "zero", "l2", "transposed", "element", "row", "column",
        "range", ...; None when none does), the fitted numbers and a sentence
        (``finding.message``). See :mod:`minidl.gradcheck.diagnose`.
    isolation : str or None
        For a failed model check: which functions are wrong and that every other one is right.
    paths : dict
        Parameter name -> the engine's path that evaluated it (see :data:`minidl.gradcheck.engine.PATHS`).
    declarations : list of str
        What a user's layer declares (``elementwise``, ``rowwise``, ``kink_pattern``) and the data of the
        check contradicted, each with what the check did instead (see :mod:`minidl.contract`).
    epsilon, rtol : float
    """

    def __init__(self, groups, epsilon, scipy_info=None, title="model", layer_names=None, dtype_check=None,
                 declarations=(), paths=None):
        self.groups = groups
        self.declarations = list(declarations)
        self.paths = dict(paths or {})
        self.layer_names = layer_names
        self.epsilon = epsilon
        self.rtol = RTOL
        self.scipy_info = scipy_info or {}
        self.scipy = self.scipy_info.get("value")
        self.title = title
        self.dtype_check = dtype_check
        self.diagnosis = []
        self.isolation = None
        sums = np.zeros(3)      # ||g - g_num||^2, ||g||^2, ||g_num||^2 over every parameter
        for group in groups:
            keep = None if not group.kink.any() else ~group.kink
            parts = [x if keep is None else x[keep] for x in (group.error, group.analytic, group.numeric,
                                                                group.tolerance)]
            squares = np.array([np.dot(x, x) for x in parts[:3]])
            group.difference = _ratio(*squares)
            group.noise_only = bool(np.all(parts[0] <= parts[3]))
            sums += squares
        self.per_parameter = {grp.name: grp.difference for grp in groups}
        self.difference = _ratio(*sums)
        self.kinks = [(grp.name, _unravel(i, grp.shape)) for grp in groups
                      for i in grp.index[grp.kink]]
        self.n_checked = int(sum(grp.index.size for grp in groups))
        self.passed = bool(all(not grp.wrong.any() for grp in groups)
                           and (dtype_check is None or dtype_check["passed"]))

    def _group(self, name):
        for grp in self.groups:
            if grp.name == name:
                return grp
        raise KeyError(name)

    def parameter_ok(self, name):
        """True when no coordinate of the parameter is confirmed wrong (float32 check included)."""
        dtype_wrong = (self.dtype_check or {}).get("wrong", {}).get(name, 0)
        return not self._group(name).wrong.any() and not dtype_wrong

    def wrong(self, name=None):
        """Coordinates confirmed wrong: ``[(name, index tuple)]``, of one parameter or all."""
        groups = self.groups if name is None else [self._group(name)]
        return [(grp.name, _unravel(i, grp.shape)) for grp in groups for i in grp.index[grp.wrong]]

    @property
    def failed_parameters(self):
        """Names of the parameters that fail, in network order."""
        return [grp.name for grp in self.groups if not self.parameter_ok(grp.name)]

    @property
    def suspects(self):
        """Where the error most likely enters backprop: a list of layer indices, or None.

        With a diagnosis, the layers whose functions it found wrong (None when only the loss, the
        L2 term or gradients handed in are). Without one, a guess from the failing parameters:
        backprop runs from the loss towards the input, so a wrong derivative in layer j
        spoils the gradients of every parameter before j and none after. The suspects are
        the deepest layer with a failing parameter, every layer after it up to and including
        the next layer whose parameters pass (its own gradients can be right while the ``dX``
        it sends back is wrong), or up to the loss when no later parameter passes.
        """
        if self.passed or self.layer_names is None:
            return None
        if self._isolated:        # isolation checked each function: the layers it found, if any
            return sorted({f.layer for f in self.diagnosis if f.layer is not None}) or None
        if any(f.kind == "l2" for f in self.diagnosis):     # the L2 term's gradient: in no layer's backward
            return None
        failing = {int(name.split(".")[0]) for name in self.failed_parameters}
        if not failing:
            return None
        deepest = max(failing)
        later_ok = [int(g.name.split(".")[0]) for g in self.groups if int(g.name.split(".")[0]) > deepest]
        stop = min(later_ok) + 1 if later_ok else len(self.layer_names)
        return list(range(deepest, stop))

    @property
    def _isolated(self):
        """Isolation checked each of the model's functions and found the wrong ones (gradients handed in are
        classified, not isolated: for them the failing parameters still say where to look)."""
        return self.isolation is not None and bool(self.diagnosis)

    def _suspects_text(self):
        layers = self.suspects
        if not layers:
            return None
        names = ", ".join(f"{i}: {self.layer_names[i]}" for i in layers)
        end = "" if layers[-1] + 1 < len(self.layer_names) else ", or the loss's gradient"
        return (f"where to look: parameters up to layer {layers[0]} fail and none after, so the error enters "
                f"in the backward of layers [{names}]{end}, or in the gradients passed as grads=")

    def verdict(self, name=None):
        """The band of one parameter's difference (or the global one): ok, ok (noise), look again, BUG.

        "BUG (n wrong)" when coordinates are confirmed wrong; "ok (noise)" when the difference
        is above 1e-7 but every coordinate is within what rounding and truncation explain.
        """
        if name is None:
            diff = self.difference
            n_wrong = sum(int(grp.wrong.sum()) for grp in self.groups)
            noise_only = all(grp.noise_only for grp in self.groups)
        else:
            grp = self._group(name)
            diff, noise_only, n_wrong = grp.difference, grp.noise_only, int(grp.wrong.sum())
        if n_wrong:
            return f"BUG ({n_wrong:,} wrong)"
        if diff <= CORRECT:
            return "ok"
        if noise_only:
            return "ok (noise)"
        if diff <= LOOK_AGAIN:
            return "look again"
        return "likely bug" if diff < BUG else "BUG"

    def worst(self, k=5):
        """The ``k`` worst coordinates, worst first.

        Rows are ``(name, index tuple, analytic, numeric, relative error)`` where the relative
        error is ``|g - g_num| / (|g| + |g_num|)``. They are ordered by how far the error goes
        beyond the coordinate's tolerance (confirmed wrong coordinates first), so a wrong
        coordinate always ranks above a tiny gradient whose relative error is only noise.
        Kinks are left out.
        """
        k = check_int(k, "k", minimum=0)
        return [row[:5] for row in self._worst(k)]

    def _worst(self, k):
        """:meth:`worst`'s rows with a sixth entry: the error as a multiple of the coordinate's tolerance."""
        rows = []
        for grp in self.groups:
            ratio = grp.error / np.maximum(grp.tolerance, np.finfo(float).tiny)
            score = np.where(grp.kink, -np.inf, np.where(grp.wrong, 1 + ratio, np.minimum(ratio, 1)))
            top = np.argsort(-score, kind="stable")[:k]
            rows += [(score[i], grp.name, grp.index[i], grp.analytic[i], grp.numeric[i], ratio[i])
                     for i in top if np.isfinite(score[i])]
        rows.sort(key=lambda r: -r[0])
        shapes = {grp.name: grp.shape for grp in self.groups}
        return [(name, _unravel(i, shapes[name]), float(g), float(n), _relative(g, n), float(ratio))
                for _, name, i, g, n, ratio in rows[:k]]

    def summary(self):
        """One line: the verdict, the difference, where the worst coordinate is, and scipy's word."""
        status = "passed" if self.passed else "FAILED"
        line = (f"gradcheck {status}: difference {self.difference:.2e} over {self.n_checked:,} coordinates"
                f" ({len(self.kinks)} kinks)")
        if not self.passed:
            failing = self.failed_parameters
            line += f"; failing: {', '.join(failing)}"
            worst = self.worst(1)
            if worst and worst[0][0] in failing:
                name, index, g, n, _ = worst[0]
                line += f"; worst {name}{list(index)}: analytic {g:.6g}, numeric {n:.6g}"
            if self.dtype_check and not self.dtype_check["passed"]:
                line += f"; {self.dtype_check['dtype']} backprop differs from float64"
            if self.diagnosis:
                line += f"; diagnosis: {self.diagnosis[0].message}"
        if self.scipy_info:
            line += "; scipy " + ("agrees" if self.scipy_info["agrees"] else "DISAGREES")
        return line

    def __repr__(self):
        return f"<GradCheckReport {self.summary()}>"

    def _repr_html_(self):
        """The report in a notebook: the verdict coloured, the findings first, a row per parameter."""
        colour = "#1a7f37" if self.passed else "#cf222e"
        verdict = "PASSED" if self.passed else "FAILED"
        parts = [f"<p><b>Gradient check of {html.escape(self.title)}: <span style='color:{colour}'>{verdict}</span>"
                 f"</b> &nbsp; difference {self.difference:.2e} ({html.escape(self.verdict())}) over "
                 f"{self.n_checked:,} coordinates, epsilon {self.epsilon:g}</p>"]
        if self.diagnosis or self.isolation:
            items = ([f"<li><i>isolated:</i> {html.escape(self.isolation)}</li>"] if self.isolation else []) + \
                [f"<li>{html.escape(f.message)}</li>" for f in self.diagnosis]
            parts.append(f"<p><b>diagnosis</b></p><ul>{''.join(items)}</ul>")
        parts += [f"<p>declaration: {html.escape(note)}</p>" for note in self.declarations]
        rows = [(g.name, str(g.shape), f"{g.index.size:,}", f"{self.per_parameter[g.name]:.2e}",
                 f"{int(g.flagged.sum()):,}", f"{int(g.wrong.sum()):,}", self.verdict(g.name))
                for g in self.groups]
        parts.append(_html_table(rows, ("parameter", "shape", "checked", "difference", "flagged", "wrong",
                                        "verdict")))
        if self.kinks:
            parts.append(f"<p>kinks: {len(self.kinks)} coordinates crossed a non-differentiable point and are left "
                         f"out of the verdict</p>")
        return "".join(parts)

    def __str__(self):
        status = "PASSED" if self.passed else "FAILED"
        out = [f"Gradient check of {self.title}: {status}   difference {self.difference:.2e} "
               f"({self.verdict()}) over {self.n_checked:,} coordinates, epsilon {self.epsilon:g}, float64"]
        out += [f"declaration: {note}" for note in self.declarations]
        if self.isolation or self.diagnosis:
            out.append("diagnosis:")
            if self.isolation:
                out.append(f"  isolated: {self.isolation}")
            out += [f"  - {finding.message}" for finding in self.diagnosis]
        rows = [("parameter", "shape", "checked", "difference", "flagged", "wrong", "verdict")]
        for grp in self.groups:
            rows.append((grp.name, str(grp.shape), f"{grp.index.size:,}",
                         f"{self.per_parameter[grp.name]:.2e}", f"{int(grp.flagged.sum()):,}",
                         f"{int(grp.wrong.sum()):,}", self.verdict(grp.name)))
        out += _table(rows)
        worst = self._worst(5)
        if worst:
            out.append("worst coordinates (wrong ones first, then by error / tolerance):")
            out += _table([("parameter", "index", "analytic", "numeric", "rel. error", "error / tol.")] +
                          [(n, str(list(i)), f"{g: .6e}", f"{gn: .6e}", f"{r:.2e}", f"{x:.3g}")
                           for n, i, g, gn, r, x in worst])
        suspects = None if self._isolated else self._suspects_text()     # isolation says it better
        if suspects:
            out.append(suspects)
        if self.dtype_check is not None:
            check = self.dtype_check
            bad = {name: n for name, n in check["wrong"].items() if n}
            if check.get("left_out"):
                out.append(f"{check['dtype']} backprop: {check['left_out']} examples left out of the comparison, "
                           f"where a unit rounds across a kink in {check['dtype']}")
            for name, coarser in check.get("rounded", {}).items():
                out.append(f"{check['dtype']} backprop: every entry of {name} lies on {coarser}'s grid: the "
                           f"gradient is rounded through {coarser} inside the {check['dtype']} computation")
            if bad:
                listed = ", ".join(f"{name} ({n:,})" for name, n in bad.items())
                out.append(f"{check['dtype']} backprop: the model's own gradients in {check['dtype']} differ from "
                           f"its float64 gradients at the same weights beyond {check['dtype']} rounding in "
                           f"{listed}: a bug that shows only in {check['dtype']} (a dtype mix-up, an overflow)")
            else:
                out.append(f"{check['dtype']} backprop: the model's own gradients in {check['dtype']} match its "
                           f"float64 gradients within {check['dtype']} rounding")
        if self.paths:
            by_path = {}
            for name, path in self.paths.items():
                by_path.setdefault(path, []).append(name)
            out.append("paths: " + "; ".join(f"{path} ({', '.join(names)})" for path, names in by_path.items()))
        if self.kinks:
            shown = ", ".join(f"{n}{list(i)}" for n, i in self.kinks[:5])
            more = f" and {len(self.kinks) - 5} more" if len(self.kinks) > 5 else ""
            out.append(f"kinks: {len(self.kinks)} coordinates crossed a non-differentiable point "
                       f"(e.g. a ReLU input changed sign) and are left out of the verdict: {shown}{more}")
        for grp in self.groups:
            if grp.step is not None:
                scaled = grp.step < self.epsilon
                out.append(f"steps: {int(scaled.sum()):,} coordinates of {grp.name} meet inputs beyond "
                           f"{MOVE_LIMIT:g} and were moved by as little as {grp.step.min():.1e} instead of "
                           f"epsilon, so that no unit moves by more than {MOVE_LIMIT * self.epsilon:.0e} "
                           f"(a larger move is truncation, not the backward)")
        if self.scipy_info:
            info = self.scipy_info
            out.append(scipy_sentence(info, self.passed) +
                       f" ({info['directions']}, forward differences at h = {info['epsilon']:.1e}).")
        out.append(f"bands: difference <= {CORRECT:g} ok, <= {LOOK_AGAIN:g} look again, >= {BUG:g} bug. "
                   f"'flagged': beyond the rounding noise at epsilon; 'wrong': re-evaluated at other steps "
                   f"with a fourth-order stencil, and the discrepancy stayed beyond noise and truncation. "
                   f"'wrong' can exceed 'flagged': the largest gradients of every parameter are re-evaluated "
                   f"whatever the screen says, which finds errors below the noise at epsilon.")
        return "\n".join(out)


def _html_table(rows, header):
    cells = "".join(f"<th>{html.escape(c)}</th>" for c in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{cells}</tr></thead><tbody>{body}</tbody></table>"


def _ratio(error2, g2, g_num2):
    """``||g - g_num|| / (||g|| + ||g_num||)`` from the three squared norms (0 when both are 0)."""
    denominator = np.sqrt(g2) + np.sqrt(g_num2)
    return float(np.sqrt(error2) / denominator) if denominator > 0 else 0.0


def _relative(g, g_num):
    denominator = abs(g) + abs(g_num)
    return float(abs(g - g_num) / denominator) if denominator > 0 else 0.0


def _unravel(flat_index, shape):
    return tuple(int(i) for i in np.unravel_index(int(flat_index), shape))


def _table(rows):
    sizes = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    lines = ["  " + "  ".join(cell.ljust(size) for cell, size in zip(row, sizes)).rstrip() for row in rows]
    lines.insert(1, "  " + "  ".join("-" * size for size in sizes))
    return lines
