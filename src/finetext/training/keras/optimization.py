"""What Keras optimises and how: the run's loss in keras.ops, its warm-up schedule and AdamW.

Each mirrors what the other engines use (training.objective.Objective.loss, transformers.get_scheduler,
torch.optim.AdamW without decay on 1-d weights), written in keras.ops so that every backend runs the same
formula; tests/test_keras_engine.py checks them against those.
"""

from __future__ import annotations

import logging
import math

import keras
from keras import ops

from finetext.config import TrainingConfig
from finetext.training.objective import Objective


class ObjectiveLoss(keras.losses.Loss):
    """Objective.loss: cross-entropy (class-weighted: sum of weighted losses / sum of weights, as torch's
    weighted mean), or for multi-label binary cross-entropy with a positive weight per label, averaged."""

    def __init__(self, objective: Objective):
        super().__init__(name="objective_loss")
        self.multi_label = objective.multi_label
        self.class_weights = objective.class_weights

    def call(self, y_true, y_pred):
        logits = ops.cast(y_pred, "float32")
        if self.multi_label:
            labels = ops.cast(y_true, "float32")
            positive = ops.convert_to_tensor(self.class_weights or [1.0] * logits.shape[-1], dtype="float32")
            # -[w*y*log(sigmoid(x)) + (1-y)*log(1-sigmoid(x))], in softplus form for stability
            return ops.mean(positive * labels * ops.softplus(-logits) + (1.0 - labels) * ops.softplus(logits))
        labels = ops.cast(ops.reshape(y_true, (-1,)), "int32")
        picked = ops.take_along_axis(ops.log_softmax(logits, axis=-1), ops.expand_dims(labels, -1), axis=-1)
        nll = -ops.squeeze(picked, -1)
        if not self.class_weights:
            return ops.mean(nll)
        weight = ops.take(ops.convert_to_tensor(self.class_weights, dtype="float32"), labels)
        return ops.sum(weight * nll) / ops.sum(weight)


class WarmupSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """transformers' schedules (linear, cosine, constant, constant_with_warmup) by optimizer step, in keras.ops.

    Keras counts batches in optimizer.iterations when it accumulates gradients: the schedule divides them by
    accumulation, so the learning rate moves once per update, as in the other engines."""

    def __init__(self, peak: float, warmup_steps: int, total_steps: int, kind: str, accumulation: int = 1):
        self.peak, self.warmup_steps, self.total_steps = peak, warmup_steps, total_steps
        self.kind, self.accumulation = kind, accumulation

    def __call__(self, step):
        step = ops.cast(ops.floor_divide(step, self.accumulation), "float32")
        warmup = max(1, self.warmup_steps)
        rising = step / warmup
        progress = ops.maximum(0.0, (step - self.warmup_steps) / max(1, self.total_steps - self.warmup_steps))
        if self.kind == "linear":
            after = ops.maximum(0.0, 1.0 - progress)
        elif self.kind == "cosine":
            after = ops.maximum(0.0, 0.5 * (1.0 + ops.cos(math.pi * progress)))
        else:  # constant, constant_with_warmup
            after = ops.ones_like(step)
        if self.kind == "constant":
            return self.peak * after
        return self.peak * ops.where(step < self.warmup_steps, rising, after)

    def get_config(self) -> dict:
        return {"peak": self.peak, "warmup_steps": self.warmup_steps, "total_steps": self.total_steps,
                "kind": self.kind, "accumulation": self.accumulation}


def adamw(cfg: TrainingConfig, model: keras.Model, total_steps: int) -> keras.optimizers.AdamW:
    """Keras's AdamW with torch's defaults (eps 1e-8), global-norm clipping, and no decay on 1-d weights (biases,
    LayerNorm), as the Trainer; gradient accumulation by Keras's own option. On the torch backend, its update runs
    torch's fused AdamW kernel (fused_adamw_class)."""
    warmup = math.ceil(cfg.warmup * total_steps) if cfg.warmup_is_ratio() else int(cfg.warmup)
    accumulation = cfg.gradient_accumulation_steps
    adamw_class = fused_adamw_class() if keras.backend.backend() == "torch" else keras.optimizers.AdamW
    optimizer = adamw_class(
        learning_rate=WarmupSchedule(cfg.learning_rate, warmup, total_steps, cfg.lr_scheduler, accumulation),
        weight_decay=cfg.weight_decay, beta_1=0.9, beta_2=0.999, epsilon=1e-8,
        global_clipnorm=cfg.max_grad_norm or None,
        gradient_accumulation_steps=accumulation if accumulation > 1 else None)
    optimizer.exclude_from_weight_decay(var_list=[v for v in model.trainable_variables if len(v.shape) < 2])
    return optimizer


def fused_adamw_class() -> type[keras.optimizers.AdamW]:
    """Keras's torch-backend AdamW whose update is torch's fused AdamW kernel.

    Keras's own torch update makes a dozen passes over every weight with foreach ops, which made the keras engine
    0.85x the Trainer on MRPC (docs/decisions.md, issue 19). Its
    global-norm clipping is torch's too. Everything else stays Keras's: its variables hold the moments (checkpoints
    are unchanged), it applies the decoupled weight decay (var *= 1 - lr * wd, with its exclusions) before the
    update, it counts steps and accumulates gradients; the kernel does the Adam step with torch's epsilon placement
    (after the bias correction), which is the other engines' AdamW exactly."""
    import torch

    try:
        from keras.src.backend.torch.optimizers.torch_adamw import AdamW as KerasTorchAdamW
    except ImportError:  # Keras moved its internal class: its own (slower) update, same math
        logging.getLogger("finetext").warning("this Keras has no torch AdamW class to speed up; using its own update")
        return keras.optimizers.AdamW

    class FusedAdamW(KerasTorchAdamW):
        def _clip_gradients(self, grads):
            """Global-norm clipping as torch.nn.utils.clip_grad_norm_ (the other engines'): one foreach norm and an
            in-place scale, instead of Keras's squares and scaled copies of every gradient."""
            if not self.global_clipnorm or any(g is None for g in grads):
                return super()._clip_gradients(grads)
            norm = torch.nn.utils.get_total_norm(grads)  # clip_grad_norm_'s norm, on the gradients Keras hands in
            torch._foreach_mul_(grads, torch.clamp(self.global_clipnorm / (norm + 1e-6), max=1.0))
            return grads

        def _parallel_update_step(self, grads, variables, learning_rate):
            if self.amsgrad:
                return super()._parallel_update_step(grads, variables, learning_rate)
            indices = [self._get_variable_index(v) for v in variables]
            params = [v.value for v in variables]
            step = (keras.ops.convert_to_tensor(self.iterations) + 1).to(torch.float32)
            torch._fused_adamw_(params, [g.contiguous() for g in grads],
                                [self._momentums[i].value for i in indices],
                                [self._velocities[i].value for i in indices], [], [step] * len(params),
                                lr=float(learning_rate), beta1=self.beta_1, beta2=self.beta_2, weight_decay=0.0,
                                eps=self.epsilon, amsgrad=False, maximize=False)

    return FusedAdamW
