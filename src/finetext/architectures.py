"""Registers finetext's own model types with transformers' Auto classes: the scratch GloVe transformer and the
mean-pooled classifier. finetext's commands import it themselves; a Python process that loads a finetext
artifact with transformers alone (``transformers.pipeline``, ``AutoModelForSequenceClassification``) imports it
first::

    import finetext.architectures  # noqa: F401
    classify = transformers.pipeline("text-classification", model="outputs/my-model")

It imports torch and transformers, which is why a bare ``import finetext`` (kept fast) does not do it.
"""

import finetext.models.mean_pooling  # noqa: F401
import finetext.models.scratch  # noqa: F401
