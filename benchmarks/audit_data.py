"""Does the surface style of data/ give its labels away? One figure per feature, label and batch.

Usage: python benchmarks/audit_data.py [--data data] [--low 0.44] [--high 0.56]

The project's comments were written for it, and writing tends to be tidier for some labels
than for others (capitals and accents on clean rows, SMS spelling on toxic ones). A model then
learns the tidiness, not the content, and fails on real comments. For each surface feature
(lowercase start, no accent, SMS spelling, Nouchi, shouting, emoji, letter repeats, length,
language, @-reply, link, typography) this prints its share among the positive and negative
rows of each label and its ROC-AUC used alone as a predictor. A feature that predicts
nothing scores 0.5; the script names every one outside [--low, --high]. It then prints the
same per writing batch (file), the AUC of all surface features together (a logistic
regression, folds by article), and how many held-out rows have a near twin in training.
"""

import argparse
import re
import sys
import unicodedata
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GroupKFold, cross_val_predict

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from moderation.splits import holdout_mask  # noqa: E402

LABELS = ("toxic", "off_topic")
# SMS and chat spellings, French then English; matched as whole tokens, case-insensitively.
SMS = {
    "slt", "bjr", "bsr", "stp", "svp", "pk", "pq", "pcq", "psk", "tkt", "mdr", "ptdr", "lol", "jsp",
    "jpp", "cc", "bcp", "tjrs", "tjs", "qd", "kan", "ds", "ke", "koi", "ki", "kel", "kom", "koman",
    "c", "g", "t", "k7", "2m1", "dmd", "pr", "ns", "tt", "tte", "bn", "chui", "jsuis", "jsui", "pa",
    "mm", "nn", "oki", "wsh", "auj", "jms", "dak", "dac", "ptn", "msg", "tlm", "vrmt", "vraimt",
    "pkoi", "pourkoi", "bsx", "biz", "jtm", "stv", "ya", "yavait", "kelk", "kelq", "qlq", "qq",
    "u", "ur", "pls", "plz", "idk", "smh", "tbh", "lmao", "omg", "ppl", "thx", "imo", "btw", "abt",
    "wey", "dey", "abeg", "wetin", "sef", "na",
}
# Nouchi and other Ivorian street French; matched accent-blind as whole tokens.
NOUCHI = {
    "gbe", "dja", "djah", "mogo", "mogos", "bramogo", "gnan", "boro", "wari", "yako", "ahi",
    "kpakpato", "kpakpatos", "gaou", "fohi", "djai", "tche", "deh", "eh", "ekie", "yere", "daba",
    "choco", "kpata", "brouteur", "brouteurs", "gnata", "gbolo", "fraya", "zo", "kpo", "gbonhi",
    "bagnon", "dahico", "enjaille", "enjailler", "enjailles", "enjaillement", "enjailles", "gbangban",
    "walai", "wallahi", "wallai", "ohoo", "ebie", "yoyo", "doumbele", "tassouman", "ya fohi",
}
NOUCHI_PHRASES = ("on dit quoi", "c'est comment", "ma go", "ta go", "sa go", "les go", "une go", "c'est dja")
# Acronyms are not shouting: those written in capitals in the articles, and these.
ACRONYMS = {
    "FCFA", "CFA", "BCEAO", "CEDEAO", "ECOWAS", "UEMOA", "ONU", "UNICEF", "FMI", "IMF", "CAN",
    "AFCON", "FIFA", "CAF", "RHDP", "PDCI", "PPA", "FPI", "RDR", "CEI", "ASEC", "RFI", "PSG",
    "USA", "FDS", "FAMA", "MINUSMA", "AES", "OTAN", "NATO", "ONG", "NGO", "PDG", "CEO", "SMS",
    "RTI", "MTN", "OMS", "WHO", "BAC", "BEPC", "CHU", "SIDA", "HIV", "VIH", "CIE", "SODECI",
    "SOTRA", "UFOA", "OFNAC", "BRT", "PIB", "GDP", "TVA", "VAT", "CNSS", "CNPS", "ANSUT",
    "DGI", "LGBT", "PPACI", "CNT", "ECOMOG", "ANP",
}
EMOJI = re.compile("[\U0001F000-\U0001FAFF\u2600-\u27BF\u2B00-\u2BFF\u203C\u2049\u2122\u2139\u3030\u303D\uFE0F]")
URL = re.compile(r"https?://|www\.|\b[\w-]+\.(?:example|com|net|org|ci|sn|ml|ng|info|biz|xyz)\b", re.I)
WORD = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)*")
TOKEN = re.compile(r"[\w']+|[^\w\s]")
REPEAT = re.compile(r"([^\W\d_])\1\1", re.I)
CAPS = re.compile(r"(?<![\w])[A-ZÀ-ÖØ-Þ]{3,}(?![\w])")
TYPOGRAPHY = re.compile("[«»…’—–\u00a0\u202f]")


def fold(text: str) -> str:
    """Lowercase without accents, for matching word lists."""
    return "".join(c for c in unicodedata.normalize("NFD", text.lower()) if not unicodedata.combining(c))


def has_accent(text: str) -> bool:
    """Any letter carrying a diacritic (é, à, ç, ô...)."""
    return any(unicodedata.combining(c) for c in unicodedata.normalize("NFD", text))


def tokens(text: str) -> list[str]:
    """Accent-blind lowercase words, links removed."""
    return [t.strip("'") for t in re.findall(r"[\w']+", fold(URL.sub(" ", text)))]


def mention_pattern(authors) -> re.Pattern:
    """A leading @mention: one word, or a pseudonym with spaces that some author of the data uses."""
    names = sorted({a for a in authors if " " in a}, key=len, reverse=True)
    return re.compile(r"^\s*@(?:" + "".join(re.escape(n) + "|" for n in names) + r"[\w.-]+)\s*")


def first_letter_lower(text: str, mention: re.Pattern) -> bool:
    """The first letter after any @mention is lowercase."""
    rest = mention.sub("", text, count=1) if text.lstrip().startswith("@") else text
    letter = next((c for c in rest if c.isalpha()), "")
    return letter.islower()


def shouting(text: str, acronyms: set[str]) -> bool:
    """At least one word of 3+ letters all in capitals that is not an acronym."""
    return any(word not in acronyms for word in CAPS.findall(URL.sub(" ", text)))


def features(frame: pd.DataFrame, acronyms: set[str]) -> pd.DataFrame:
    """One 0/1 column per surface feature (no_accent is NaN outside French rows)."""
    text = frame["text"]
    words = text.map(lambda t: len(t.split()))
    toks = text.map(tokens)
    folded = text.map(fold)
    out = pd.DataFrame(index=frame.index)
    mention = mention_pattern(frame["author"] if "author" in frame else [])
    out["lower_first"] = text.map(lambda t: first_letter_lower(t, mention))
    out["no_accent"] = text.map(lambda t: not has_accent(t)).where(frame["language"] == "fr")
    out["sms"] = toks.map(lambda ts: any(t in SMS for t in ts))
    out["nouchi"] = [any(t in NOUCHI for t in ts) or any(p in f for p in NOUCHI_PHRASES) for ts, f in zip(toks, folded)]
    out["caps_word"] = text.map(lambda t: shouting(t, acronyms))
    out["emoji"] = text.map(lambda t: bool(EMOJI.search(t)))
    out["letter_repeat"] = text.map(lambda t: bool(REPEAT.search(URL.sub(" ", t))))
    out["no_final_punct"] = text.map(lambda t: not re.search(r"[.!?…)»\"]\s*$", EMOJI.sub("", t).rstrip()))
    out["typography"] = text.map(lambda t: bool(TYPOGRAPHY.search(t)))
    out["words<=5"] = words <= 5
    out["words6-20"] = (words >= 6) & (words <= 20)
    out["words21-60"] = (words >= 21) & (words <= 60)
    out["words61+"] = words >= 61
    for language in ("fr", "en", "mixed"):
        out[f"lang_{language}"] = frame["language"] == language
    out["at_reply"] = text.map(lambda t: t.lstrip().startswith("@"))
    out["url"] = text.map(lambda t: bool(URL.search(t)))
    return out.astype(float)


def load(folder: Path) -> pd.DataFrame:
    """Every comment file of data/comments with its batch name."""
    files = sorted((folder / "comments").glob("*.csv"))
    if not files:
        raise SystemExit(f"{folder}/comments holds no CSV file")
    frames = [pd.read_csv(f, dtype=str, keep_default_na=False).assign(batch=f.stem) for f in files]
    frame = pd.concat(frames, ignore_index=True)
    for label in LABELS:
        frame[label] = pd.to_numeric(frame[label], errors="coerce")
    return frame


def article_acronyms(folder: Path) -> set[str]:
    """Words the articles themselves write in capitals."""
    found = set(ACRONYMS)
    for path in sorted((folder / "articles").glob("*.csv")):
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
        for text in table["title"] + " " + table["body"]:
            found.update(CAPS.findall(text))
    return found


def auc(labels: pd.Series, feature: pd.Series) -> float:
    """ROC-AUC of one 0/1 feature alone (NaN rows left out); 0.5 when it cannot be measured."""
    known = feature.notna() & labels.notna()
    y, x = labels[known], feature[known]
    if y.nunique() < 2:
        return float("nan")
    return float(roc_auc_score(y, x))


def label_table(frame: pd.DataFrame, feats: pd.DataFrame, label: str) -> pd.DataFrame:
    """Share among positives, share among negatives and AUC of every feature for one label."""
    rows = []
    y = frame[label]
    for name in feats.columns:
        column = feats[name]
        known = column.notna() & y.notna()
        positives, negatives = column[known & (y == 1)], column[known & (y == 0)]
        rows.append({
            "feature": name, "pos_share": positives.mean(), "neg_share": negatives.mean(),
            "rate": y[known & (column == 1)].mean(), "auc": auc(y, column), "rows": int(known.sum()),
        })
    return pd.DataFrame(rows).set_index("feature")


def style_model_auc(frame: pd.DataFrame, feats: pd.DataFrame, label: str) -> float:
    """AUC of all surface features together: a logistic regression, out of fold by article."""
    known = frame[label].notna()
    x = feats[known].fillna(0.5).to_numpy()
    y = frame.loc[known, label].to_numpy(int)
    groups = frame.loc[known, "article_id"].to_numpy()
    folds = GroupKFold(n_splits=5)
    scores = cross_val_predict(LogisticRegression(max_iter=1000), x, y, cv=folds, groups=groups, method="predict_proba")[:, 1]
    return float(roc_auc_score(y, scores))


def near_twins(frame: pd.DataFrame, threshold: float) -> pd.DataFrame:
    """Held-out rows whose word TF-IDF cosine to some training row is at least `threshold`, per batch."""
    held = holdout_mask(frame)
    vectors = TfidfVectorizer(preprocessor=fold, token_pattern=r"(?u)\b\w+\b").fit_transform(frame["text"])
    similarity = (vectors[held] @ vectors[~held].T).max(axis=1).toarray().ravel()
    table = pd.DataFrame({"batch": frame.loc[held, "batch"].to_numpy(), "twin": similarity >= threshold})
    return table.groupby("batch")["twin"].agg(["size", "sum", "mean"]).rename(columns={"size": "held_out", "sum": "with_twin", "mean": "share"})


def flagged(value: float, low: float, high: float) -> str:
    """A mark for AUCs outside the target band."""
    return "  <-- outside" if value == value and not low <= value <= high else ""


def print_labels(frame, feats, low, high) -> list[tuple[str, str, float]]:
    """The overall table of each label; returns the features outside the band."""
    outside = []
    for label in LABELS:
        known = frame[label].notna()
        print(f"\n== {label}: {int(frame.loc[known, label].sum())} positive of {int(known.sum())} "
              f"({frame.loc[known, label].mean():.1%})")
        print(f"{'feature':<16}{'share+':>8}{'share-':>8}{'rate|f':>8}{'AUC':>7}{'rows':>7}")
        for name, row in label_table(frame, feats, label).iterrows():
            print(f"{name:<16}{row.pos_share:>8.1%}{row.neg_share:>8.1%}{row.rate:>8.1%}{row.auc:>7.3f}{int(row.rows):>7}"
                  f"{flagged(row.auc, low, high)}")
            if row.auc == row.auc and not low <= row.auc <= high:
                outside.append((label, name, row.auc))
        print(f"{'all features':<16}{'':>24}{style_model_auc(frame, feats, label):>7.3f}  (logistic regression, folds by article)")
    return outside


def print_batches(frame, feats) -> None:
    """Per writing batch: size, label rates, each feature's share, and each feature's AUC per label."""
    print("\n== by batch: rows, label rates and feature shares")
    names = list(feats.columns)
    short = [n[:7] for n in names]
    print(f"{'batch':<14}{'rows':>6}{'toxic':>7}{'off':>7} " + " ".join(f"{s:>7}" for s in short))
    for batch, rows in frame.groupby("batch"):
        shares = feats.loc[rows.index].mean()
        print(f"{batch:<14}{len(rows):>6}{rows['toxic'].mean():>7.1%}{rows['off_topic'].mean():>7.1%} "
              + " ".join(f"{shares[n]:>7.0%}" for n in names))
    for label in LABELS:
        print(f"\n== by batch: AUC of each feature alone for {label} (blank: one class only in the batch)")
        print(f"{'batch':<14} " + " ".join(f"{s:>7}" for s in short))
        for batch, rows in frame.groupby("batch"):
            values = [auc(rows[label], feats.loc[rows.index, n]) for n in names]
            print(f"{batch:<14} " + " ".join(f"{v:>7.2f}" if v == v else f"{'':>7}" for v in values))


def main() -> None:
    """Print the audit of one data folder."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=str(ROOT / "data"), help="folder holding comments/ and articles/")
    parser.add_argument("--low", type=float, default=0.44)
    parser.add_argument("--high", type=float, default=0.56)
    parser.add_argument("--twin", type=float, default=0.8, help="cosine at which two comments count as near twins")
    args = parser.parse_args()
    folder = Path(args.data)
    frame = load(folder)
    feats = features(frame, article_acronyms(folder))
    print(f"{len(frame)} comments in {frame['batch'].nunique()} batches, {frame['article_id'].nunique()} articles")
    outside = print_labels(frame, feats, args.low, args.high)
    print_batches(frame, feats)
    twins = near_twins(frame, args.twin)
    print(f"\n== held-out rows (hash of article_id) with a near twin (cosine >= {args.twin}) in training")
    print(twins.to_string(formatters={"share": "{:.1%}".format}))
    print(f"all batches: {int(twins['with_twin'].sum())} of {int(twins['held_out'].sum())} "
          f"({twins['with_twin'].sum() / twins['held_out'].sum():.1%})")
    print(f"\n{len(outside)} feature/label AUCs outside [{args.low}, {args.high}]"
          + (": " + ", ".join(f"{label}:{name} {value:.3f}" for label, name, value in outside) if outside else ""))


if __name__ == "__main__":
    main()
