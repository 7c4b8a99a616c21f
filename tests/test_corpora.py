"""Loaders: each format recognised by its columns, articles joined, unusable files refused with a reason."""

import json
from pathlib import Path

import pytest

from moderation import corpora
from moderation.corpora import DataError

from .conftest import DATASETS, ROOT, SHARED, run_cli

BENCHMARKS = SHARED / "benchmarks"
PUBLIC = ROOT / "data" / "public"


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


def test_ftr_label_one_is_toxic(tmp_path):
    write(tmp_path / "ftr.csv", "id,tweet,label\n0,la nazi du bureau,1\n1,un oral sur Hitler,0\n")
    dataset = corpora.load([tmp_path / "ftr.csv"])
    assert dataset.sources[0].format == "ftr"
    assert dataset.frame["toxic"].tolist() == [1.0, 0.0]
    assert set(dataset.frame["language"]) == {"fr"}


def test_ftr_tweets_cut_inside_a_character_lose_only_the_half_character(tmp_path):
    content = b'id,tweet,label\r\n0,un d\xc3,1\r\n1,"plait \xf0\x9f",0\r\n2,d\xc3\xa9j\xc3\xa0 vu,0\r\n'
    (tmp_path / "ftr.csv").write_bytes(content)
    assert corpora.load([tmp_path / "ftr.csv"]).frame["text"].tolist() == ["un d", "plait ", "déjà vu"]
    (tmp_path / "ftr.csv").write_bytes(content.replace(b"d\xc3,", b"d\xc3x,"))
    with pytest.raises(DataError, match="not UTF-8"):
        corpora.load([tmp_path / "ftr.csv"])


def test_other_formats_keep_refusing_half_characters(tmp_path):
    (tmp_path / "c.csv").write_bytes(b"text,toxic\nun d\xc3,1\n")
    with pytest.raises(DataError, match="not UTF-8"):
        corpora.load([tmp_path / "c.csv"])


def test_hateday_label_one_is_toxic(tmp_path):
    write(tmp_path / "bench.csv", "tweet_id,content,label\n1,@USER bande de nuls,1\n2,@USER bon match,0\n")
    dataset = corpora.load([tmp_path / "bench.csv"])
    assert dataset.sources[0].format == "hateday"
    assert dataset.frame["text"].tolist() == ["@USER bande de nuls", "@USER bon match"]
    assert dataset.frame["toxic"].tolist() == [1.0, 0.0]


def test_cyberagression_overt_and_covert_aggression_are_toxic(tmp_path):
    write(tmp_path / "messages.csv", "scenario,message_id,role,text,hate,verbal_abuse,intention,sentiment\n"
          "s,0,bully,t'es nul,OAG,OTH,AIN,NEG\ns,1,bully_support,on sait tous pourquoi,CAG,OTH,AIN,NEG\n"
          "s,2,victim,laisse moi,NAG,OTH,CNS,NEU\n")
    dataset = corpora.load([tmp_path / "messages.csv"])
    assert dataset.sources[0].format == "cyberagression"
    assert dataset.frame["toxic"].tolist() == [1.0, 1.0, 0.0]
    assert set(dataset.frame["language"]) == {"fr"}


def test_cyberagression_unknown_hate_value_is_refused_with_its_row(tmp_path):
    write(tmp_path / "messages.csv", "text,hate,verbal_abuse\nsalut,NAG,OTH\nhein,aggressive,OTH\n")
    with pytest.raises(DataError, match="column 'hate' must be OAG, CAG or NAG; row 3 has 'aggressive'"):
        corpora.load([tmp_path / "messages.csv"])


TOXIC_SPANS_COMMENTS = "comment_id,comment_text\n1,You idiot.\n2,Split vote.\n3,Nice piece.\n4,Nobody read me.\n"
TOXIC_SPANS_ANNOTATIONS = ("annotation,comment_id,worker,country,all toxic,not toxic\n"
                           "0,1,10,USA,True,False\n1,1,11,USA,False,False\n2,1,12,VEN,False,True\n"
                           "3,2,10,USA,False,False\n4,2,11,USA,False,False\n5,2,12,USA,False,True\n6,2,13,VEN,False,True\n"
                           "7,3,10,USA,False,True\n8,3,11,USA,False,True\n9,3,12,VEN,False,False\n")


def test_toxic_spans_comment_is_toxic_by_strict_majority_and_a_tie_is_not(tmp_path):
    write(tmp_path / "comments.csv", TOXIC_SPANS_COMMENTS)
    write(tmp_path / "annotations.csv", TOXIC_SPANS_ANNOTATIONS)
    dataset = corpora.load([tmp_path])
    assert [(source.path, source.format) for source in dataset.sources] == [(str(tmp_path), "toxic_spans")]
    toxic = dataset.frame.set_index("text")["toxic"]
    assert toxic["You idiot."] == 1.0 and toxic["Split vote."] == 0.0 and toxic["Nice piece."] == 0.0
    assert toxic.isna()["Nobody read me."]
    assert set(dataset.frame["language"]) == {"en"}


def test_toxic_spans_pair_given_as_two_files_is_joined(tmp_path):
    comments = write(tmp_path / "comments.csv", TOXIC_SPANS_COMMENTS)
    annotations = write(tmp_path / "annotations.csv", TOXIC_SPANS_ANNOTATIONS)
    assert corpora.load([annotations, comments]).frame["toxic"].sum() == 1


@pytest.mark.parametrize(("name", "content", "missing"), [
    ("annotations.csv", TOXIC_SPANS_ANNOTATIONS, "comments table"),
    ("comments.csv", TOXIC_SPANS_COMMENTS, "annotations table"),
])
def test_toxic_spans_half_alone_is_refused(tmp_path, name, content, missing):
    write(tmp_path / name, content)
    with pytest.raises(DataError, match=f"{name}: toxic_spans needs its {missing}"):
        corpora.load([tmp_path])


def test_toxic_spans_unknown_vote_is_refused_with_its_row(tmp_path):
    write(tmp_path / "comments.csv", TOXIC_SPANS_COMMENTS)
    write(tmp_path / "annotations.csv", TOXIC_SPANS_ANNOTATIONS.replace("1,1,11,USA,False,False", "1,1,11,USA,False,maybe"))
    with pytest.raises(DataError, match="column 'not toxic' must be True or False; row 3 has 'maybe'"):
        corpora.load([tmp_path])


@pytest.mark.parametrize(("relative", "kind", "rows", "toxic"), [
    ("mlma/fr_dataset.csv", "mlma", 4014, 3193),
    ("mlma/en_dataset.csv", "mlma", 5647, 4986),
    ("davidson/labeled_data.csv", "davidson", 24783, 20620),
    ("ftr/FTR_new_labels.csv", "ftr", 2856, 927),
    ("toxic_spans", "toxic_spans", 16100, 11275),
])
def test_vendored_corpora_keep_their_label_mapping(relative, kind, rows, toxic):
    dataset = corpora.load([PUBLIC / relative])
    assert [source.format for source in dataset.sources] == [kind]
    assert len(dataset.frame) == rows and dataset.frame["toxic"].sum() == toxic
    assert dataset.frame["toxic"].notna().all()


def test_vendored_corpora_are_all_read_from_data_and_the_word_list_is_not():
    dataset = corpora.load([ROOT / "data"])
    public = {Path(source.path).relative_to(PUBLIC).parts[0] for source in dataset.sources if PUBLIC in Path(source.path).parents}
    assert public == {"mlma", "davidson", "ftr", "toxic_spans"}
    assert not any("lexicons" in source.path for source in dataset.sources)


def test_vendored_corpora_carry_their_licence_and_stay_small():
    folders = sorted(folder for folder in PUBLIC.iterdir() if folder.is_dir())
    assert [folder.name for folder in folders] == ["davidson", "ftr", "lexicons", "mlma", "toxic_spans"]
    assert all(any(file.name.startswith("LICENSE") for file in folder.iterdir()) for folder in folders)
    assert sum(file.stat().st_size for file in PUBLIC.rglob("*") if file.is_file()) < 15 * 1024 * 1024


@pytest.mark.parametrize(("path", "kind", "rows", "toxic"), [
    (DATASETS / "cyberagression", "cyberagression", 5391, 3539),
    (BENCHMARKS / "hateday_fr.csv", "hateday", 1000, 500),
])
def test_shared_sets_read_in_place_keep_their_label_mapping(path, kind, rows, toxic):
    if not path.exists():
        pytest.skip(f"{path} is absent (it lives in ../shared beside the checkout)")
    dataset = corpora.load([path])
    assert [source.format for source in dataset.sources] == [kind]
    assert len(dataset.frame) == rows and dataset.frame["toxic"].sum() == toxic


def test_evaluate_reads_the_hateday_benchmark(models_dir):
    path = BENCHMARKS / "hateday_fr.csv"
    if not path.exists():
        pytest.skip(f"the benchmark {path} is absent (it lives in ../shared/benchmarks beside the checkout)")
    result = run_cli("evaluate", "--data", str(path), models_dir=models_dir, check=True)
    output = result.stdout.decode()
    assert "(hateday): 1000 rows (all)" in output
    row = next(line for line in output.splitlines() if line.startswith("| toxic |"))
    rows, positives, roc_auc = (cell.strip() for cell in row.split("|")[2:5])
    assert (rows, positives) == ("1000", "500") and 0.5 < float(roc_auc) <= 1
