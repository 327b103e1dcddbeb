"""JDM: joint video + regional-mask denoising (Joint Distribution Modeling for fine-grained T2V).

- ``inflation``  ``module`` (JDMModule, Eq. 10-13)  ``loss_weighting`` (Eq. 13)  ``evaluation`` (Table 3)
- ``combinations`` (per-clip pool, the transform)  ``fresh_combinations`` (a new subset every step)
- ``cmi`` (`vidgen jdm cmi`)  ``cmi_estimator`` (Eq. 12)  ``cmi_shapes`` (shapes-world stand-in)
- ``signals`` (regional signal)  ``scene_signals`` (HED / depth)  ``filters`` (A.2 / A.6)
- ``cli``, ``eval_cli``: `vidgen jdm combos|cmi|signals|eval|filter`. Paper -> code: docs/methods/jdm.md.
"""

from vidgen.methods.jdm.inflation import inflate

__all__ = ["inflate"]
