"""Class weights: resolved as sklearn does, applied in the loss of both engines."""

import json

import numpy as np
import pytest
import torch
from conftest import tiny_run
from sklearn.utils.class_weight import compute_class_weight

import finetext
from finetext.config import config_from_flat
from finetext.errors import FinetextError
from finetext.training.objective import Objective, resolve_class_weights

# Every test here trains, exports or starts processes (seconds to minutes each): make test-fast skips them.
pytestmark = pytest.mark.slow

NAMES = ["neg", "neu", "pos"]


def test_balanced_weights_are_sklearns():
    labels = np.array([0] * 60 + [1] * 30 + [2] * 10)
    expected = compute_class_weight("balanced", classes=np.arange(3), y=labels)
    assert resolve_class_weights("balanced", labels, NAMES, False) == pytest.approx(expected.tolist())


def test_a_class_missing_from_train_keeps_weight_one():
    labels = np.array([0] * 30 + [2] * 10)
    weights = resolve_class_weights("balanced", labels, NAMES, False)
    assert weights[1] == 1.0 and weights[0] == pytest.approx(40 / (2 * 30))


def test_multi_label_balanced_is_negatives_over_positives():
    labels = np.array([[1, 0, 1], [1, 1, 1], [0, 0, 1], [1, 0, 1]], dtype=float)
    # the third label is positive everywhere: weight 1, not 0 (negatives / positives)
    assert resolve_class_weights("balanced", labels, ["a", "b", "c"], True) == [pytest.approx(1 / 3), 3.0, 1.0]


def test_explicit_weights_by_position_or_by_name():
    labels = np.array([0, 1, 2])
    assert resolve_class_weights([1, 2, 3], labels, NAMES, False) == [1.0, 2.0, 3.0]
    assert resolve_class_weights({"pos": 4}, labels, NAMES, False) == [1.0, 1.0, 4.0]
    with pytest.raises(FinetextError, match=r"class_weights has 2 value\(s\) but there are 3 labels"):
        resolve_class_weights([1, 2], labels, NAMES, False)
    with pytest.raises(FinetextError, match="class_weights names unknown label\\(s\\): good"):
        resolve_class_weights({"good": 2}, labels, NAMES, False)


@pytest.mark.parametrize(("given", "expected"), [
    ("balanced", "balanced"), (["balanced"], "balanced"), ("1,3", [1.0, 3.0]), (["1", "3"], [1.0, 3.0]),
    ({"pos": 2}, {"pos": 2.0}),
])
def test_class_weights_from_yaml_or_flags(given, expected):
    assert config_from_flat({"class_weights": given}).training.class_weights == expected


def test_class_weights_flag_forms():
    from finetext.cli import build_parser, resolve_train_config

    for flags, expected in ((["1,4"], [1.0, 4.0]), (["1", "4"], [1.0, 4.0]), (["balanced"], "balanced")):
        args = build_parser().parse_args(["train", "--class-weights", *flags])
        assert resolve_train_config(args).training.class_weights == expected


def test_bad_class_weights_are_refused():
    with pytest.raises(FinetextError, match="class_weights must be 'balanced' or numbers; got 'inverse'"):
        config_from_flat({"class_weights": "inverse"})
    with pytest.raises(FinetextError, match="class_weights must be positive numbers"):
        config_from_flat({"class_weights": "1,0"})


def test_weighted_loss_is_the_weighted_mean_of_the_per_example_losses():
    logits, labels = torch.randn(6, 3), torch.tensor([0, 1, 2, 2, 1, 0])
    weights = [0.5, 2.0, 4.0]
    nll = -torch.log_softmax(logits, -1)[torch.arange(6), labels]
    w = torch.tensor(weights)[labels]
    expected = (w * nll).sum() / w.sum()
    assert Objective(NAMES, class_weights=weights).loss(logits, labels).item() == pytest.approx(expected.item())


@pytest.mark.parametrize("engine", ["trainer", "native"])
@pytest.mark.parametrize(("weights", "favoured"), [("1,50", 1), ("50,1", 0)])
def test_both_engines_train_with_the_weights(tiny_model, tmp_path, data_dir, engine, weights, favoured):
    result = finetext.train(tiny_run(tiny_model, tmp_path / "run", dataset="sst2", engine=engine, epochs=1,
                                     class_weights=weights))
    matrix = np.array(result.metrics["final"]["validation"]["confusion_matrix"]["matrix"])
    assert matrix[:, favoured].sum() >= 0.9 * matrix.sum()  # a 50:1 weight makes the favoured class win
    saved = json.loads((result.output_dir / "metrics.json").read_text())["class_weights"]
    assert saved == {"negative": float(weights.split(",")[0]), "positive": float(weights.split(",")[1])}
