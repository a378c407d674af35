"""Benchmarks: quality (`humaneval`, `holes`) and speed (`speculative`), with plots (`plots`).

Run them as `ghostfill bench …` or `python -m ghostfill.bench.cli …`; results go to
`bench/results/` (not tracked). docs/benchmarks.md records measured figures and commands.
"""
