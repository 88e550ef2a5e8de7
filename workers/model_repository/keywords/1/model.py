"""keywords: stream the top-k TF-IDF keywords of a text (Triton Python backend, decoupled).

The second stage of the two-model pipeline: it reads the first stage's generated text. Document
frequencies come from the shipped corpus with paragraphs as documents (`workers/tinylm/train.py`
writes `weights.npz` next to this file). numpy and the standard library only.

It speaks the request contract of Triton's vLLM backend (see `stream_contract.py` beside the models): one
response per keyword, best first, each preceded by ", " except the first; `max_tokens` caps the count,
which is at most the config's `top_k` (default 5). Score = (count in the text) x idf, ties broken by
first appearance; stop words and words shorter than the trained minimum never count. Its output is not a
continuation of its input, so its stages declare `resume: restart` (pipelines.yaml).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np

# stream_kit.py and the modules it imports sit at the model repository's root. No __pycache__ there:
# Triton would take the directory for a model and refuse to start.
sys.dont_write_bytecode = True
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from stream_kit import Generation, InvalidArgument, Request, StreamingModel  # noqa: E402

DEFAULT_TOP_K = 5
MAX_TOP_K = 100


class KeywordIndex:
    def __init__(self, path: Path) -> None:
        with np.load(path, allow_pickle=False) as data:
            words = [str(w) for w in data["words"]]
            display = [str(w) for w in data["display"]]
            idf = [float(x) for x in data["idf"]]
            self.unknown_idf = float(data["unknown_idf"])
            self.stopwords = frozenset(str(w) for w in data["stopwords"])
            self.min_length = int(data["min_length"])
            self.word_re = re.compile(str(data["word_pattern"]))
            self.documents = int(data["documents"])
        self.idf = dict(zip(words, idf, strict=True))
        self.display = dict(zip(words, display, strict=True))

    def top(self, text: str, k: int) -> list[str]:
        counts: dict[str, int] = {}
        first_form: dict[str, str] = {}
        for word in self.word_re.findall(text):
            key = word.lower()
            if len(key) < self.min_length or key in self.stopwords:
                continue
            counts[key] = counts.get(key, 0) + 1
            first_form.setdefault(key, word)
        order = {key: i for i, key in enumerate(counts)}
        ranked = sorted(counts, key=lambda w: (-counts[w] * self.idf.get(w, self.unknown_idf), order[w]))
        return [self.display.get(w, first_form[w]) for w in ranked[:k]]


class TritonPythonModel(StreamingModel):
    name = "keywords"

    def load(self, args: dict[str, str], parameters: dict[str, str]) -> str:
        weights = Path(args["model_repository"]) / args["model_version"] / "weights.npz"
        if not weights.exists():  # model_repository is the model's directory; be lenient anyway
            weights = Path(__file__).resolve().parent / "weights.npz"
        if not weights.exists():
            raise FileNotFoundError(
                f"{weights} is missing: train it with `python -m workers.tinylm.train` (jobstream's bootstrap does)"
            )
        self.index = KeywordIndex(weights)
        self.top_k = int(parameters.get("top_k") or DEFAULT_TOP_K)
        if not 1 <= self.top_k <= MAX_TOP_K:
            raise ValueError(f"top_k must be between 1 and {MAX_TOP_K}, got {self.top_k}")
        return f"loaded {weights} ({len(self.index.idf)} words, {self.index.documents} documents), top_k {self.top_k}"

    def generate(self, request: Request) -> Generation:
        words = self.index.word_re.findall(request.text)
        if not words:
            raise InvalidArgument("text_input has no words")
        keywords = self.index.top(request.text, min(request.sampling.max_tokens, self.top_k))
        tokens = (("" if index == 0 else ", ") + keyword for index, keyword in enumerate(keywords))
        return Generation(len(words), tokens)
