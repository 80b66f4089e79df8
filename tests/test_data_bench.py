"""The benchmark commands run, and the docs show what the committed results say."""

from __future__ import annotations

import shlex

from tsf.__main__ import canonical_argv
from tsf.bench.data import bench_loader, format_bench_data, make_bench_videos
from tsf.bench.synthetic import bench_generation, bench_training, format_bench_synthetic, format_cue_visibility

from .helpers import doc_block, doc_text


def test_bench_functions_run_on_small_inputs(tmp_path):
    paths = make_bench_videos(tmp_path, 1, seconds=1.0, height=64, width=80)
    rows = bench_loader(paths, workers=[0], clips=2, batch_size=2, num_frames=4, sampling_rate=2, crop_size=32)
    assert rows[0]["workers"] == 0 and rows[0]["clips"] == 2 and rows[0]["batch_shape"] == [2, 3, 4, 32, 32]
    assert bench_generation("motion", clips=5)["clips_per_s"] > 0
    assert bench_training("divided", preset_name="tiny", batch_size=2, steps=1, warmup=1)["clips_per_s"] > 0


def test_readme_data_numbers_come_from_the_committed_results(committed):
    data, synthetic = committed("bench_data"), committed("bench_synthetic")
    for result in (data, synthetic):
        assert {"date", "command", "machine"} <= set(result) and result["machine"]["versions"]["torch"]
    # recorded under the names before `bench` grouped them; canonical_argv runs them as `bench data` ...
    assert canonical_argv(shlex.split(data["command"])[3:])[:2] == ["bench", "data"]
    assert canonical_argv(shlex.split(synthetic["command"])[3:])[:2] == ["bench", "synthetic"]
    assert doc_block("docs/data-and-training.md", "bench-data") == format_bench_data(data).strip()
    assert doc_block("docs/data-and-training.md", "bench-synthetic") == format_bench_synthetic(synthetic).strip()
    assert doc_block("docs/data-and-training.md", "cue-visibility") == format_cue_visibility(synthetic).strip()
    readme = doc_text("docs/data-and-training.md")
    assert f"generates clips {synthetic['generation_over_fastest_training']:.0f}x faster" in readme
    assert (f"about\n{data['machine']['load_average_1min']:.1f} and {synthetic['machine']['load_average_1min']:.1f}"
            in readme)
