"""Which SST-2 `make demo` trains on: the full data beside the checkout, else the Hub, else the sample
shipped in tests/data. Prints the --data-dir flag for `finetext train`; says on stderr when it falls back.

    python examples/demo_data.py DATA_DIR
"""

from __future__ import annotations

import sys
from pathlib import Path

from finetext.hub import hub_unreachable_reason

SAMPLE = Path(__file__).resolve().parents[1] / "tests" / "data"


def main(data_dir: str) -> str:
    if (Path(data_dir) / "sst2" / "train.parquet").is_file():
        return f"--data-dir {data_dir}"
    if (reason := hub_unreachable_reason()) is None:
        print(f"demo: no SST-2 in {data_dir}: loading it from the Hugging Face Hub", file=sys.stderr)
        return "--data-dir none"
    print(f"demo: no SST-2 in {data_dir} and the Hugging Face Hub is unreachable ({reason}): training on the "
          f"2,000-sentence sample shipped in {SAMPLE / 'sst2'} (expect lower scores than with the full data)",
          file=sys.stderr)
    return f"--data-dir {SAMPLE}"


if __name__ == "__main__":
    print(main(sys.argv[1]))
