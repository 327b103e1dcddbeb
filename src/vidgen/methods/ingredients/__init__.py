"""Ingredients (Fei et al. 2025, arXiv:2501.01790): multi-ID video customisation on CogVideoX-5B-I2V.

- projector.py  the multi-scale Q-Former projector (Sec. 3.2)
- injection.py  the perceiver cross-attention (Eq. 2) and routed residual (Eq. 4)
- router.py     the ID router (Eq. 3)
- losses.py     ID-mask labels on the token grid and the routing loss (Eq. 5)
- denoiser.py   CogVideoX with face injections after chosen blocks
- config.py, composite.py, module.py  config, global composite (Table 2), the LightningModule
"""
