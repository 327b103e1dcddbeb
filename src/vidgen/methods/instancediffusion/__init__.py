"""InstanceDiffusion: Instance-level Control for Image Generation (CVPR 2024, arXiv 2402.03290).

- ``locations``  box / point / scribble / polygon points from the shapes world's boxes and masks
- ``tokenizers`` UniFusion: one Fourier + MLP tokenizer per format, the mask (seg) branch, drops
- ``maskattn``   MaskAttn: the instance mask of the fusion self-attention (Eq. 2)
- ``scaleu``     ScaleU on a U-Net's decoder (hooks), FreeU through diffusers (Table 6a)
- ``sampler``    the multi-instance sampler, registered as guidance ``mis``
- ``config``     ``InstanceDiffusionConfig`` (conf/method/instancediffusion.yaml)
"""
