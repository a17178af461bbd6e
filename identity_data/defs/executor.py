"""The default executor of every job, including the daemon's runs and `dg dev` launches.

In-process: each step of this graph is light next to what a fresh Python costs (the multiprocess
executor re-imports the code location per step, ~4 CPU-s each), and the one heavy step,
annotation, keeps its own warm process pool (defs/annotations/infer.py). benchmarks/pipeline.py
measures an empty day's whole production chain against one import of the definitions.
"""

import dagster as dg


@dg.definitions
def executor() -> dg.Definitions:
    return dg.Definitions(executor=dg.in_process_executor)
