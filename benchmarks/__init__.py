"""Benchmarks: mlcycle against anchors measured in the same run, figures in docs/benchmarks.md.

Run from the repository root as `python -m benchmarks.<script>` (`serving`, `scoring`, `drift`,
`soak`). The pieces they share (the store, servers, process-tree memory, wrk, the docs
sections) live in `benchmarks.harness`. Not part of the wheel.
"""
