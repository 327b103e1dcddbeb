"""STIV (Lin et al. 2024, arXiv:2412.07730): the T2I / T2V recipe on the native STIV DiT (part 1) and
TI2V / V2V / TUP by frame replacement with JIT-CFG (part 2).

objective.py    Eq. 1-2 flow matching as printed (t = 0 noise, t = 1 data) and the SD-DDPM baseline
masking.py      MaskDiT token masking (Sec. 2.2) and the loss on kept tokens
guidance.py     CFG renormalisation (Sec. D) "cfg_renorm"; JIT-CFG (Sec. 2.3.2) "jit_cfg"
conditioning.py frame replacement (Sec. 2.3.1) and independent text / image dropout (Sec. E)
progressive.py  progressive initialisation (Sec. 2.4, E; Tables 4, 15-17): T2I -> T2V, resolution, frames
flops.py        training FLOPs per stage (Tables 14-15)
module.py       STIVModule(DiffusionModule)
The backbone is vidgen.backbones.stiv_dit (stiv-xl / stiv-xxl / stiv-m).
"""
