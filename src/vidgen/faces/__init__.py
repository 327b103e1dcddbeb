"""Face components shared by identity-preserving methods (Ingredients, arXiv 2501.01790, Sec. 3.1).

- extractor.py    FacesConfig, FaceEmbeddings, FacialExtractor (ArcFace ++ EVA02-CLIP, local features)
- eva_clip.py     the EVA02-CLIP vision tower (real L-14-336 / tiny), loaded from a local folder
- recognition.py  ArcFace via onnxruntime (antelopev2) / tiny random-init twin; cosine
- canvas.py       the global composite: crops pasted on a white 720 x 480 canvas
"""

from vidgen.faces.canvas import compose_canvas
from vidgen.faces.extractor import FaceEmbeddings, FacesConfig, FacialExtractor

__all__ = ["FaceEmbeddings", "FacesConfig", "FacialExtractor", "compose_canvas"]
