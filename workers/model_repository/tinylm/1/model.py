"""tinylm: a streaming text-generation model for Triton's Python backend (decoupled).

A word-level 4-gram language model with interpolated Kneser-Ney smoothing, trained from the shipped
corpus by `workers/tinylm/train.py` into `weights.npz` next to this file. numpy and the standard
library only, so the same repository loads in the official `tritonserver` container.

It speaks the request contract of Triton's vLLM backend (see `stream_contract.py` beside the models): a
continuation is asked for by sending the prompt followed by what was generated so far. Each token is
sampled with a generator seeded by (seed, its position in the text), so the continuation of a prefix is
the text an uninterrupted run would have produced; with `resample_per_attempt` the attempt joins the seed,
like a batched GPU model that does not reproduce its samples.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import numpy as np
import numpy.typing as npt

# stream_kit.py and the modules it imports sit at the model repository's root. No __pycache__ there:
# Triton would take the directory for a model and refuse to start.
sys.dont_write_bytecode = True
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from stream_kit import Generation, InvalidArgument, Request, StreamingModel  # noqa: E402

NO_REPEAT = 4  # no 4-gram of tokens appears twice in prompt + output
PARAGRAPH = re.compile(r"\n\s*\n")


class NGramLM:
    """Interpolated Kneser-Ney n-gram model, read from the arrays train.py writes."""

    def __init__(self, path: Path) -> None:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
        self.order = int(arrays["order"])
        self.vocab: list[str] = [str(w) for w in arrays["vocab"]]
        self.surface: list[str] = [str(w) for w in arrays["surface"]]
        self.attach_left: list[bool] = [bool(x) for x in arrays["attach_left"]]
        self.attach_right: list[bool] = [bool(x) for x in arrays["attach_right"]]
        self.size = len(self.vocab)
        self.ids = {w: i for i, w in enumerate(self.vocab)}
        self.p0: npt.NDArray[np.float64] = arrays["p0"].astype(np.float64)
        self.tables = [
            (
                arrays[f"ctx{k}_keys"],
                arrays[f"ctx{k}_offsets"],
                arrays[f"ctx{k}_gamma"],
                arrays[f"ctx{k}_next"],
                arrays[f"ctx{k}_alpha"],
            )
            for k in range(1, self.order)
        ]
        self.token_re = re.compile(str(arrays["token_pattern"]))
        self.open_quote_re = re.compile(str(arrays["open_quote_pattern"]))
        self.open_quote = str(arrays["open_quote"])
        self.close_quote = str(arrays["close_quote"])
        self.paragraph = self.ids["<p>"]

    def encode(self, text: str) -> list[int]:
        """Token ids; a blank line is the paragraph token, so a generated text encodes back to its tokens."""
        ids: list[int] = []
        for number, part in enumerate(PARAGRAPH.split(text)):
            if number:
                ids.append(self.paragraph)
            normalized = self.open_quote_re.sub(self.open_quote, part).replace('"', self.close_quote)
            ids += [self.ids.get(token, 0) for token in self.token_re.findall(normalized)]
        return ids

    def distribution(self, history: list[int]) -> npt.NDArray[np.float64]:
        """P(next | history) over the vocabulary (never the unknown token)."""
        p = self.p0.copy()
        size = self.size
        for k, (keys, offsets, gamma, nxt, alpha) in enumerate(self.tables, start=1):
            if len(history) < k:
                break
            key = 0
            for token in history[-k:]:
                key = key * size + token
            at = int(np.searchsorted(keys, key))
            if at == len(keys) or int(keys[at]) != key:
                continue  # unseen context: this order adds nothing, the lower one stands
            lo, hi = int(offsets[at]), int(offsets[at + 1])
            p *= gamma[at]
            p[nxt[lo:hi]] += alpha[lo:hi]
        p[0] = 0.0
        return p

    def generate(
        self,
        history: list[int],
        glue_first: bool,
        temperature: float,
        top_p: float,
        seed: tuple[int, ...],
        min_p: float = 0.05,
    ) -> Iterator[str]:
        """Token texts continuing `history`, without end. Sampling: min-p filtering (tokens below min_p x the
        likeliest one are dropped: mostly backoff noise), temperature (0 = greedy), then nucleus (top_p); an
        n-gram of NO_REPEAT tokens never repeats (keeps greedy decoding out of loops)."""
        history = list(history)
        n = NO_REPEAT - 1
        seen: dict[tuple[int, ...], list[int]] = {}
        for at in range(n, len(history)):
            seen.setdefault(tuple(history[at - n : at]), []).append(history[at])
        prev: int | None = history[-1] if len(history) > 1 else None
        no_space = glue_first
        while True:
            p = self.distribution(history[-(self.order - 1) :])
            banned = seen.get(tuple(history[-n:]))
            if banned:
                kept = p.copy()
                kept[banned] = 0.0
                if kept.any():
                    p = kept
            p[p < min_p * p.max()] = 0.0
            # Keyed by the position: a continuation samples what an uninterrupted run would have.
            rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([*seed, len(history)])))
            u = float(rng.random())
            if temperature == 0.0:
                token = int(np.argmax(p))
            else:
                if temperature != 1.0:
                    p = np.power(p / p.max(), 1.0 / temperature)
                if top_p < 1.0:
                    p = _nucleus(p, top_p)
                cdf = np.cumsum(p)
                token = min(int(np.searchsorted(cdf, u * cdf[-1], side="right")), self.size - 1)
                while p[token] == 0.0 and token > 0:  # guard rounding at the edges
                    token -= 1
            glue = no_space or self.attach_left[token] or (prev is not None and self.attach_right[prev])
            yield ("" if glue else " ") + self.surface[token]
            seen.setdefault(tuple(history[-n:]), []).append(token)
            history.append(token)
            prev, no_space = token, False


def _nucleus(p: npt.NDArray[np.float64], top_p: float) -> npt.NDArray[np.float64]:
    """Keep the likeliest tokens whose mass reaches top_p of the total; zero the rest."""
    order = np.argsort(-p, kind="stable")
    mass = np.cumsum(p[order])
    keep = order[: int(np.searchsorted(mass, top_p * mass[-1])) + 1]
    kept = np.zeros_like(p)
    kept[keep] = p[keep]
    return kept


class TritonPythonModel(StreamingModel):
    name = "tinylm"
    knob_defaults: ClassVar[dict[str, str]] = {**StreamingModel.knob_defaults, "token_delay_ms": "5"}

    def load(self, args: dict[str, str], parameters: dict[str, str]) -> str:
        weights = Path(args["model_repository"]) / args["model_version"] / "weights.npz"
        if not weights.exists():  # model_repository is the model's directory; be lenient anyway
            weights = Path(__file__).resolve().parent / "weights.npz"
        if not weights.exists():
            raise FileNotFoundError(
                f"{weights} is missing: train it with `python -m workers.tinylm.train` (jobstream's bootstrap does)"
            )
        self.lm = NGramLM(weights)
        self.min_p = float(parameters.get("min_p") or "0.05")
        return f"loaded {weights} ({self.lm.size} tokens, order {self.lm.order}, min_p {self.min_p})"

    def generate(self, request: Request) -> Generation:
        history = [self.lm.paragraph, *self.lm.encode(request.text)]
        sampling = request.sampling
        seed = sampling.seed if sampling.seed is not None else int(np.random.default_rng().integers(2**63))
        key = (seed % 2**64, request.attempt) if request.drills.resample_per_attempt else (seed % 2**64,)
        if len(history) == 1:
            raise InvalidArgument("text_input has no words")
        tokens = self.lm.generate(
            history, request.text[-1:].isspace(), sampling.temperature, sampling.top_p, key, self.min_p
        )
        return Generation(len(history) - 1, tokens)
