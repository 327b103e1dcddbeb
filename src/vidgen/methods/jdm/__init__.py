"""JDM: joint video + regional-mask denoising (Joint Distribution Modeling for fine-grained T2V).

- ``inflation``       grow a registry backbone's input/output projections C -> 2C (zero init)
- ``module``          ``JDMModule``: joint noising, dynamic loss weighting, joint sampling, mask eval
- ``loss_weighting``  Eq. 12-13 weight w' and the one-pass / two-pass estimators
- ``combinations``, ``cmi``, ``filters``, ``cli``  the data side (mask-caption combinations, CMI, filters)
"""

from vidgen.methods.jdm.inflation import inflate

__all__ = ["inflate"]
