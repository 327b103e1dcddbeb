"""InstanceV: Instance-Level Video Generation (IMCA, STAPE, SAUG) on Wan2.1; docs/methods/instancev.md.

- ``layers``     IMCA (Eq. 4) and STAPE (Eq. 6) modules, copies of a block's cross-attention
- ``denoiser``   ``InstanceVWan``: the Wan forward with IMCA in every block (owns the block loop)
- ``guidance``   SAUG (Eq. 7), registered as ``saug``
- ``transform``  per-sample instance checks and the ``<extra_id_k>`` sentinel embeddings
- ``config``     ``InstanceVConfig`` (conf/method/instancev.yaml)
- ``module``     ``InstanceVModule``: frozen backbone, SAUG dropout, sampling, layout-IoU evaluation
"""
