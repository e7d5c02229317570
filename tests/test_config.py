import dataclasses
from pathlib import Path

import pytest

from finetext.cli import build_parser, resolve_train_config
from finetext.config import config_from_flat, docs_markdown, field_doc, leaf_fields, load_yaml
from finetext.data.sources import KNOWN_DATASETS
from finetext.errors import FinetextError

REPO = Path(__file__).resolve().parents[1]


def parse(*argv):
    return resolve_train_config(build_parser().parse_args(["train", *argv]))


def test_every_field_has_a_docstring_and_a_flag():
    parser_help = build_parser()._subparsers._group_actions[0].choices["train"].format_help()
    for name, (section, _) in leaf_fields().items():
        assert field_doc(section, name), f"{name} has no docstring"
        assert "--" + name.replace("_", "-") in parser_help


def test_yaml_flat_or_sectioned_and_flags_override(tmp_path):
    (tmp_path / "flat.yaml").write_text("dataset: sst2\nlearning_rate: 3e-5\nepochs: 2\n")
    (tmp_path / "nested.yaml").write_text("data:\n  dataset: sst2\ntraining:\n  learning_rate: 3.0e-5\n  epochs: 2\n")
    flat, nested = parse(str(tmp_path / "flat.yaml")), parse(str(tmp_path / "nested.yaml"))
    assert flat == nested
    assert flat.training.learning_rate == 3e-5 and isinstance(flat.training.learning_rate, float)
    overridden = parse(str(tmp_path / "flat.yaml"), "--learning-rate", "1e-4", "--no-group-by-length",
                       "--train-samples", "100", "--label-names", "neg", "pos")
    assert overridden.training.learning_rate == 1e-4 and overridden.training.epochs == 2
    assert overridden.training.group_by_length is False
    assert overridden.data.train_samples == 100 and overridden.data.label_names == ["neg", "pos"]


def test_learning_rate_defaults_to_the_strategys_and_a_given_one_wins():
    assert [config_from_flat({"strategy": s}).model.default_learning_rate() for s in ("full", "top_k", "lora", "head")
            ] == [5e-5, 5e-5, 5e-4, 1e-3]
    assert config_from_flat({"strategy": "lora", "learning_rate": 1e-4}).training.learning_rate == 1e-4


def test_defaults_need_no_config_file():
    cfg = parse("--dataset", "sst2")
    assert cfg.data.dataset == "sst2" and cfg.training == type(cfg.training)()


@pytest.mark.parametrize(("values", "message"), [
    ({"learning_rat": 1}, "unknown config key 'learning_rat'"),
    ({"epochs": "three"}, "epochs must be a number; got 'three'"),
    ({"batch_size": 2.5}, "batch_size must be an integer"),
    ({"padding": "longest"}, "padding must be one of dynamic, max_length"),
    ({"metric_for_best_model": "auc"}, "metric_for_best_model 'auc' is not computed"),
    ({"early_stopping_patience": 2, "load_best_model_at_end": False}, "early_stopping_patience needs"),
    ({"validation_fraction": 1.5}, "validation_fraction must be between 0 and 1"),
    ({"strategy": "bitfit"}, "strategy must be one of full, head, top_k, lora, fewshot; got 'bitfit'"),
    ({"top_k": 0}, "top_k must be a positive integer, got 0"),
    ({"lora_rank": 0}, "lora_rank must be a positive integer, got 0"),
    ({"lora_dropout": 1}, "lora_dropout must be in \\[0, 1\\), got 1.0"),
    ({"threshold": 1.5}, "threshold must be between 0 and 1, got 1.5"),
])
def test_invalid_values_are_rejected_up_front(values, message):
    with pytest.raises(FinetextError, match=message):
        config_from_flat(values)


def test_docs_are_generated_from_the_config():
    assert (REPO / "docs" / "config.md").read_text() == docs_markdown(), "run: finetext config --docs > docs/config.md"


def test_every_example_config_is_valid_and_says_what_to_expect():
    examples = sorted((REPO / "examples").glob("*.yaml"))
    tasks = set()
    for path in examples:
        text = path.read_text()
        assert "Expected:" in text and "Runtime" in text, f"{path.name} must state its result and runtime"
        cfg = config_from_flat(load_yaml(path))
        if cfg.data.dataset:
            assert cfg.data.dataset in KNOWN_DATASETS
            tasks.add(cfg.data.dataset)
        else:  # offline recipe on a file of the full datasets beside the checkout, e.g. AG News' test split
            train_file = Path(cfg.data.train_file)
            assert train_file.parts[:3] == ("..", "shared", "data"), f"{path.name}: {train_file}"
            fixture = REPO / "tests" / "data" / train_file.relative_to("../shared/data")
            assert fixture.is_file(), f"{path.name}: tests/data has no sample of {train_file}"
            tasks.add(train_file.parent.name)
    assert {"imdb", "yelp_review_full", "glue/mrpc", "ag_news", "sst2", "sst5"} <= tasks


def test_resolved_config_round_trips_through_yaml(tmp_path):
    import yaml

    cfg = parse("--dataset", "mrpc", "--epochs", "4")
    again = config_from_flat(yaml.safe_load(yaml.safe_dump(cfg.to_dict())))
    assert dataclasses.asdict(again) == dataclasses.asdict(cfg)


def test_default_epochs_give_small_datasets_enough_updates():
    from finetext.config import TrainingConfig

    assert TrainingConfig().resolved_epochs(3668) == 6.0  # MRPC: 230 steps per epoch at batch size 16
    assert TrainingConfig().resolved_epochs(67349) == 1.0  # SST-2
    assert TrainingConfig().resolved_epochs(50) == 10.0
    assert TrainingConfig(epochs=2).resolved_epochs(50) == 2.0
    assert TrainingConfig(batch_size=8, gradient_accumulation_steps=4).resolved_epochs(3668) == 10.0
