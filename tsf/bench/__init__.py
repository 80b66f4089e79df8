"""Measuring: the one timer, summary and table renderer, and the benchmarks built on them.

Every result carries :func:`tsf.provenance.provenance` (machine, versions, load, command), the
one record of what ran it, which training runs and the study's figures use too.

* :mod:`tsf.bench.timing`: :func:`~tsf.bench.timing.time_interleaved` (rounds, the order rotated)
  and :func:`~tsf.bench.timing.quartiles`;
* :mod:`tsf.bench.table`: :func:`~tsf.bench.table.format_table`, plain text or markdown;
* :mod:`tsf.bench.memory`: peak CPU and GPU memory of a step, memory against clip length and crop;
* :mod:`tsf.bench.steps`: ours and Hugging Face's models on the same weights, and their steps;
* the benchmarks, the subcommands of ``python -m tsf bench``: :mod:`~tsf.bench.models` (``models``,
  tsf beside Hugging Face), :mod:`~tsf.bench.profile` (``profile``), :mod:`~tsf.bench.plots` (their
  figures), :mod:`~tsf.bench.data` (``data``), :mod:`~tsf.bench.synthetic` (``synthetic``),
  :mod:`~tsf.bench.rollout` (``explain``, ``attention-scores``).
"""
