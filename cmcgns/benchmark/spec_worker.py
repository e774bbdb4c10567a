"""One benchmark run under torchrun, started by a Ray task that holds several GPUs (or CPUs):

    python -m torch.distributed.run --standalone --nproc_per_node N -m cmcgns.benchmark.spec_worker SPEC ROW

Every rank runs the spec (`launch.execute`) inside one process group (NCCL on CUDA, gloo otherwise);
rank 0 writes the results row to ROW. SPEC is the RunSpec as JSON (`launch.spec_to_json`).
"""

from __future__ import annotations

import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    from cmcgns import distributed
    from cmcgns.benchmark.launch import execute, spec_from_json
    from cmcgns.io.atomic import write_json

    spec_path, row_path = Path(argv[0]), Path(argv[1])
    spec = spec_from_json(spec_path.read_text(encoding="utf-8"))
    distributed.init_from_env("nccl" if spec.device.startswith("cuda") else "gloo")
    try:
        row = execute(spec)
        if distributed.is_main():
            write_json(row_path, row)
    finally:
        distributed.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
