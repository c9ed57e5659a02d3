"""Under pytest-xdist (``-n 2``) each worker runs torch on one thread, so that two workers
share the two cores instead of four threads contending for them."""
import os

if os.environ.get("PYTEST_XDIST_WORKER"):
    import torch

    torch.set_num_threads(1)
