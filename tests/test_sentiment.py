"""Sentiment end to end on a tiny synthetic corpus (seconds): data, text processing, models, predict."""

from __future__ import annotations

import csv
import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.pipeline import Pipeline

from projects.sentiment.batching import LengthBuckets
from projects.sentiment.data import (
    TextTable,
    ToyReviews,
    binary_labels,
    hold_out_sentences,
    read_table,
    whole_sentences,
)
from projects.sentiment.evaluate import score
from projects.sentiment.linear import TfidfClassifier, tfidf_logistic_regression
from projects.sentiment.models import RecurrentClassifier, TransformerClassifier
from projects.sentiment.project import SentimentProject
from projects.sentiment.text import TextProcessor
from projects.sentiment.text_classifier import TextClassifier
from shared.capabilities import Describes, Explains, FitsOnTrain
from shared.classification import Classifier, expected_calibration_error
from shared.errors import DataError, UsageError
from shared.fitters import load_estimator, save_estimator
from tests.conftest import finished_runs, train_one

TOY = ["data=toy", "trainer=cpu"]
SMALL_RNN = ["model.hidden=32", "model.embedding_dim=32", "model.lr=0.01", "trainer.max_epochs=8"]


def _runs(root: Path) -> list[Path]:
    return finished_runs(root, "sentiment")


def _metrics(run: Path) -> dict:
    return json.loads((run / "metrics.json").read_text())


@pytest.fixture
def trained_linear(cli, isolated: Path) -> Path:
    return train_one(cli, isolated, "sentiment", *TOY)


# --- text processing ---------------------------------------------------------------------------
def test_tokenizer_splits_contractions_and_keeps_negation_through_stemming_and_lemmas() -> None:
    assert TextProcessor()("It wasn't GREAT, it's dull!") == ["it", "was", "n't", "great", "it", "'s", "dull", "!"]
    assert TextProcessor(stemmer="porter")("the actors were running") == ["the", "actor", "were", "run"]
    assert TextProcessor(stemmer="snowball")("generously") == ["generous"]
    assert TextProcessor(lemmatize=True)("studies were better n't") == ["study", "be", "good", "n't"]


def test_normalisation_options() -> None:
    assert TextProcessor()("Crème Brûlée") == ["creme", "brulee"]
    assert TextProcessor(lowercase=False, strip_accents=False, tokenizer="whitespace")("Crème x,y") == ["Crème", "x,y"]


def test_bad_processing_option_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="stemmer"):
        TextProcessor(stemmer="lancaster")


def test_processor_pickles_without_its_cache() -> None:
    processor = TextProcessor(stemmer="porter")
    processor("running dogs")
    copy = pickle.loads(pickle.dumps(processor))
    assert copy._cache == {} and copy("running dogs") == ["run", "dog"]


# --- data -------------------------------------------------------------------------------------
def test_labels_accept_common_spellings_and_reject_others() -> None:
    assert binary_labels(["0", "1", "Positive", "neg", "TRUE", 1.0], "x").tolist() == [0, 1, 1, 0, 1, 1]
    with pytest.raises(DataError, match="neutral"):
        binary_labels(["positive", "neutral"], "x")


def test_user_table_errors_name_the_problem(tmp_path: Path) -> None:
    path = tmp_path / "reviews.csv"
    path.write_text("review,stars\ngood,1\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"no column 'text' \(its columns: review, stars\)"):
        read_table(path, "text", "label")
    path.write_text('text,label\ngood,1\n"",0\n', encoding="utf-8")
    with pytest.raises(DataError, match="empty text"):
        read_table(path, "text", "label")
    with pytest.raises(DataError, match="does not exist"):
        TextTable(path=str(tmp_path / "missing.csv")).prepare()


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl"])
def test_user_tables_of_each_format_split_into_train_val_test(tmp_path: Path, suffix: str) -> None:
    texts, labels = ToyReviews(train_size=50).load()["train"]
    path = tmp_path / f"data{suffix}"
    if suffix == ".jsonl":
        path.write_text(
            "".join(json.dumps({"body": t, "y": int(y)}) + "\n" for t, y in zip(texts, labels, strict=True))
        )
    else:
        separator = "\t" if suffix == ".tsv" else ","
        path.write_text(
            "body" + separator + "y\n" + "".join(f"{t}{separator}{y}\n" for t, y in zip(texts, labels, strict=True))
        )
    data = TextTable(path=str(path), text_column="body", label_column="y", test_size=10, val_size=8)
    data.prepare()
    assert [len(data.inputs(split)) for split in ("train", "val", "test")] == [32, 8, 10]
    all_texts = data.inputs("train") + data.inputs("val") + data.inputs("test")
    assert sorted(all_texts) == sorted(texts)


def test_validation_is_carved_from_train_only() -> None:
    data = ToyReviews(train_size=100, test_size=30, val_size=0.25)
    data.prepare()
    assert [len(data.targets(split)) for split in ("train", "val", "test")] == [75, 25, 30]
    limited = ToyReviews(train_size=100, test_size=30, val_size=0.25, train_limit=20)
    limited.prepare()
    assert len(limited.inputs("train")) == 20 and limited.inputs("val") == data.inputs("val")


def test_sentence_validation_holds_out_whole_sentences_and_the_phrases_only_they_contain() -> None:
    texts = ["a fine film", "a fine", "fine film", "film", "a dull plot", "dull plot", "dull", "plot"]
    labels = np.array([1, 1, 1, 1, 0, 0, 0, 1])
    assert whole_sentences(texts) == [0, 4]
    splits = hold_out_sentences(texts, labels, 1, seed=0)
    [val_text] = splits["val"][0]
    kept_sentence = "a dull plot" if val_text == "a fine film" else "a fine film"
    train = splits["train"][0]
    assert kept_sentence in train and val_text not in train
    assert all(text in kept_sentence for text in train)  # nothing found only inside the validation sentence
    assert len(train) == len(splits["train"][1])


def test_length_buckets_cover_every_text_once_in_batches_of_similar_length() -> None:
    lengths = np.random.default_rng(0).integers(1, 200, 1000)
    batches = list(LengthBuckets(lengths, batch_size=10, pool=10))
    assert sorted(i for batch in batches for i in batch) == list(range(1000))
    spread = np.mean([np.ptp(lengths[batch]) for batch in batches])
    assert spread < 0.25 * np.ptp(lengths)


def test_no_sst2_offline_exits_nonzero_naming_files_and_fixes(cli, no_mirror: None) -> None:
    result = cli("sentiment", "train")
    assert result.code == 1
    assert "train.tsv" in result.err and "dev.tsv" in result.err and "PORTFOLIO_DATA_DIR" in result.err


def test_csv_data_without_a_path_is_a_clear_error(cli, isolated: Path) -> None:
    result = cli("sentiment", "train", "data=csv")
    assert result.code == 1 and "data.path=FILE" in result.err
    assert not (isolated / "runs" / "sentiment").exists() or not any((isolated / "runs" / "sentiment").iterdir())


def test_rt_polarity_fold_out_of_range_is_a_clear_error(cli) -> None:
    result = cli("sentiment", "train", "data=rt_polarity", "data.fold=10")
    assert result.code == 1 and "data.fold=0..9" in result.err


# --- metrics ----------------------------------------------------------------------------------
def test_scores_and_calibration_error() -> None:
    targets = np.array([0, 0, 1, 1])
    confident = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]])
    scores = score(targets, confident)
    assert scores["acc"] == 0.75 and scores["roc_auc"] == 1.0 and scores["f1"] == pytest.approx(2 / 3)
    assert scores["nll"] == pytest.approx(-np.mean(np.log([0.9, 0.8, 0.7, 0.4])))
    assert set(scores) == {"acc", "nll", "ece", "f1", "roc_auc"}
    assert SentimentProject.metrics.undeclared(list(scores)) == []
    assert SentimentProject.metrics.goal("test/f1") == "max" and SentimentProject.metrics.goal("val/ece") == "min"
    assert np.isnan(score(np.array([1, 1]), np.array([[0.2, 0.8], [0.6, 0.4]]))["roc_auc"])  # one class only
    perfect = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    assert expected_calibration_error(targets, perfect) == 0.0
    overconfident = np.array([[0.99, 0.01]] * 4)
    assert expected_calibration_error(targets, overconfident) == pytest.approx(0.49)


# --- models learn the obvious rule ----------------------------------------------------------
def test_tfidf_lr_learns_the_rule_and_writes_plots_and_top_ngrams(trained_linear: Path) -> None:
    metrics = _metrics(trained_linear)
    assert metrics["metrics"]["test/acc"] >= 0.95
    assert metrics["headline"] == "test/acc" and metrics["goals"]["test/roc_auc"] == "max"
    assert metrics["model_details"]["chosen C"] in (0.5, 1.0, 2.0, 4.0, 8.0)
    assert metrics["model_details"]["n-gram features"] > 20
    plots = trained_linear / "plots"
    assert {"confusion_matrix.png", "reliability.png", "top_ngrams.png", "worst_errors.md"} <= {
        path.name for path in plots.iterdir()
    }


def test_tfidf_classifier_is_a_pipeline_that_fits_clones_saves_and_reads_its_weights(tmp_path: Path) -> None:
    texts, labels = ToyReviews(train_size=200).load()["train"]
    model = tfidf_logistic_regression(C=None, Cs=(1.0, 4.0), cv=2)
    assert isinstance(model, Pipeline) and isinstance(model, Explains) and isinstance(model, Describes)
    copy = clone(model)
    assert type(copy) is TfidfClassifier and copy.get_params()["classifier__Cs"] == [1.0, 4.0]
    model.fit(texts, labels)
    save_estimator(model, tmp_path / "model.skops")
    loaded = load_estimator(tmp_path / "model.skops", ("projects.sentiment.",))
    assert type(loaded) is TfidfClassifier
    assert np.array_equal(loaded.predict_proba(texts[:20]), model.predict_proba(texts[:20]))
    assert loaded.details() == model.details() and loaded.details()["chosen C"] in (1.0, 4.0)
    top = loaded.top_ngrams(count=3)
    assert {name for name, _ in top["positive"]} & {"word__great", "word__superb", "word__wonderful", "word__good"}
    assert all(weight < 0 for _, weight in top["negative"]) and all(weight > 0 for _, weight in top["positive"])
    [why] = loaded.explain(["a superb film"], count=2)
    assert len(why) == 2 and abs(why[0][1]) >= abs(why[1][1]) and why[0][1] > 0  # strongest first, towards positive
    [everything] = loaded.explain(["a superb film"], count=10_000)  # a linear score is the sum of its evidence
    total = sum(weight for _, weight in everything) + loaded.named_steps["classifier"].intercept_[0]
    assert total == pytest.approx(loaded.decision_function(["a superb film"])[0], rel=1e-4)
    fixed = tfidf_logistic_regression(C=2.0, char_ngrams=None).fit(texts, labels)
    assert fixed.details()["chosen C"] == 2.0


def test_each_model_declares_what_it_can_do() -> None:
    for network in (RecurrentClassifier, TransformerClassifier):
        assert issubclass(network, TextClassifier) and issubclass(network, Classifier)
        assert issubclass(network, Explains) and issubclass(network, Describes)
    assert issubclass(RecurrentClassifier, FitsOnTrain) and not issubclass(TransformerClassifier, FitsOnTrain)
    model = RecurrentClassifier(embedding_dim=4, hidden=2)
    model.fit_on_train(["a fine film", "a dull film"], np.array([1, 0]))
    assert model.details() == {"vocabulary": 6}  # <pad>, <unk>, a, film, fine, dull


@pytest.mark.parametrize("model", ["bilstm", "gru"])
def test_recurrent_models_learn_the_rule_and_reload_for_evaluate(cli, isolated: Path, model: str) -> None:
    # the GRU trains as an ensemble of two with adversarial training, so those are exercised end to end too
    extra = (
        ["model.embeddings=word2vec", "model.word2vec_epochs=2"]
        if model == "bilstm"
        else ["model.members=2", "model.adversarial=0.05"]
    )
    result = cli("sentiment", "train", *TOY, f"model={model}", *SMALL_RNN, *extra)
    assert result.code == 0, result.err
    [run] = _runs(isolated)
    assert _metrics(run)["metrics"]["test/acc"] >= 0.9
    assert _metrics(run)["model_details"]["vocabulary"] > 20
    again = cli("sentiment", "evaluate", f"run={run}")  # rebuilds the vocabulary from the weights file
    assert again.code == 0, again.err
    evaluation = json.loads((run / "evaluations" / "test" / "evaluation.json").read_text())
    assert evaluation["metrics"]["test/acc"] == pytest.approx(_metrics(run)["metrics"]["test/acc"])


def test_an_ensemble_averages_its_members_and_explains_them_together() -> None:
    torch.manual_seed(0)
    model = RecurrentClassifier(embedding_dim=8, hidden=4, members=3, embeddings="word2vec", word2vec_epochs=1)
    model.fit_vocabulary(["a fine film", "a dull film"] * 3)
    copies = model.embedding.weight.detach().chunk(3, dim=-1)
    assert not torch.equal(copies[0][2:], copies[2][2:])  # each member starts from a Word2Vec of its own seed
    model.eval()
    batch = model.encode(["a fine film", "dull"])
    members = model.member_logits(model.embed(batch), batch)
    assert members.shape == (3, 2, 2) and not torch.allclose(members[0], members[1])  # own layers and heads
    assert torch.allclose(model(["a fine film", "dull"]), members.mean(dim=0))
    assert [token for token, _ in model.explain(["a fine film"], count=3)[0]] != []
    with pytest.raises(UsageError, match="members"):
        RecurrentClassifier(members=0)


def test_adversarial_step_raises_the_loss_and_a_negative_size_is_refused() -> None:
    torch.manual_seed(0)
    model = RecurrentClassifier(embedding_dim=8, hidden=4, adversarial=0.2).eval()  # eval: no dropout noise
    model.fit_vocabulary(["a fine film", "a dull film"])
    encoded = model.encode(["a fine film", "a dull film"])
    labels = torch.tensor([1, 0])
    embeddings = model.embed(encoded)
    loss = torch.nn.functional.cross_entropy(model.classify(embeddings, encoded), labels)
    assert model.adversarial_loss(loss, embeddings, encoded, labels) > loss
    with pytest.raises(UsageError, match="adversarial"):
        RecurrentClassifier(adversarial=-1.0)


def test_word_dropout_reads_training_words_as_unknown_and_leaves_evaluation_alone() -> None:
    model = RecurrentClassifier(embedding_dim=4, hidden=2, word_dropout=1.0)
    model.fit_vocabulary(["a fine film"])
    batch = model.encode(["a fine film", "film"])
    unknown, padding = model.embedding.weight[1], model.embedding.weight[0]
    model.train()
    vectors = model.embed(batch)
    assert torch.equal(vectors[0], unknown.expand(3, 4)) and torch.equal(vectors[1, 1:], padding.expand(2, 4))
    model.eval()
    assert torch.equal(model.embed(batch)[0], model.embedding.weight[batch["ids"][0]])


def test_word2vec_embeddings_are_reproducible_from_the_seed() -> None:
    texts = ["a fine film", "a dull film", "fine acting and a fine story", "dull dull dull"] * 5
    weights = []
    for seed in (3, 3, 4):
        torch.manual_seed(seed)
        model = RecurrentClassifier(embeddings="word2vec", embedding_dim=8, hidden=4, word2vec_epochs=2)
        model.fit_vocabulary(texts)
        weights.append(model.embedding.weight.detach().clone())
    assert torch.equal(weights[0], weights[1]) and not torch.equal(weights[0], weights[2])


def test_minilm_embeddings_put_synonyms_together_and_need_its_width() -> None:
    model = RecurrentClassifier(embeddings="minilm", embedding_dim=384, hidden=4)
    model.fit_vocabulary(["a great film", "an excellent film", "a terrible film"])
    vectors = torch.nn.functional.normalize(model.embedding.weight.detach(), dim=1)
    great, excellent, terrible = (vectors[model.index[word]] for word in ("great", "excellent", "terrible"))
    assert great @ excellent > great @ terrible
    with pytest.raises(UsageError, match=r"model\.embedding_dim=384"):
        RecurrentClassifier(embeddings="minilm", embedding_dim=300, hidden=4).fit_vocabulary(["a film"])
    with pytest.raises(UsageError, match=r"model\.minilm_layer=9"):
        RecurrentClassifier(embeddings="minilm", embedding_dim=384, hidden=4, minilm_layer=9).fit_vocabulary(["a"])


def test_minilm_vectors_depend_on_the_layer_read_and_can_be_frozen() -> None:
    texts = ["a great film", "an excellent film", "a terrible film"]
    tables = []
    for layer in (0, 6):
        model = RecurrentClassifier(
            embeddings="minilm", embedding_dim=384, hidden=4, minilm_layer=layer, freeze_embeddings=True
        )
        model.fit_vocabulary(texts)
        tables.append(model.embedding.weight.detach().clone())
        assert not model.embedding.weight.requires_grad
        assert all(p.requires_grad for name, p in model.named_parameters() if not name.startswith("embedding"))
    assert not torch.allclose(tables[0], tables[1])


def test_transformer_fine_tunes_the_packaged_minilm_for_a_few_steps(cli, isolated: Path) -> None:
    result = cli(
        "sentiment",
        "train",
        *TOY,
        "model=transformer",
        "data.train_size=60",
        "data.test_size=24",
        "data.batch_size=16",
        "model.max_length=16",
        "model.lr=1e-4",
        "trainer.max_epochs=2",
        "trainer.num_sanity_val_steps=0",
    )
    assert result.code == 0, result.err
    [run] = _runs(isolated)
    metrics = _metrics(run)
    assert metrics["model_details"]["pretrained"] == "all-MiniLM-L6-v2"
    assert metrics["metrics"]["test/acc"] >= 0.75
    predicted = cli(
        "sentiment", "predict", "text=a wonderful, moving film", "explain=3", f"output={isolated / 'p.csv'}"
    )
    assert predicted.code == 0, predicted.err
    [row] = list(csv.DictReader((isolated / "p.csv").open()))
    assert row["text"] == "a wonderful, moving film" and row["explanation"].count("(") == 3
    assert "[CLS]" not in row["explanation"] and "[SEP]" not in row["explanation"]


def test_unknown_pretrained_model_is_a_clear_error(cli, isolated: Path) -> None:
    missing = isolated / "no-such-model"  # neither a folder nor a hub name: fails without asking the hub
    result = cli("sentiment", "train", *TOY, "model=transformer", f"model.pretrained={missing}")
    assert result.code == 2 and "model.pretrained=all-MiniLM-L6-v2" in result.err
