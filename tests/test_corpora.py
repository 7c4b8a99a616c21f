"""Loaders: each format recognised by its columns, articles joined, unusable files refused with a reason."""

import json

import pytest

from moderation import corpora
from moderation.corpora import DataError

from .conftest import DATASETS


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def test_canonical_csv_keeps_labels_and_unknowns(tmp_path):
    write(tmp_path / "c.csv", "text,toxic,off_topic,language\nbonjour à tous,0,1,fr\nt'es qu'un idiot,1,,fr\n")
    dataset = corpora.load([tmp_path / "c.csv"])
    frame = dataset.frame
    assert frame["text"].tolist() == ["bonjour à tous", "t'es qu'un idiot"]
    assert frame["toxic"].tolist() == [0.0, 1.0]
    assert frame["off_topic"].iloc[0] == 1.0 and frame["off_topic"].isna().iloc[1]
    assert dataset.sources[0].format == "canonical"
    manifest = dataset.manifest()[0]
    assert manifest["rows"] == 2 and manifest["toxic_positive"] == 1 and len(manifest["sha256"]) == 64


def test_canonical_jsonl_and_tsv(tmp_path):
    lines = [{"text": "Allez les Éléphants", "toxic": 0, "off_topic": 0}, {"text": "gagne 100k sur bet.example", "off_topic": 1}]
    write(tmp_path / "a.jsonl", "\n".join(json.dumps(line, ensure_ascii=False) for line in lines) + "\n")
    write(tmp_path / "b.tsv", "text\ttoxic\nsalut\t0\n")
    frame = corpora.load([tmp_path]).frame
    assert sorted(frame["text"]) == ["Allez les Éléphants", "gagne 100k sur bet.example", "salut"]
    assert frame.set_index("text").loc["gagne 100k sur bet.example", "toxic"] != 0


def test_mlma_only_normal_is_clean(tmp_path):
    write(tmp_path / "fr_dataset.csv",
          "HITId,tweet,sentiment,directness,annotator_sentiment,target,group\n"
          "1,un tweet neutre,normal,indirect,indifference,origin,other\n"
          "2,un tweet insultant,offensive,direct,anger,origin,other\n"
          "3,un tweet disputé,abusive_normal,direct,anger,origin,other\n")
    dataset = corpora.load([tmp_path / "fr_dataset.csv"])
    assert dataset.sources[0].format == "mlma"
    assert dataset.frame["toxic"].tolist() == [0.0, 1.0, 1.0]
    assert dataset.frame["off_topic"].isna().all()
    assert set(dataset.frame["language"]) == {"fr"}


def test_davidson_class_two_is_clean(tmp_path):
    write(tmp_path / "labeled.csv", ",count,hate_speech,offensive_language,neither,class,tweet\n"
          "0,3,0,0,3,2,nice day\n1,3,2,1,0,0,hateful words\n2,3,0,3,0,1,rude words\n")
    dataset = corpora.load([tmp_path / "labeled.csv"])
    assert dataset.sources[0].format == "davidson"
    assert dataset.frame["toxic"].tolist() == [0.0, 1.0, 1.0]


def test_jigsaw_any_sub_label_is_toxic(tmp_path):
    write(tmp_path / "train.csv", "id,comment_text,toxic,severe_toxic,obscene,threat,insult,identity_hate\n"
          "a,fine comment,0,0,0,0,0,0\nb,obscene one,0,0,1,0,0,0\nc,toxic one,1,0,0,0,0,0\n")
    dataset = corpora.load([tmp_path / "train.csv"])
    assert dataset.sources[0].format == "jigsaw"
    assert dataset.frame["toxic"].tolist() == [0.0, 1.0, 1.0]


def test_articles_are_joined_by_article_id(tmp_path):
    write(tmp_path / "articles.csv", "article_id,title,body,language,topic\na1,Budget voté,Le parlement a voté le budget.,fr,politique\n")
    write(tmp_path / "comments.csv", "text,toxic,off_topic,article_id\nenfin un budget,0,0,a1\nsans article,0,0,\n")
    frame = corpora.load([tmp_path]).frame.set_index("text")
    assert frame.loc["enfin un budget", "article_title"] == "Budget voté"
    assert frame.loc["enfin un budget", "article_body"] == "Le parlement a voté le budget."
    assert frame.loc["sans article", "article_title"] == ""


def test_check_list_in_a_folder_is_kept_out_of_training(tmp_path):
    write(tmp_path / "comments.csv", "text,toxic\nun commentaire,0\n")
    write(tmp_path / "checks.csv", "text,label,expect\nidiot,toxic,flag\n")
    dataset = corpora.load([tmp_path])
    assert dataset.frame["text"].tolist() == ["un commentaire"]
    assert any("checks.csv" in note for note in dataset.skipped)


def test_rows_with_empty_text_are_counted_not_hidden(tmp_path):
    write(tmp_path / "c.csv", "text,toxic\nbonjour,0\n   ,1\n")
    source = corpora.load([tmp_path / "c.csv"]).sources[0]
    assert len(source.frame) == 1
    assert source.manifest()["dropped_empty_text"] == 1


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("latin1.csv", "text,toxic\nd\xe9j\xe0,0\n".encode("latin-1"), "not UTF-8"),
        ("ragged.csv", b"text,toxic\nun,0,extra\n", "row 2 has 3 fields"),
        ("unknown.csv", b"message,score\nsalut,1\n", "match no known format"),
        ("labels.csv", b"text,toxic\nsalut,peut-etre\n", "column 'toxic' must be 0, 1 or blank; row 2"),
        ("broken.jsonl", b'{"text": "ok"}\n{"text": \n', "line 2 is not valid JSON"),
        ("list.jsonl", b'["text"]\n', "line 1 is not a JSON object"),
        ("empty.csv", b"", "the file is empty"),
        ("quote.csv", b'text,toxic\n"unterminated,0\n', "not valid CSV"),
        ("notes.txt", b"text\nbonjour\n", "unsupported file type"),
    ],
)
def test_unusable_files_are_refused_with_the_reason(tmp_path, name, content, reason):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(DataError, match=reason) as error:
        corpora.load([tmp_path / name])
    assert name in str(error.value)


def test_a_bad_file_in_a_folder_refuses_the_whole_folder(tmp_path):
    write(tmp_path / "good.csv", "text,toxic\nbonjour,0\n")
    write(tmp_path / "bad.csv", "comment,label\nbonjour,0\n")
    with pytest.raises(DataError, match="bad.csv"):
        corpora.load([tmp_path])


def test_missing_path_is_refused(tmp_path):
    with pytest.raises(DataError, match="no such file or folder"):
        corpora.load([tmp_path / "absent"])


@pytest.mark.parametrize(("relative", "kind"), [
    ("mlma/fr_dataset.csv", "mlma"), ("mlma/en_dataset.csv", "mlma"), ("davidson/labeled_data.csv", "davidson"),
])
def test_public_corpora_are_recognised_in_place(relative, kind):
    path = DATASETS / relative
    if not path.exists():
        pytest.skip(f"public corpus {path} is absent (see ../shared/datasets/README.md)")
    dataset = corpora.load([path])
    assert dataset.sources[0].format == kind
    assert len(dataset.frame) > 1000
    assert 0 < dataset.frame["toxic"].mean() < 1
