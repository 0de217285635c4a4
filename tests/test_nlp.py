"""The spaCy pipeline: training, loading, classifying, evaluating, loading data, the CLI.

A tiny corpus written here trains a model in a few seconds; the tests that need the model
trained on the project's corpus skip when it has not been built (``triagebot train``).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.errors import DataError
from bot.models import Classification, Span
from bot.nlp import (
    Classifier,
    Record,
    TrainConfig,
    cross_validate,
    default_model_dir,
    evaluate,
    load_classifier,
    load_records,
    train,
)
from bot.nlp.commands import eval_command, train_command
from bot.nlp.language import detect_language
from bot.nlp.normalize import MAX_MODEL_CHARS, norm_text, truncate
from bot.nlp.pipeline import ModelSettings

COMPLAINTS = [
    ("@Bank the app has been down since 7am and I can't pay my rent", "online_outage"),
    ("@Bank website not working again, error 503 every time I log in", "online_outage"),
    ("@Bank your app keeps crashing when I open my statements. useless", "online_outage"),
    ("@Bank online banking down for everyone?? can't see my balance", "online_outage"),
    ("@Bank login page just spins forever. third day in a row", "online_outage"),
    ("@Bank 45 minutes in the queue at the Leeds branch with one cashier", "queue_wait"),
    ("@Bank waited an hour in the branch today, only two counters open", "queue_wait"),
    ("@Bank the queue at Camden is out the door again. ridiculous", "queue_wait"),
    ("@Bank stood in line for 50 mins just to pay in a cheque", "queue_wait"),
    ("@Bank huge queue at the branch and nobody is serving", "queue_wait"),
    ("@Bank the cashier was so rude to my elderly mum today", "staff_service"),
    ("@Bank staff at the Bath branch laughed at me and refused to help", "staff_service"),
    ("@Bank the advisor hung up on me halfway through. terrible service", "staff_service"),
    ("@Bank branch manager shouted at a customer in front of everyone", "staff_service"),
    ("@Bank worst customer service ever, the clerk ignored me for 20 mins", "staff_service"),
    ("@Bank charged me a £25 fee for going £1 overdrawn. disgraceful", "fees_billing"),
    ("@Bank why have I been charged twice for my account fee this month??", "fees_billing"),
    ("@Bank hidden fees everywhere, I want a refund of these charges", "fees_billing"),
    ("@Bank someone hacked my account and took £400, fraud team not answering", "security_fraud"),
    ("@Bank got a scam text pretending to be you and lost my savings", "security_fraud"),
]
NOT_COMPLAINTS = [
    "@Bank what time does the Leeds branch open on sunday?",
    "@Bank thank you to Priya at the Bath branch, absolute star",
    "@Bank love the new app design, so easy to use",
    "@Bank can I open a savings account online?",
    "@Bank great service today, sorted in five minutes. thanks!",
    "@Bank do you have a branch in Croydon?",
    "@Bank thanks for the quick reply, all sorted now",
    "@Bank is the mortgage calculator on your website up to date?",
    "just paid in a cheque at @Bank, easy",
    "@Bank happy new year to the team at Camden!",
    "@Bank how do I change my address?",
    "@Bank brilliant help from the phone team this morning",
    "@Bank where can I find my sort code?",
    "@Bank cheers for sorting my card so fast",
    "@Bank what's the interest rate on the ISA?",
    "@Bank appreciate the staff at Leeds, always friendly",
    "@Bank does the app support Apple Pay?",
    "@Bank lovely chat with the advisor, thank you",
    "@Bank when do the new cards arrive for everyone?",
    "@Bank nice one, the new feature is great",
]

FAST = TrainConfig(
    max_epochs=4,
    patience=4,
    complaint_model=ModelSettings(use_cnn=False, char_ngrams=False, hash_length=2**14),
    category_model=ModelSettings(use_cnn=False, hash_length=2**14),
)


def tiny_records() -> list[Record]:
    return [Record(t, True, c, f"tiny:{i}") for i, (t, c) in enumerate(COMPLAINTS)] + [
        Record(t, False, None, f"tiny:{i + 100}") for i, t in enumerate(NOT_COMPLAINTS)
    ]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train(tiny_records(), seed=3, out_dir=tmp_path_factory.mktemp("model"), config=FAST)


@pytest.fixture(scope="module")
def classifier(model_dir: Path) -> Classifier:
    return load_classifier(model_dir)


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# --- train → load → classify ---------------------------------------------------------------


def test_train_load_classify(classifier: Classifier) -> None:
    results = classifier.classify_many(
        ["@Bank the app is down again and I can't log in", "@Bank thank you, lovely staff"]
    )
    assert all(isinstance(r, Classification) for r in results)
    down, thanks = results
    assert down.probability > thanks.probability
    assert down.complaint and not thanks.complaint
    assert down.category in classifier.categories
    assert 0.0 <= down.category_probability <= 1.0
    assert down.severity == "high" and any(r.startswith("outage") for r in down.severity_reasons)
    assert thanks.severity == "low"


def test_same_seed_same_model(tmp_path: Path) -> None:
    texts = [t for t, _ in COMPLAINTS[:5]] + NOT_COMPLAINTS[:5] + ["anything at all"]
    a = load_classifier(train(tiny_records(), seed=7, out_dir=tmp_path / "a", config=FAST))
    b = load_classifier(train(tiny_records(), seed=7, out_dir=tmp_path / "b", config=FAST))
    assert a.classify_many(texts) == b.classify_many(texts)
    assert a.threshold == b.threshold


def test_categories_come_from_the_data(classifier: Classifier) -> None:
    expected = {c for _, c in COMPLAINTS} | {"other"}
    assert set(classifier.categories) == expected


def test_configured_categories_reject_unknown_ones(tmp_path: Path) -> None:
    config = TrainConfig(categories=("queue_wait", "other"), max_epochs=1)
    with pytest.raises(DataError, match=r"tiny:0.*online_outage"):
        train(tiny_records(), out_dir=tmp_path, config=config)


def test_training_needs_both_classes(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="both"):
        train([Record("x", True)], out_dir=tmp_path, config=FAST)


def test_default_model_dir_reads_env_at_call_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRIAGE_MODEL_DIR", raising=False)
    assert default_model_dir().parts[-2:] == ("models", "complaints")
    monkeypatch.setenv("TRIAGE_MODEL_DIR", "/somewhere/else")
    assert default_model_dir() == Path("/somewhere/else")


def test_missing_model_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="triagebot train"):
        load_classifier(tmp_path)


# --- awkward posts -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "😡😡😡",
        "https://t.co/abc123",
        "@Bank @Other @Third",
        "#fail #NeverAgain",
        "&amp; &lt;3",
        "a" * 25_000,
        "the app is down " * 2_000,
    ],
)
def test_awkward_posts_are_classified(classifier: Classifier, text: str) -> None:
    result = classifier.classify(text)
    assert 0.0 <= result.probability <= 1.0
    assert result.severity in {"low", "medium", "high"}
    for span in result.spans:
        assert text[span.start : span.end] == span.text


PIECES = st.sampled_from(
    [
        "#",
        "@",
        "Never",
        "Again",
        "scam",
        "fire",
        "is",
        "down",
        "3hrs",
        "&amp;",
        "😡",
        "🏽",
        " ",
        "  ",
        "\n",
        "https://t.co/x",
        "can't",
        "sooo",
        "é",
        "Ж",
        "?",
        "!!!",
        "elderly",
        "0",
    ]
)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(PIECES, st.text(max_size=5)), max_size=40).map("".join))
def test_any_text_keeps_true_offsets(classifier: Classifier, text: str) -> None:
    doc, result = next(classifier.pipe([text]))
    assert doc.text == text
    for span in result.spans:
        assert text[span.start : span.end] == span.text


def test_empty_post_is_not_a_complaint(classifier: Classifier) -> None:
    alone = classifier.classify("")
    assert (alone.complaint, alone.category, alone.severity) == (False, "other", "low")
    assert classifier.classify_many(["", "@Bank the app is down"])[0].complaint is False


def test_long_posts_are_cut_for_the_model() -> None:
    text = "word " * 10_000
    cut = truncate(text)
    assert len(cut) <= MAX_MODEL_CHARS and text.startswith(cut) and not cut.endswith("wor")


def test_non_english_is_flagged_not_dropped(classifier: Classifier) -> None:
    texts = [
        "Mein Konto ist seit gestern gesperrt und niemand hilft mir",
        "Mon vol a été annulé et personne ne répond",
        "Мой рейс отменили, никто не отвечает",
        "the app is down again",
    ]
    results = classifier.classify_many(texts)
    assert [r.supported_language for r in results] == [False, False, False, True]
    assert [r.lang for r in results[:2]] == ["de", "fr"]
    assert results[3].lang == "en"


@pytest.mark.parametrize("text", ["", "😡", "https://x.co/a", "@a @b", "lol", "EST ok"])
def test_no_evidence_counts_as_supported(text: str) -> None:
    assert detect_language(text).supported


def test_span_offsets_point_into_the_original_text(classifier: Classifier) -> None:
    text = "@Bank   #ScamAlert &amp; sooo   someone HACKED my account 🙃 fire in the branch"
    result = classifier.classify(text)
    assert {s.label for s in result.spans} >= {"severity:fraud", "severity:safety"}
    for span in result.spans:
        assert text[span.start : span.end] == span.text


def test_span_hooks_add_their_spans(model_dir: Path) -> None:
    def locations(doc):  # type: ignore[no-untyped-def]
        return [Span(t.idx, t.idx + len(t), "location", t.text) for t in doc if t.text == "Leeds"]

    classifier = load_classifier(model_dir, span_hooks=[locations])
    text = "@Bank 45 minutes queueing in Leeds"
    (result,) = classifier.classify_many([text])
    (span,) = [s for s in result.spans if s.label == "location"]
    assert text[span.start : span.end] == "Leeds"
    doc, _ = next(classifier.pipe([text]))
    assert doc.text == text


def test_norms() -> None:
    assert norm_text("https://t.co/x") == "xxurl"
    assert norm_text("@Some_Bank") == "xxuser"
    assert norm_text("Sooooo") == "soo"
    assert norm_text("&amp;") == "&"
    assert norm_text("don’t") == "don't"
    assert norm_text("42") == "xxnum"


def test_hashtags_and_units_split_without_moving_offsets(classifier: Classifier) -> None:
    text = "#NeverAgain waited 3hrs"
    doc, _ = next(classifier.pipe([text]))
    assert [t.text for t in doc] == ["#", "Never", "Again", "waited", "3", "hrs"]
    assert [t.norm_ for t in doc][1:3] == ["never", "again"]
    assert "".join(t.text_with_ws for t in doc) == text


# --- loading labelled files ----------------------------------------------------------------


def test_label_spellings(tmp_path: Path) -> None:
    rows = ["1", "0", "TRUE", "false", "Yes", "no", "complaint", "OTHER", " y ", "n"]
    csv_text = "text,label\n" + "".join(f"post {i},{v}\n" for i, v in enumerate(rows))
    records = load_records(write(tmp_path / "l.csv", csv_text))
    assert [r.complaint for r in records] == [True, False] * 5
    jsonl = "\n".join(json.dumps({"text": "t", "label": v}) for v in [True, False, 1, 0, "Yes"])
    assert [r.complaint for r in load_records(write(tmp_path / "l.jsonl", jsonl))] == [
        True,
        False,
        True,
        False,
        True,
    ]


def test_bad_label_names_file_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path / "bad.csv", 'text,label\nfine,1\n"two\nlines",0\nhmm,maybe\n')
    with pytest.raises(DataError, match=r"bad\.csv, line 5, column 'label': invalid label 'maybe'"):
        load_records(path)


def test_missing_column_names_file_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path / "cols.csv", "body,label\nx,1\n")
    with pytest.raises(DataError, match=r"cols\.csv, line 1, column 'text': missing"):
        load_records(path)
    jsonl = write(tmp_path / "cols.jsonl", '{"text": "a", "label": 1}\n\n{"text": "b"}\n')
    with pytest.raises(DataError, match=r"cols\.jsonl, line 3, column 'label': missing"):
        load_records(jsonl)


def test_bad_json_line_and_unknown_type(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"line 2: invalid JSON"):
        load_records(write(tmp_path / "x.jsonl", '{"text": "a", "label": 1}\n{oops\n'))
    with pytest.raises(DataError, match="unsupported file type"):
        load_records(write(tmp_path / "x.txt", "hello"))


def test_complaint_values_and_category_map(tmp_path: Path) -> None:
    path = write(
        tmp_path / "s.csv",
        "text,sentiment,reason\na,negative,Late\nb,positive,\nc,negative,Unsure\nd,neutral,\n",
    )
    records = load_records(
        path,
        "text",
        "sentiment",
        "reason",
        complaint_values={"negative"},
        category_map={"Late": "disruption", "Unsure": None},
    )
    assert [(r.complaint, r.category) for r in records] == [
        (True, "disruption"),
        (False, None),
        (True, None),
        (False, None),
    ]
    with pytest.raises(DataError, match=r"line 2, column 'reason': category 'Late'"):
        load_records(
            path, "text", "sentiment", "reason", complaint_values={"negative"}, category_map={}
        )


# --- evaluation and cross-validation -------------------------------------------------------


def test_evaluate_reports_metrics(classifier: Classifier) -> None:
    report = evaluate(classifier, tiny_records())
    for key in ("n", "precision", "recall", "f1", "accuracy", "category_macro_f1"):
        assert key in report
    assert report["n"] == 40 and report["f1"] > 0.8
    assert set(report["categories"]) >= {"queue_wait", "online_outage"}


def test_cross_validate_reports_folds() -> None:
    report = cross_validate(tiny_records(), k=3, seed=1, config=FAST)
    assert report["k"] == 3 and len(report["folds"]) == 3
    assert sum(f["n"] for f in report["folds"]) == 40
    for key in ("f1", "f1_std", "precision", "recall", "accuracy"):
        assert isinstance(report[key], float)


# --- the CLI -------------------------------------------------------------------------------


def eval_csv(tmp_path: Path) -> Path:
    lines = ["text,label,category"]
    lines += [f'"{t}",complaint,{c}' for t, c in COMPLAINTS]
    lines += [f'"{t}",other,' for t in NOT_COMPLAINTS]
    return write(tmp_path / "eval.csv", "\n".join(lines) + "\n")


def test_eval_json(tmp_path: Path, model_dir: Path) -> None:
    result = CliRunner().invoke(
        eval_command,
        [
            "--data",
            str(eval_csv(tmp_path)),
            "--category-column",
            "category",
            "--json",
            "--model",
            str(model_dir),
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert {"n", "precision", "recall", "f1", "accuracy", "category_macro_f1"} <= set(report)


def test_eval_cv_json(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        eval_command, ["--data", str(eval_csv(tmp_path)), "--cv", "2", "--json", "--seed", "2"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert {"n", "f1", "f1_std", "precision", "recall", "accuracy", "folds"} <= set(report)
    assert len(report["folds"]) == 2


def test_cli_bad_input_exits_2(tmp_path: Path, model_dir: Path) -> None:
    runner = CliRunner()
    bad = write(tmp_path / "bad.csv", "text,label\nhello,perhaps\n")
    result = runner.invoke(eval_command, ["--data", str(bad), "--model", str(model_dir)])
    assert result.exit_code == 2 and "line 2, column 'label'" in result.output
    result = runner.invoke(eval_command, ["--data", str(tmp_path / "nope.csv")])
    assert result.exit_code == 2 and "no such file" in result.output
    result = runner.invoke(
        eval_command, ["--data", str(bad), "--label-column", "gold", "--model", str(model_dir)]
    )
    assert result.exit_code == 2 and "column 'gold'" in result.output
    result = runner.invoke(train_command, ["--data", str(bad), "--out", str(tmp_path / "m")])
    assert result.exit_code == 2 and "invalid label" in result.output


def test_train_command(tmp_path: Path) -> None:
    data = write(
        tmp_path / "train.jsonl",
        "\n".join(
            json.dumps({"text": r.text, "complaint": r.complaint, "category": r.category})
            for r in tiny_records()
        ),
    )
    out = tmp_path / "model"
    result = CliRunner().invoke(train_command, ["--data", str(data), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert load_classifier(out).classify("@Bank queue again").category in {
        c for _, c in COMPLAINTS
    } | {"other"}


# --- the model trained on the project's corpus ---------------------------------------------

# Hard kinds from the corpus: sarcasm, jokes, praise that names a rival's failure, replies
# between customers, complaints phrased as questions, and very short posts.
HARD_CASES = [
    (
        "@Shieldwell incredible value, paying £900 a year for a policy that covers everything "
        "except anything that happens",
        True,
    ),
    (
        "@VoltaPower the kettle is the real MVP of british energy consumption. every ad break. "
        "nationwide spike",
        False,
    ),
    (
        "@PacificaJet after the nightmare with @AeroLumen last month I'm so glad this trip was "
        "easy. thank you",
        False,
    ),
    ("@TravelsureUK the airline was useless but you sorted everything. thank you", False),
    ("@dan_h @NatPassportSvc 14 weeks for me, and still nothing. it's a joke", True),
    ("@BluWing @dan_p_ this means us! claim for the Tenerife one", False),
    (
        "@PennantCU I was told there were no fees on this checking account so why am I seeing a "
        '$4 "service charge"?',
        True,
    ),
    ("@ZappMobile no reply to my ticket. day 5", True),
]


@pytest.fixture(scope="module")
def full_classifier() -> Classifier:
    path = default_model_dir()
    if not (path / "config.cfg").is_file():
        pytest.skip(f"no model trained on the project corpus at {path} (run `triagebot train`)")
    return load_classifier(path)


@pytest.mark.parametrize(("text", "complaint"), HARD_CASES)
def test_full_model_hard_cases(full_classifier: Classifier, text: str, complaint: bool) -> None:
    assert full_classifier.classify(text).complaint is complaint
