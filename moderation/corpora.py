"""Loading labelled comment data, whatever its origin, into one canonical table.

The format of a file is recognised from its columns, never from its name: the project's own
`data/`, a site's exported history and the public corpora all arrive as CSV/TSV/JSON lines.
"""

import csv
import hashlib
import io
import json
import re
from collections.abc import Iterable
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

LABELS = ("toxic", "off_topic")
COLUMNS = (
    "text", "toxic", "off_topic", "article_id", "article_title", "article_body",
    "language", "source", "category", "created_at",
)
EXTENSIONS = {".csv": ",", ".tsv": "\t", ".jsonl": None}
FORMAT_HELP = (
    "canonical needs 'text'; MLMA 'tweet' + 'sentiment'; Davidson 'tweet' + 'class'; FTR 'tweet' + 'label'; "
    "HateDay 'tweet_id' + 'content' + 'label'; CyberAgression 'text' + 'hate' + 'verbal_abuse'; "
    "Jigsaw 'comment_text' + 'toxic'; toxic_spans 'comment_id' + 'comment_text' beside its annotations "
    "'comment_id' + 'worker' + 'not toxic' in the same folder; articles 'article_id' + 'title' + 'body'; "
    "checks 'text' + 'label' + 'expect'"
)
_JIGSAW_LABELS = ("toxic", "severe_toxic", "obscene", "threat", "insult", "identity_hate")
_BINARY = {"0": 0.0, "1": 1.0, "0.0": 0.0, "1.0": 1.0, "false": 0.0, "true": 1.0, "": float("nan")}
_CYBERAGRESSION_HATE = {"OAG": 1.0, "CAG": 1.0, "NAG": 0.0}
_TOXIC_SPANS_VOTES = {"False": 1.0, "True": 0.0}  # an annotator's answer to "not toxic?" as a vote for toxic
_TOXIC_SPANS_TABLES = {
    "toxic_spans_comments": "comments table (comment_id, comment_text)",
    "toxic_spans_annotations": "annotations table (comment_id, worker, not toxic)",
}
# A UTF-8 lead byte, with fewer continuation bytes than it announces, right before a field ends.
_CUT_CHARACTER = re.compile(rb'(?:[\xc2-\xdf]|[\xe0-\xef][\x80-\xbf]?|[\xf0-\xf4][\x80-\xbf]{0,2})(?=[",\t\r\n])')


class DataError(ValueError):
    """A data file that cannot be used, with the reason in the message."""


@dataclass
class Source:
    """One file's contribution: what it was, how many rows, and its fingerprint."""

    path: str
    format: str
    sha256: str
    frame: pd.DataFrame = field(repr=False)
    dropped: int = 0

    def manifest(self) -> dict:
        """What metadata.json records about this file."""
        entry = {"path": self.path, "format": self.format, "sha256": self.sha256, "rows": len(self.frame)}
        for label in LABELS:
            known = self.frame[label].dropna()
            entry[f"{label}_labelled"] = int(len(known))
            entry[f"{label}_positive"] = int(known.sum())
        if self.dropped:
            entry["dropped_empty_text"] = self.dropped
        return entry


@dataclass
class Dataset:
    """Comments from every source, joined with their articles."""

    frame: pd.DataFrame
    sources: list[Source]
    skipped: list[str]

    def manifest(self) -> list[dict]:
        """The training-data manifest stored with a model."""
        return [source.manifest() for source in self.sources]


def detect_format(columns) -> str | None:
    """Name of the format these columns belong to, or None.

    The order matters where one format's columns hold another's: a check list and CyberAgression
    both have 'text', FTR's 'tweet' + 'label' would also match MLMA and Davidson files that had a
    'label', and a Jigsaw file with a 'comment_id' would look like toxic_spans' texts but for its 'toxic'.
    """
    names = set(columns)
    if {"text", "label", "expect"} <= names:
        return "checks"
    if {"text", "hate", "verbal_abuse"} <= names:
        return "cyberagression"
    if "text" in names:
        return "canonical"
    if {"tweet", "sentiment"} <= names:
        return "mlma"
    if {"tweet", "class"} <= names:
        return "davidson"
    if {"tweet", "label"} <= names:
        return "ftr"
    if {"tweet_id", "content", "label"} <= names:
        return "hateday"
    if {"comment_text", "toxic"} <= names:
        return "jigsaw"
    if {"comment_id", "comment_text"} <= names:
        return "toxic_spans_comments"
    if {"comment_id", "worker", "not toxic"} <= names:
        return "toxic_spans_annotations"
    if {"article_id", "title", "body"} <= names:
        return "articles"
    return None


def read_table(path: Path) -> pd.DataFrame:
    """Read a CSV, TSV or JSON-lines file as strings, or raise DataError saying why not."""
    raw = path.read_bytes()
    if path.suffix.lower() == ".jsonl":
        return _read_jsonl(path, _decode(path, raw, None))
    delimiter = EXTENSIONS.get(path.suffix.lower(), ",")
    return _read_delimited(path, _decode(path, raw, delimiter), delimiter)


def _decode(path: Path, raw: bytes, delimiter: str | None) -> str:
    """UTF-8 text, strictly: a wrong encoding would silently garble every accent.

    FTR alone is let through with its half characters dropped: its collector cut some tweets at
    a byte count, in the middle of an accented letter or an emoji, and the file is vendored unchanged.
    """
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        if delimiter and _first_row_format(raw, delimiter) == "ftr":
            with suppress(UnicodeDecodeError):
                return _CUT_CHARACTER.sub(b"", raw).decode("utf-8-sig")
        raise DataError(f"{path}: not UTF-8 text (byte 0x{raw[error.start]:02x} at offset {error.start})") from None


def _first_row_format(raw: bytes, delimiter: str) -> str | None:
    """The format a file's header names, read before its body can be decoded."""
    header = raw.split(b"\n", 1)[0].decode("utf-8-sig", errors="replace").rstrip("\r")
    return detect_format(next(csv.reader([header], delimiter=delimiter), []))


def _read_delimited(path: Path, content: str, delimiter: str) -> pd.DataFrame:
    """Parse CSV/TSV strictly: a ragged row is an error, not a silent shift of columns."""
    try:
        rows = list(csv.reader(io.StringIO(content, newline=""), delimiter=delimiter, strict=True))
    except csv.Error as error:
        raise DataError(f"{path}: not valid {'TSV' if delimiter == chr(9) else 'CSV'}: {error}") from None
    if not rows:
        raise DataError(f"{path}: the file is empty")
    header, body = rows[0], [row for row in rows[1:] if row]
    for number, row in enumerate(body, start=2):
        if len(row) != len(header):
            raise DataError(f"{path}: row {number} has {len(row)} fields, the header has {len(header)}")
    return pd.DataFrame(body, columns=header, dtype=object)


def json_records(path: Path, lines: Iterable[str]):
    """(line number, object) of each JSON line, blank lines skipped; a line that is not a JSON object is refused by its number."""
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise DataError(f"{path}: line {number} is not valid JSON ({error.msg})") from None
        if not isinstance(record, dict):
            raise DataError(f"{path}: line {number} is not a JSON object")
        yield number, record


def _read_jsonl(path: Path, content: str) -> pd.DataFrame:
    """Parse JSON lines, one object per line."""
    records = [{key: "" if value is None else str(value) for key, value in record.items()}
               for _, record in json_records(path, content.splitlines())]
    if not records:
        raise DataError(f"{path}: the file is empty")
    columns = list(dict.fromkeys(key for record in records for key in record))
    return pd.DataFrame({column: [record.get(column, "") for record in records] for column in columns}, dtype=object)


def _binary(values: pd.Series, column: str, path: Path) -> pd.Series:
    """0/1 labels with blank meaning unknown; anything else is refused with its row."""
    return _mapped(values, _BINARY, column, path, "0, 1 or blank", str.lower)


def _mapped(values: pd.Series, mapping: dict, column: str, path: Path, expected: str, fold=str) -> pd.Series:
    """Labels through a fixed mapping; a value outside it is refused with its row, never guessed."""
    text = values.map(lambda value: fold(str(value).strip()))
    bad = ~text.isin(mapping.keys())
    if bad.any():
        row = int(bad.to_numpy().argmax())
        raise DataError(f"{path}: column '{column}' must be {expected}; row {row + 2} has {values.iloc[row]!r}")
    return text.map(mapping).astype(float)


def _canonical(table: pd.DataFrame, path: Path) -> pd.DataFrame:
    """Canonical rows: text plus optional labels and article context."""
    frame = pd.DataFrame({"text": table["text"].astype(str)})
    for label in LABELS:
        frame[label] = _binary(table[label], label, path) if label in table else float("nan")
    for column in COLUMNS[3:]:
        frame[column] = table[column].astype(str) if column in table else ""
    return frame


def _mlma(table: pd.DataFrame, path: Path) -> pd.DataFrame:
    """MLMA: only the annotators' unanimous 'normal' is not toxic."""
    toxic = (table["sentiment"].astype(str).str.strip() != "normal").astype(float)
    language = "fr" if "fr" in path.name.lower() else "en" if "en" in path.name.lower() else ""
    return _with_toxic(table["tweet"], toxic, language)


def _davidson(table: pd.DataFrame, path: Path) -> pd.DataFrame:
    """Davidson: class 2 ('neither') is not toxic; hate speech and offensive language are."""
    classes = pd.to_numeric(table["class"], errors="coerce")
    if classes.isna().any():
        row = int(classes.isna().to_numpy().argmax())
        raise DataError(f"{path}: column 'class' must be 0, 1 or 2; row {row + 2} has {table['class'].iloc[row]!r}")
    return _with_toxic(table["tweet"], (classes != 2).astype(float), "en")


def _ftr(table: pd.DataFrame, path: Path) -> pd.DataFrame:
    """FTR: label 1 (racist) is toxic, 0 is not."""
    return _with_toxic(table["tweet"], _binary(table["label"], "label", path), "fr")


def _hateday(table: pd.DataFrame, path: Path) -> pd.DataFrame:
    """HateDay (a benchmark, read in place): label 1, hateful or offensive, is toxic."""
    return _with_toxic(table["content"], _binary(table["label"], "label", path), "fr")


def _cyberagression(table: pd.DataFrame, path: Path) -> pd.DataFrame:
    """CyberAgression: overt (OAG) and covert (CAG) aggression are toxic, non-aggressive (NAG) is not."""
    toxic = _mapped(table["hate"], _CYBERAGRESSION_HATE, "hate", path, "OAG, CAG or NAG")
    return _with_toxic(table["text"], toxic, "fr")


def _jigsaw(table: pd.DataFrame, path: Path) -> pd.DataFrame:
    """Jigsaw: toxic if any of its toxicity sub-labels is set."""
    present = [label for label in _JIGSAW_LABELS if label in table]
    flags = pd.concat([_binary(table[label], label, path) for label in present], axis=1)
    return _with_toxic(table["comment_text"], flags.max(axis=1), "en")


def _with_toxic(text: pd.Series, toxic: pd.Series, language: str) -> pd.DataFrame:
    """A canonical frame for corpora that only label toxicity."""
    frame = pd.DataFrame({"text": text.astype(str).to_numpy(), "toxic": toxic.to_numpy(), "off_topic": float("nan")})
    for column in COLUMNS[3:]:
        frame[column] = language if column == "language" else ""
    return frame


def _toxic_spans(comments: pd.DataFrame, annotations: pd.DataFrame, path: Path) -> pd.DataFrame:
    """toxic_spans: each comment's text with the verdict of the majority of its annotators."""
    toxic = comments["comment_id"].map(_majority_toxic(annotations, path))
    return _with_toxic(comments["comment_text"], toxic, "en")


def _majority_toxic(annotations: pd.DataFrame, path: Path) -> pd.Series:
    """Toxic when more than half of a comment's annotators said it was; a tie is no majority, so not toxic.

    A comment nobody annotated is absent here, and its label stays unknown.
    """
    votes = _mapped(annotations["not toxic"], _TOXIC_SPANS_VOTES, "not toxic", path, "True or False")
    return (votes.groupby(annotations["comment_id"].to_numpy()).mean() > 0.5).astype(float)


_CONVERTERS = {
    "canonical": _canonical, "mlma": _mlma, "davidson": _davidson, "ftr": _ftr, "hateday": _hateday,
    "cyberagression": _cyberagression, "jigsaw": _jigsaw,
}


def data_files(path: Path) -> list[Path]:
    """The data files a path names: itself, or every CSV/TSV/JSONL file below a folder."""
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in EXTENSIONS)
        if not files:
            raise DataError(f"{path}: the folder holds no .csv, .tsv or .jsonl file")
        return files
    if path.suffix.lower() not in EXTENSIONS:
        raise DataError(f"{path}: unsupported file type '{path.suffix}' (use .csv, .tsv or .jsonl)")
    return [path]


def load(paths) -> Dataset:
    """Load every file under the given paths into one canonical, article-joined table."""
    sources, articles, skipped, pairs = [], [], [], {}
    for path in paths:
        for file in data_files(Path(path)):
            table = read_table(file)
            kind = detect_format(table.columns)
            if kind is None:
                raise DataError(f"{file}: columns {list(table.columns)} match no known format ({FORMAT_HELP})")
            if kind == "articles":
                articles.append(table)
            elif kind == "checks":
                skipped.append(f"{file}: the must-flag / must-pass check list, kept out of training")
            elif kind in _TOXIC_SPANS_TABLES:
                _add_half(pairs.setdefault(file.parent, {}), kind, file, table)
            else:
                sources.append(_source(file, kind, table))
    sources += [_toxic_spans_source(folder, pair) for folder, pair in pairs.items()]
    if not sources:
        raise DataError(f"no labelled comments found in {', '.join(map(str, paths))}")
    frame = pd.concat([source.frame for source in sources], ignore_index=True)
    return Dataset(_join_articles(frame, articles), sources, skipped)


def _add_half(pair: dict, kind: str, file: Path, table: pd.DataFrame) -> None:
    """Keep one half of a folder's toxic_spans pair until the walk is over and the other half is read."""
    if kind in pair:
        raise DataError(f"{file}: a second toxic_spans {_TOXIC_SPANS_TABLES[kind]} in its folder, beside {pair[kind][0]}")
    pair[kind] = (file, table)


def _toxic_spans_source(folder: Path, pair: dict) -> Source:
    """One source from a folder's comments and annotations, fingerprinted by both: either alone has no labelled text."""
    for kind, what in _TOXIC_SPANS_TABLES.items():
        if kind not in pair:
            present = next(iter(pair.values()))[0]
            raise DataError(f"{present}: toxic_spans needs its {what} in the same folder, {folder}")
    comments_file, comments = pair["toxic_spans_comments"]
    annotations_file, annotations = pair["toxic_spans_annotations"]
    digest = hashlib.sha256(comments_file.read_bytes() + annotations_file.read_bytes()).hexdigest()
    return _finished(str(folder), "toxic_spans", digest, _toxic_spans(comments, annotations, annotations_file))


def _source(file: Path, kind: str, table: pd.DataFrame) -> Source:
    """One file's rows, fingerprinted so a model records exactly which bytes it learned from."""
    digest = hashlib.sha256(file.read_bytes()).hexdigest()
    return _finished(str(file), kind, digest, _CONVERTERS[kind](table, file))


def _finished(path: str, kind: str, digest: str, frame: pd.DataFrame) -> Source:
    """A source's canonical rows, tagged with where they came from, without the rows that have no text."""
    frame["source"] = frame["source"].where(frame["source"] != "", path)
    frame["file"] = path
    empty = frame["text"].str.strip() == ""
    frame = frame[~empty].reset_index(drop=True)
    return Source(path, kind, digest, frame, int(empty.sum()))


def _join_articles(frame: pd.DataFrame, articles: list[pd.DataFrame]) -> pd.DataFrame:
    """Fill article title and body from article files where a comment names only its article_id."""
    if not articles:
        return frame
    table = pd.concat(articles, ignore_index=True).drop_duplicates("article_id", keep="last")
    titles = dict(zip(table["article_id"], table["title"]))
    bodies = dict(zip(table["article_id"], table["body"]))
    missing_title = frame["article_title"] == ""
    frame.loc[missing_title, "article_title"] = frame.loc[missing_title, "article_id"].map(titles).fillna("")
    missing_body = frame["article_body"] == ""
    frame.loc[missing_body, "article_body"] = frame.loc[missing_body, "article_id"].map(bodies).fillna("")
    return frame


def load_checks(path: Path) -> pd.DataFrame:
    """The must-flag / must-pass list every promoted model has to satisfy."""
    table = read_table(Path(path))
    if detect_format(table.columns) != "checks":
        raise DataError(f"{path}: a check list needs the columns text, label, expect")
    bad = ~table["label"].isin(LABELS) | ~table["expect"].isin(("flag", "pass"))
    if bad.any():
        row = int(bad.to_numpy().argmax())
        raise DataError(f"{path}: row {row + 2}: label must be toxic/off_topic and expect flag/pass")
    for column in ("article_title", "article_body", "case"):
        if column not in table:
            table[column] = ""
    return table
