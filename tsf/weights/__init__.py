"""Weights in and out: the authors' checkpoints, Hugging Face, ImageNet ViT inflation, safe loading.

``load_pretrained(source, **overrides)`` recognises a source by its keys (see
``tsf.weights.formats`` for the table of layouts), renames it to our names with one pure
adapter per format, infers the configuration from the tensor shapes (checked against the
source's own ``cfg`` / ``config.json``), and fits the weights to the requested configuration
(``tsf.weights.convert``). ``save_pretrained`` writes our safetensors format; ``to_hf`` exports
to Hugging Face transformers. Pickles are only read with ``torch.load(weights_only=True)``.
"""

from .convert import Adapted, adapt, inflate, load_pretrained, save_pretrained
from .formats import hf_timesformer_to_tsf, hf_vit_to_tsf, tsf_to_hf_timesformer
from .hf import to_hf
from .io import CheckpointError

__all__ = [
    "Adapted",
    "CheckpointError",
    "adapt",
    "hf_timesformer_to_tsf",
    "hf_vit_to_tsf",
    "inflate",
    "load_pretrained",
    "save_pretrained",
    "to_hf",
    "tsf_to_hf_timesformer",
]
