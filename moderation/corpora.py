"""Loading labelled comment data, whatever its origin, into one canonical table.

The format of a file is recognised from its columns, never from its name: the project's own
`data/`, a site's exported history and the public corpora all arrive as CSV/TSV/JSON lines.
"""

import csv
import hashlib
import io
import json
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
    "canonical needs 'text'; MLMA 'tweet' + 'sentiment'; Davidson 'tweet' + 'class'; "
    "Jigsaw 'comment_text' + 'toxic'; articles 'article_id' + 'title' + 'body'; "
    "checks 'text' + 'label' + 'expect'"
)
_JIGSAW_LABELS = ("toxic", "severe_toxic", "obscene", "threat", "insult", "identity_hate")


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
    """Name of the format these columns belong to, or None."""
    names = set(columns)
    if {"text", "label", "expect"} <= names:
        return "checks"
    if "text" in names:
        return "canonical"
    if {"tweet", "sentiment"} <= names:
        return "mlma"
    if {"tweet", "class"} <= names:
        return "davidson"
    if {"comment_text", "toxic"} <= names:
        return "jigsaw"
    if {"article_id", "title", "body"} <= names:
        return "articles"
    return None


def read_table(path: Path) -> pd.DataFrame:
    """Read a CSV, TSV or JSON-lines file as strings, or raise DataError saying why not."""
    raw = path.read_bytes()
    try:
        content = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise DataError(f"{path}: not UTF-8 text (byte 0x{raw[error.start]:02x} at offset {error.start})") from None
    if path.suffix.lower() == ".jsonl":
        return _read_jsonl(path, content)
    return _read_delimited(path, content, EXTENSIONS.get(path.suffix.lower(), ","))


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


def _read_jsonl(path: Path, content: str) -> pd.DataFrame:
    """Parse JSON lines, one object per line."""
    records = []
    for number, line in enumerate(content.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise DataError(f"{path}: line {number} is not valid JSON ({error.msg})") from None
        if not isinstance(record, dict):
            raise DataError(f"{path}: line {number} is not a JSON object")
        records.append({key: "" if value is None else str(value) for key, value in record.items()})
    if not records:
        raise DataError(f"{path}: the file is empty")
    columns = list(dict.fromkeys(key for record in records for key in record))
    return pd.DataFrame({column: [record.get(column, "") for record in records] for column in columns}, dtype=object)


def _binary(values: pd.Series, column: str, path: Path) -> pd.Series:
    """0/1 labels with blank meaning unknown; anything else is refused with its row."""
    mapping = {"0": 0.0, "1": 1.0, "0.0": 0.0, "1.0": 1.0, "false": 0.0, "true": 1.0, "": float("nan")}
    text = values.map(lambda value: str(value).strip().lower())
    bad = ~text.isin(mapping.keys())
    if bad.any():
        row = int(bad.to_numpy().argmax())
        raise DataError(f"{path}: column '{column}' must be 0, 1 or blank; row {row + 2} has {values.iloc[row]!r}")
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


_CONVERTERS = {"canonical": _canonical, "mlma": _mlma, "davidson": _davidson, "jigsaw": _jigsaw}


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
    sources, articles, skipped = [], [], []
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
            else:
                sources.append(_source(file, kind, table))
    if not sources:
        raise DataError(f"no labelled comments found in {', '.join(map(str, paths))}")
    frame = pd.concat([source.frame for source in sources], ignore_index=True)
    return Dataset(_join_articles(frame, articles), sources, skipped)


def _source(file: Path, kind: str, table: pd.DataFrame) -> Source:
    """Convert one file's table to canonical rows, dropping rows without text."""
    frame = _CONVERTERS[kind](table, file)
    frame["source"] = frame["source"].where(frame["source"] != "", str(file))
    frame["file"] = str(file)
    empty = frame["text"].str.strip() == ""
    frame = frame[~empty].reset_index(drop=True)
    digest = hashlib.sha256(file.read_bytes()).hexdigest()
    return Source(str(file), kind, digest, frame, int(empty.sum()))


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
