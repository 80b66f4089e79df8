"""Video data for TimeSformer: decord clips with the authors' sampling, real datasets, synthetic tasks.

* :mod:`tsf.data.video`: :func:`read_clip` and the pure sampling functions;
* :mod:`tsf.data.transforms`: the authors' train / test transforms, in torch;
* :mod:`tsf.data.datasets`: Kinetics-style, Something-Something-V2 and folder datasets (one row
  each of ``DATASET_FORMATS``), with a policy for bad files;
* :mod:`tsf.data.synthetic`: the appearance / motion / long-range study tasks;
* :mod:`tsf.data.toy`: a toy clip with a known object, for demos and tests of attention maps;
* :mod:`tsf.data.check`: the ``check-data`` scanner.
"""

from .check import CheckReport, FileCheck, check_files, check_video
from .datasets import (
    DATASET_FORMATS,
    AnnotationError,
    BadVideoWarning,
    DatasetFormat,
    FolderDataset,
    KineticsDataset,
    SSv2Dataset,
    VideoDataset,
    mix_seed,
    read_class_names,
    read_dataset,
    read_kinetics_annotations,
    read_ssv2_annotations,
    read_ssv2_labels,
    scan_class_folders,
)
from .synthetic import (
    TASKS,
    SyntheticSample,
    SyntheticVideos,
    cue_visibility,
    make_synthetic,
    mirror_pairs,
    task_classes,
)
from .toy import moving_square
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
    "DATASET_FORMATS",
    "AnnotationError",
    "BadVideoWarning",
    "DatasetFormat",
    "CheckReport",
    "ClipSampling",
    "EvalTransform",
    "FileCheck",
    "FolderDataset",
    "FrameIndices",
    "KineticsDataset",
    "SSv2Dataset",
    "SyntheticSample",
    "SyntheticVideos",
    "TASKS",
    "TrainTransform",
    "VideoDataset",
    "VideoError",
    "VideoInfo",
    "check_files",
    "check_video",
    "cue_visibility",
    "decode_frames",
    "denormalize",
    "dense_indices",
    "load_clips",
    "make_synthetic",
    "mirror_pairs",
    "mix_seed",
    "moving_square",
    "normalize",
    "probe_video",
    "random_crop",
    "random_short_side_resize",
    "read_clip",
    "read_class_names",
    "read_clips",
    "read_dataset",
    "read_kinetics_annotations",
    "read_ssv2_annotations",
    "read_ssv2_labels",
    "scan_class_folders",
    "segment_indices",
    "short_side_resize",
    "spatial_crops",
    "task_classes",
    "write_video",
]
