"""Under pytest-xdist (``-n 2``) each worker runs torch on one thread, so that two workers
share the two cores instead of four threads contending for them.

Inductor compilation is off for the tests (``LYAPBENCH_COMPILE=off``, inherited by the CLI and asv
subprocesses): 'auto' would compile in every run it takes as long (throughput's steady-state rows, the asv
benchmarks), 20-50 s each on a fresh machine.  The tests of compiling turn it on (``compiling`` fixture in
tests/test_capture.py)."""
import os

os.environ.setdefault("LYAPBENCH_COMPILE", "off")

if os.environ.get("PYTEST_XDIST_WORKER"):
    import torch

    torch.set_num_threads(1)
