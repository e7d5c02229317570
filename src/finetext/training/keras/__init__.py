"""The keras engine: finetext's run trained through Keras 3 `compile` / `fit` / `predict` with Keras callbacks.

What the TensorFlow tutorial taught with `TFAutoModelForSequenceClassification` (gone from transformers 5), on
Keras 3's torch backend (finetext's own model wrapped as a Keras layer, so every strategy works) or on its
tensorflow backend (keras-hub's BERT, converted back to the standard artifact). Modules here import keras at their
top, so only engine.py's KerasEngine, after backend.import_keras has chosen the backend, imports them.
"""
