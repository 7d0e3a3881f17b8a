import pytest
import torch

from budgetnas.train.recipe import Recipe
from budgetnas.arch.build import build_model
from budgetnas.space.presets import PRESETS
from budgetnas.arch import ArchSpec, POOL, conv
from budgetnas.train.loop import Diverged, eval_steps, evaluate, train

SMALL = ArchSpec((conv(8), POOL, conv(16), POOL), head="flatten")


def test_training_a_small_net_on_real_mnist_learns(small_data):
    torch.manual_seed(0)
    model = build_model(SMALL)
    reports = []
    result = train(model, small_data, Recipe(lr=5e-3, batch_size=32, epochs=2), seed=0,
                   report=lambda point, acc: reports.append((point, acc)))
    assert result.val_acc > 0.85 and result.test_acc > 0.85  # 2,000 images, 2 epochs
    assert [p for p, _ in reports] == list(range(1, 9))  # 4 reports inside each epoch
    assert reports[-1][1] == result.val_acc
    assert result.history[-1]["test_acc"] == result.test_acc
    assert evaluate(model, small_data.test_x, small_data.test_y) == pytest.approx(result.test_acc)


def test_same_seed_same_result(small_data):
    def run():
        torch.manual_seed(1)
        return train(build_model(SMALL), small_data, Recipe(batch_size=64, rotate=8, translate=0.1), seed=1).val_acc
    assert run() == run()


def test_nan_loss_raises_diverged(small_data):
    torch.manual_seed(0)
    with pytest.raises(Diverged, match="loss became"):
        train(build_model(PRESETS["A"].spec), small_data,
              Recipe(optimizer="sgd", lr=1e9, schedule="constant", batch_size=64), seed=0)


def test_report_can_stop_training(small_data):
    class Stop(Exception):
        pass

    def report(point, acc):
        raise Stop

    with pytest.raises(Stop):
        train(build_model(SMALL), small_data, Recipe(), report=report)


def test_eval_steps_cover_the_epoch_end():
    assert eval_steps(100, 4) == [25, 50, 75, 100]
    assert eval_steps(3, 4) == [1, 2, 3]
