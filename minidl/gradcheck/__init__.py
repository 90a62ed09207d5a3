"""Gradient checking: backprop against central differences, coordinate by coordinate.

The recipe: flatten every parameter into ``theta``, perturb each coordinate by
``+-epsilon``, take ``g_num = (J(theta + e_i eps) - J(theta - e_i eps)) / (2 eps)`` and
compare with backprop's ``g`` through

    difference = ||g - g_num||_2 / (||g||_2 + ||g_num||_2).

Everything runs in float64 on a copy of the model, with dropout off (or one frozen mask)
and the L2 term in both the cost and the gradient (its central difference, ``(l2/m) w``, is
exact in closed form and adds no noise).

How ``passed`` is decided
-------------------------
A verdict must not be fooled either way, so it rests on a noise model, not on one threshold:

1. Screen. ``g_num`` carries rounding noise of about ``sigma / epsilon``, where ``sigma``
   comes from the magnitudes actually summed on the way to J (large inputs that later
   cancel, saturated probabilities, the dtype of float32 gradients); coordinates beyond it
   are *flagged*.
2. Confirm. Flagged coordinates are evaluated again at ``10 eps, 100 eps, ...`` with a
   fourth-order stencil whose error bar is measured. A bug's discrepancy stays put as the step
   changes; noise shrinks like 1/h and truncation is measured, so a coordinate is *wrong*
   only when the most precise estimate confirms it and the next one agrees.
3. Float32. A float32 model's own float32 backprop is compared with its float64 backprop at
   the same weights, judged by float32 rounding: bugs that exist only in float32 show.

``passed`` means no coordinate is wrong and the float32 comparison (if any) holds. The
bands people know stay in the text: a difference <= 1e-7 is "ok", above it "ok (noise)"
when rounding explains every coordinate, "look again" up to 1e-5, a bug beyond 1e-3.
Coordinates whose perturbation crossed a kink (a ReLU input changed sign) are listed in
``report.kinks`` and left out. Details: :mod:`minidl.gradcheck.verdict`; the fast and exact
evaluation of every coordinate: :mod:`minidl.gradcheck.engine`.

Modules: ``checks`` (the entry points below), ``engine`` (evaluation), ``verdict`` (screen and
confirmation), ``scipy_check`` (scipy's cross-check), ``precision`` (float32 against float64),
``diagnose`` (isolation and classification), ``report`` (GradCheckReport).
"""
from .checks import check_gradient, gradcheck, gradcheck_layer
from .report import GradCheckReport

__all__ = ["GradCheckReport", "gradcheck", "gradcheck_layer", "check_gradient"]
