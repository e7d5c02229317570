"""Do trials leak memory? Peak RSS of a 1-trial study against a 20-trial study, each in its own process.

    .venv/bin/python bench/tune_memory.py                 # SST-2, 120 sentences, default model, 1 epoch a trial

Both studies train the packaged all-MiniLM-L6-v2 on the same 120 SST-2 sentences (max_length 32, one epoch,
the default search space otherwise, pruning off so every trial runs to the end, no final model). The target
(issue 16): the 20-trial study's peak RSS within 1.3x of the 1-trial study's.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from common import data_dir, print_machine, run_child


def study(trials: int, out: Path, data: str) -> dict:
    import finetext

    result = finetext.tune({"dataset": "sst2", "data_dir": data, "train_samples": 120, "eval_samples": 60,
                            "max_length": 32, "epochs": 1, "output_dir": str(out), "overwrite_output_dir": True,
                            "quiet": True}, trials=trials, pruner="none", final="none",
                            search_space=str(write_space(out.parent)))
    return {"trials": len(result.summary.trials), "states": result.summary.counts()}


def write_space(folder: Path) -> Path:
    path = folder / "space.yaml"  # epochs fixed at 1 so every trial is the same size
    path.write_text("learning_rate: {low: 1.0e-5, high: 2.0e-4, log: true}\nbatch_size: [16, 32]\n")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--data-dir", default=data_dir())
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # internal: run one study of this many trials
    parser.add_argument("--report", help=argparse.SUPPRESS)
    args = parser.parse_args()
    print_machine(args)
    if args.one:
        with tempfile.TemporaryDirectory() as tmp:
            figures = study(args.one, Path(tmp) / "study", args.data_dir)
        Path(args.report).write_text(json.dumps(figures))
        return
    peaks = {}
    for trials in (1, args.trials):
        figures, peak = run_child(__file__, ["--one", str(trials), "--data-dir", args.data_dir], f"{trials}-trial")
        peaks[trials] = peak
        print(f"{trials:>3}-trial study: peak RSS {peak:,.0f} MB ({figures['states']})")
    ratio = peaks[args.trials] / peaks[1]
    print(f"ratio {ratio:.2f} (target <= 1.30): {'met' if ratio <= 1.3 else 'missed'}")


if __name__ == "__main__":
    main()
