"""Train the local models of the Triton model repository from the shipped corpus (numpy only).

`tinylm`: a word-level 4-gram language model with interpolated modified Kneser-Ney
smoothing (discounts D1, D2, D3+ per order), paragraph breaks as a token. `keywords`: TF-IDF document
frequencies with paragraphs as documents.

Everything the Triton models need to read text the way training did travels in the weights files
(token pattern, quote normalisation, spacing flags, stop words), so the model.py files carry no copy
of these rules and need nothing but numpy and the standard library.

Deterministic: the same corpus gives byte-identical weights files (fixed zip timestamps, stable sorts).

    python -m workers.tinylm.train --out workers/model_repository/tinylm/1/weights.npz
"""

from __future__ import annotations

import argparse
import io
import os
import re
import sys
import time
import zipfile
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

FORMAT_VERSION = 1
ORDER = 4
UNKNOWN = "<unk>"
PARAGRAPH = "<p>"
PARAGRAPH_TEXT = "\n\n"

# Words (with inner apostrophes and hyphens: "ma'am", "good-humoured"), dashes, punctuation, and
# curly quotes (straight double quotes are turned into curly ones first). `_italics_` lose their marks.
TOKEN_PATTERN = r"[^\W_]+(?:['\u2019-][^\W_]+)*|--+|[\u2014\u2013]|[.,;:!?()\[\]\u201c\u201d]"
# A straight double quote at the start or after a space/opening bracket/dash opens a quotation.
OPEN_QUOTE_PATTERN = r'(?:^|(?<=[\s(\[\u2014\u2013-]))"'
OPEN_QUOTE, CLOSE_QUOTE = "\u201c", "\u201d"
# Spacing: no space before these tokens / after these tokens.
ATTACH_LEFT = frozenset({",", ".", ";", ":", "!", "?", ")", "]", CLOSE_QUOTE, "\u2014", "\u2013"})
ATTACH_RIGHT = frozenset({"(", "[", OPEN_QUOTE, "\u2014", "\u2013"})
DASH = re.compile(r"--+")  # "word--word": a dash takes no space on either side

# Keywords: letters only, lower-cased; stop words never count as keywords.
KEYWORD_PATTERN = r"[^\W\d_]+(?:['\u2019][^\W\d_]+)*"
KEYWORD_MIN_LENGTH = 3
_STOPWORDS = """
    a about above after again against all am an and any are as at be because been before being below
    between both but by can could did do does doing down during each either else ever every few for from
    further had has have having he her here hers herself him himself his how however i if in into is it
    its itself just least less let like may me might more most much must my myself neither never no nor
    not now of off often on once only or other ought our ours ourselves out over own quite rather said
    same say says shall she should since so some such than that the their theirs them themselves then
    there these they this those though through thus to too under until up upon us very was we were what
    when where whether which while who whom whose why will with within without would yet you your yours
    yourself yourselves mr mrs miss sir one two three first also well still even indeed soon yes oh dear
    know think see come go went came made make much many must shall cannot course
"""
STOPWORDS = frozenset(_STOPWORDS.split())

Array = npt.NDArray[np.generic]


def paragraphs(text: str) -> list[str]:
    """Paragraphs: blocks separated by blank lines, whitespace-normalised, empty ones dropped."""
    blocks = re.split(r"\n[ \t\r\f\v]*\n", text.replace("\r\n", "\n"))
    return [" ".join(block.split()) for block in blocks if block.strip()]


def normalize(text: str) -> str:
    """Straight double quotes become opening/closing curly quotes."""
    return re.sub(OPEN_QUOTE_PATTERN, OPEN_QUOTE, text).replace('"', CLOSE_QUOTE)


def tokenize(text: str) -> list[str]:
    return re.findall(TOKEN_PATTERN, normalize(text))


def _save_npz(path: Path, arrays: Mapping[str, Array]) -> None:
    """np.savez, but byte-for-byte reproducible (fixed timestamps) and atomic (write, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as archive:
            for name in sorted(arrays):
                buffer = io.BytesIO()
                np.lib.format.write_array(  # type: ignore[no-untyped-call]
                    buffer, np.asanyarray(arrays[name]), allow_pickle=False
                )
                info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
                info.external_attr = 0o644 << 16
                archive.writestr(info, buffer.getvalue())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _unique_rows(rows: npt.NDArray[np.int64]) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Lexicographically sorted unique rows and their counts."""
    uniq, counts = np.unique(rows, axis=0, return_counts=True)
    return uniq.astype(np.int64), counts.astype(np.int64)


def _discounts(counts: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
    """Modified Kneser-Ney discounts D1, D2, D3+ (Chen & Goodman), from the counts of counts."""
    n = [float(np.count_nonzero(counts == c)) for c in (1, 2, 3, 4)]
    if min(n) == 0:
        return np.asarray([0.5, 0.75, 0.9])
    y = n[0] / (n[0] + 2 * n[1])
    d = [c - (c + 1) * y * n[c] / n[c - 1] for c in (1, 2, 3)]
    return np.clip(np.asarray(d, dtype=np.float64), 0.05, [0.95, 1.95, 2.95])


def _context_keys(contexts: npt.NDArray[np.int64], vocab_size: int) -> npt.NDArray[np.int64]:
    keys = np.zeros(len(contexts), dtype=np.int64)
    for column in range(contexts.shape[1]):
        keys = keys * vocab_size + contexts[:, column]
    return keys


def language_model(paras: Sequence[str], order: int = ORDER) -> dict[str, Array]:
    """Interpolated Kneser-Ney n-gram tables, laid out for fast lookup with np.searchsorted."""
    token_lists = [tokenize(p) for p in paras]
    counts = Counter(t for tokens in token_lists for t in tokens)
    words = sorted(counts, key=lambda w: (-counts[w], w))
    vocab = [UNKNOWN, PARAGRAPH, *words]
    vocab_size = len(vocab)
    if vocab_size ** (order - 1) >= 2**62:
        raise ValueError(f"vocabulary of {vocab_size} is too large for {order}-gram context keys")
    ids = {w: i for i, w in enumerate(vocab)}
    stream: list[int] = [1]
    for tokens in token_lists:
        stream.extend(ids[t] for t in tokens)
        stream.append(1)
    seq = np.asarray(stream, dtype=np.int64)
    if len(seq) <= order:
        raise ValueError("corpus too small")

    # grams[m]: unique m-grams (rows) with their raw counts.
    grams: dict[int, tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]] = {}
    for m in range(1, order + 1):
        windows = np.lib.stride_tricks.sliding_window_view(seq, m)
        grams[m] = _unique_rows(np.ascontiguousarray(windows))

    arrays: dict[str, Array] = {}
    for m in range(1, order + 1):
        rows, raw = grams[m]
        if m == order:
            weights = raw
        else:
            # Continuation counts: in how many distinct contexts w_1..w_m follows another word.
            longer, _ = grams[m + 1]
            tails, cont = _unique_rows(np.ascontiguousarray(longer[:, 1:]))
            weights = np.zeros(len(rows), dtype=np.int64)
            # every tail of an (m+1)-gram is an m-gram: find each tail's row
            where = np.searchsorted(_context_keys(rows, vocab_size), _context_keys(tails, vocab_size))
            weights[where] = cont
        if m == 1:
            unigram = np.zeros(vocab_size, dtype=np.float64)
            unigram[rows[:, 0]] = weights
            unigram /= unigram.sum()
            uniform = 1.0 / (vocab_size - 1)
            unigram = 0.999 * unigram + 0.001 * uniform
            unigram[0] = 0.0
            arrays["p0"] = unigram / unigram.sum()
            continue
        keep = weights > 0
        rows, weights = rows[keep], weights[keep]
        discounts = _discounts(weights)
        row_discount = discounts[np.minimum(weights, 3) - 1]
        keys = _context_keys(rows[:, :-1], vocab_size)
        starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
        offsets = np.r_[starts, len(keys)].astype(np.int64)
        totals = np.add.reduceat(weights, starts).astype(np.float64)
        held_back = np.add.reduceat(row_discount, starts)
        per_row_total = np.repeat(totals, np.diff(offsets))
        k = m - 1
        arrays[f"ctx{k}_keys"] = keys[starts]
        arrays[f"ctx{k}_offsets"] = offsets
        arrays[f"ctx{k}_gamma"] = held_back / totals
        arrays[f"ctx{k}_next"] = rows[:, -1].astype(np.int32)
        arrays[f"ctx{k}_alpha"] = (weights - row_discount) / per_row_total
        arrays[f"ctx{k}_discounts"] = discounts

    arrays.update(
        format_version=np.asarray(FORMAT_VERSION),
        order=np.asarray(order),
        vocab=np.asarray(vocab, dtype=str),
        attach_left=np.asarray([w in ATTACH_LEFT or w == PARAGRAPH or bool(DASH.fullmatch(w)) for w in vocab]),
        attach_right=np.asarray([w in ATTACH_RIGHT or w == PARAGRAPH or bool(DASH.fullmatch(w)) for w in vocab]),
        surface=np.asarray(["" if w == UNKNOWN else PARAGRAPH_TEXT if w == PARAGRAPH else w for w in vocab]),
        token_pattern=np.asarray(TOKEN_PATTERN),
        open_quote_pattern=np.asarray(OPEN_QUOTE_PATTERN),
        open_quote=np.asarray(OPEN_QUOTE),
        close_quote=np.asarray(CLOSE_QUOTE),
        training_tokens=np.asarray(len(seq)),
    )
    return arrays


def keyword_index(paras: Sequence[str]) -> dict[str, Array]:
    """Document frequencies (paragraphs as documents) and the display form of each word."""
    df: Counter[str] = Counter()
    forms: dict[str, Counter[str]] = {}
    for para in paras:
        seen = re.findall(KEYWORD_PATTERN, para)
        for word in seen:
            forms.setdefault(word.lower(), Counter())[word] += 1
        df.update({w.lower() for w in seen})
    words = sorted(df)
    documents = len(paras)
    idf = np.log((1.0 + documents) / (1.0 + np.asarray([df[w] for w in words], dtype=np.float64))) + 1.0
    # Most frequent spelling in the corpus ("Elizabeth", "house"); ties go to the smallest string.
    display = [min(forms[w].items(), key=lambda item: (-item[1], item[0]))[0] for w in words]
    return {
        "format_version": np.asarray(FORMAT_VERSION),
        "words": np.asarray(words, dtype=str),
        "display": np.asarray(display, dtype=str),
        "idf": idf,
        "unknown_idf": np.asarray(np.log(1.0 + documents) + 1.0),
        "documents": np.asarray(documents),
        "stopwords": np.asarray(sorted(STOPWORDS), dtype=str),
        "min_length": np.asarray(KEYWORD_MIN_LENGTH),
        "word_pattern": np.asarray(KEYWORD_PATTERN),
    }


def default_keywords_out(out: Path) -> Path:
    """`<repo>/tinylm/<v>/weights.npz` -> `<repo>/keywords/<v>/weights.npz`; else `<out>.keywords.npz`."""
    if out.parent.parent.name == "tinylm":
        return out.parent.parent.parent / "keywords" / out.parent.name / out.name
    return out.with_name(out.stem + ".keywords.npz")


def train(corpus: Path, out: Path, keywords_out: Path | None = None) -> None:
    """Train both models from `corpus`: tinylm's weights to `out`, keywords' next to it.

    The keywords file is written first, so `out` being newer than the corpus means both are current.
    """
    paras = paragraphs(corpus.read_text(encoding="utf-8"))
    if not paras:
        raise ValueError(f"{corpus} holds no text")
    _save_npz(keywords_out or default_keywords_out(out), keyword_index(paras))
    _save_npz(out, language_model(paras))


def main(argv: Sequence[str] | None = None) -> int:
    here = Path(__file__).resolve().parent
    parser = argparse.ArgumentParser(prog="python -m workers.tinylm.train", description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=here / "corpus" / "corpus.txt")
    parser.add_argument("--out", type=Path, default=here.parent / "model_repository" / "tinylm" / "1" / "weights.npz")
    parser.add_argument("--keywords-out", type=Path, default=None, help="default: the keywords model next to --out")
    args = parser.parse_args(argv)
    started = time.monotonic()
    train(args.corpus, args.out, args.keywords_out)
    keywords = args.keywords_out or default_keywords_out(args.out)
    print(f"trained {args.out} and {keywords} in {time.monotonic() - started:.2f}s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
