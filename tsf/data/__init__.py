"""Video data for TimeSformer: decord clips with the authors' sampling, real datasets, synthetic tasks.

* :mod:`tsf.data.video`: :func:`read_clip` and the pure sampling functions;
* :mod:`tsf.data.transforms`: the authors' train / test transforms, in torch;
* :mod:`tsf.data.datasets`: Kinetics-style, Something-Something-V2 and folder datasets, with
  a policy for bad files;
* :mod:`tsf.data.synthetic`: the appearance / motion / long-range study tasks;
* :mod:`tsf.data.check`: the ``check-data`` scanner.
"""

from .transforms import (
    EvalTransform,
    TrainTransform,
    denormalize,
    normalize,
    random_crop,
    random_short_side_resize,
    short_side_resize,
    spatial_crops,
)
from .video import (
    ClipSampling,
    FrameIndices,
    VideoError,
    VideoInfo,
    decode_frames,
    dense_indices,
    load_clips,
    probe_video,
    read_clip,
    read_clips,
    segment_indices,
    write_video,
)

__all__ = [
    "ClipSampling",
    "decode_frames",
    "denormalize",
    "dense_indices",
    "EvalTransform",
    "FrameIndices",
    "load_clips",
    "normalize",
    "probe_video",
    "random_crop",
    "random_short_side_resize",
    "read_clip",
    "read_clips",
    "segment_indices",
    "short_side_resize",
    "spatial_crops",
    "TrainTransform",
    "VideoError",
    "VideoInfo",
    "write_video",
]
