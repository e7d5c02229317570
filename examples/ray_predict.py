"""finetext's classifier inside Ray Data: predict a Parquet dataset on a cluster (or one machine's cores).

Each Ray actor loads the model once; ``map_batches`` hands it pandas batches, to which it adds the columns
``finetext predict --input`` adds (predicted_label, score, prob_<label>; multi-label: predicted_labels and
prob_<label>). The output is a folder of Parquet files.

    pip install 'finetext[ray]'
    python examples/ray_predict.py outputs/reviews reviews/ predictions/ --concurrency 3   # 4 cores
    python examples/ray_predict.py outputs/reviews s3://bucket/reviews/ s3://bucket/predictions/ --address auto

Without --address it starts a local Ray instance (--num-cpus of this machine's cores); with --address auto it
joins a running cluster. On one machine `finetext predict --input` (a chunk at a time, resumable) or torchrun
(docs/performance.md) is simpler; Ray pays where the data and the workers are spread over machines.
"""

from __future__ import annotations

import argparse

import pandas as pd


class FinetextPredictor:
    """A Ray Data callable class: the model is loaded once per actor, then called on each batch."""

    def __init__(self, model_dir: str, text_column: str | None = None, text_pair_column: str | None = None,
                 batch_size: int = 32, precision: str = "auto"):
        from finetext.inference.loader import load_classifier_dir

        self.clf = load_classifier_dir(model_dir, precision=precision)
        self.text_column = text_column or self.clf.text_column
        self.text_pair_column = text_pair_column or self.clf.text_pair_column
        self.batch_size = batch_size

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        from finetext.inference.streaming import add_predictions

        return add_predictions(self.clf, batch, self.text_column, self.text_pair_column, self.batch_size)


def predict_dataset(model_dir: str, source: str, destination: str, text_column: str | None = None,
                    text_pair_column: str | None = None, batch_rows: int = 4096, batch_size: int = 32,
                    concurrency: int = 2, actor_cpus: float = 1.0, precision: str = "auto") -> None:
    """Read source (Parquet files), add the predictions in `concurrency` actors of `actor_cpus` CPUs each, write
    Parquet to destination. Leave Ray's reading and writing tasks a CPU: actors holding every CPU of the
    cluster wait for blocks that no task can be scheduled to read."""
    import ray

    ray.data.DataContext.get_current().execution_options.preserve_order = True  # output rows in input order
    dataset = ray.data.read_parquet(source)
    predicted = dataset.map_batches(
        FinetextPredictor, fn_constructor_kwargs={"model_dir": model_dir, "text_column": text_column,
                                                  "text_pair_column": text_pair_column, "batch_size": batch_size,
                                                  "precision": precision},
        batch_size=batch_rows, concurrency=concurrency, num_cpus=actor_cpus, batch_format="pandas")
    predicted.write_parquet(destination)


def default_concurrency(cluster_cpus: float, actor_cpus: float) -> int:
    """Actors that fit with one CPU left over: actors holding every CPU starve the read tasks (the job hangs)."""
    return max(1, int((cluster_cpus - 1) // actor_cpus))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dir", help="a finetext training run's or export's directory")
    parser.add_argument("source", help="Parquet file or folder (local path or a URI Ray reads: s3://, gs://, ...)")
    parser.add_argument("destination", help="folder for the output Parquet files")
    parser.add_argument("--text-column", help="default: the column the model was trained on")
    parser.add_argument("--text-pair-column")
    parser.add_argument("--batch-rows", type=int, default=4096, help="rows per Ray batch (per actor call)")
    parser.add_argument("--batch-size", type=int, default=32, help="texts per model batch")
    parser.add_argument("--concurrency", type=int, help="actors, each holding the model (default: as many as fit "
                        "in the cluster's CPUs with one CPU left for Ray's read and write tasks)")
    parser.add_argument("--actor-cpus", type=float, default=1.0, help="CPUs Ray reserves for each actor")
    parser.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto")
    parser.add_argument("--address", help="a running cluster ('auto' or ray://HOST:PORT); default: start one here")
    parser.add_argument("--num-cpus", type=int, help="CPUs of the local instance (default: all)")
    args = parser.parse_args()

    import ray

    ray.init(address=args.address, num_cpus=None if args.address else args.num_cpus, include_dashboard=False)
    try:
        concurrency = args.concurrency or default_concurrency(ray.cluster_resources().get("CPU", 1), args.actor_cpus)
        predict_dataset(args.model_dir, args.source, args.destination, args.text_column, args.text_pair_column,
                        args.batch_rows, args.batch_size, concurrency, args.actor_cpus, args.precision)
    finally:
        ray.shutdown()
    print(f"predictions written to {args.destination}")


if __name__ == "__main__":
    main()
