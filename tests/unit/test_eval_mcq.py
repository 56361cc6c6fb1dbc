"""`medchat eval mcq` without a model: every file format, clear errors, picking, Wilson, baselines."""

from __future__ import annotations

import json
import random

import pytest

from medchat.core.errors import UserError
from medchat.app.evaluation.mcq import evaluate, pick, question_messages, wilson
from medchat.app.evaluation.mcq_formats import MCQItem, MCQSet, load_mcq

MEDQA = [
    {"question": "Which vitamin deficiency causes scurvy?", "options": {"A": "Vitamin A", "B": "Vitamin C",
     "C": "Vitamin D", "D": "Vitamin K"}, "answer_idx": "B", "answer": "Vitamin C"},
    {"question": "Which organ makes insulin?", "options": {"A": "Pancreas", "B": "Liver", "C": "Spleen",
     "D": "Kidney", "E": "Stomach"}, "answer_idx": "A"},
]
MEDMCQA = [
    {"question": "Which bone is in the thigh?", "opa": "Femur", "opb": "Radius", "opc": "Ulna", "opd": "Tibia",
     "cop": 1, "choice_type": "single"},
    {"question": "Normal adult resting heart rate per minute?", "opa": "10-20", "opb": "30-40", "opc": "60-100",
     "opd": "150-200", "cop": "3"},
]
PUBMEDQA = {
    "101": {"QUESTION": "Does regular walking lower blood pressure?",
            "CONTEXTS": ["Adults walked daily for twelve weeks.", "Systolic pressure fell in the walking group."],
            "LABELS": ["METHODS", "RESULTS"], "final_decision": "yes"},
    "102": {"QUESTION": "Does eye colour predict flu risk?", "CONTEXTS": ["No link was found."],
            "final_decision": "no"},
    "103": {"QUESTION": "Does a short nap improve recall?", "CONTEXTS": [], "final_decision": "maybe"},
}
CMB = [
    {"exam_type": "医师考试", "question": "维生素C缺乏可引起哪种疾病？", "option": {"A": "坏血病", "B": "佝偻病",
     "C": "夜盲症", "D": "脚气病", "E": ""}, "answer": "A", "question_type": "单项选择题"},
    {"question": "下列哪些属于抗生素？", "option": {"A": "青霉素", "B": "阿莫西林", "C": "胰岛素", "D": "维生素"},
     "answer": "AB", "question_type": "多项选择题"},
    {"question": "胰岛素由哪个器官分泌？", "option": {"A": "肝脏", "B": "胰腺", "C": "脾脏"}, "answer": "B",
     "question_type": "单项选择题"},
]
CMEXAM = [
    {"Question": "成人正常体温约为多少？", "Options": "A 35℃\nB 37℃\nC 39℃\nD 41℃", "Answer": "B",
     "Explanation": ""},
    {"Question": "下列哪些是呼吸系统器官？", "Options": "A. 肺\nB. 气管\nC. 肝", "Answer": "AB"},
]


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def _json(path, value):
    path.write_text(json.dumps(value, ensure_ascii=False), encoding="utf-8")
    return path


@pytest.fixture
def files(tmp_path):
    return {"medqa": _jsonl(tmp_path / "medqa.jsonl", MEDQA), "medmcqa": _jsonl(tmp_path / "medmcqa.jsonl", MEDMCQA),
            "pubmedqa": _json(tmp_path / "ori_pqal.json", PUBMEDQA), "cmb": _json(tmp_path / "cmb.json", CMB),
            "cmexam": _jsonl(tmp_path / "cmexam.jsonl", CMEXAM)}


@pytest.mark.parametrize("fmt", ["auto", "explicit"])
def test_every_format_parses(files, fmt):
    def load(name, kind):
        return load_mcq(files[name], kind if fmt == "explicit" else "auto")

    medqa = load("medqa", "medqa")
    assert medqa.format == "medqa" and [it.answer for it in medqa.items] == ["B", "A"]
    assert medqa.items[0].options[1] == ("B", "Vitamin C") and len(medqa.items[1].options) == 5
    assert medqa.items[0].where == f"{files['medqa']}:1"

    medmcqa = load("medmcqa", "medmcqa")
    assert medmcqa.format == "medmcqa" and [it.answer for it in medmcqa.items] == ["A", "C"]  # 1-based cop
    assert medmcqa.items[1].options[2] == ("C", "60-100") and medmcqa.notes == []

    pub = load("pubmedqa", "pubmedqa")
    assert pub.format == "pubmedqa" and [it.answer for it in pub.items] == ["A", "B", "C"]
    assert pub.items[0].options == [("A", "yes"), ("B", "no"), ("C", "maybe")]
    assert "Systolic pressure fell" in pub.items[0].context and pub.items[1].where.endswith(":102")

    cmb = load("cmb", "cmb")
    assert cmb.format == "cmb" and [it.answer for it in cmb.items] == ["A", "B"]
    assert cmb.skipped_multi_answer == 1 and cmb.items[0].letters == ["A", "B", "C", "D"]  # empty E dropped
    assert cmb.items[0].question == CMB[0]["question"]

    cmexam = load("cmexam", "cmb")
    assert cmexam.format == "cmb" and len(cmexam.items) == 1 and cmexam.skipped_multi_answer == 1
    assert cmexam.items[0].options == [("A", "35℃"), ("B", "37℃"), ("C", "39℃"), ("D", "41℃")]


def test_medmcqa_zero_based_when_a_row_has_cop_0(tmp_path):
    rows = [dict(MEDMCQA[0], cop=0), dict(MEDMCQA[1], cop=2)]
    data = load_mcq(_jsonl(tmp_path / "m.jsonl", rows))
    assert [it.answer for it in data.items] == ["A", "C"] and "0-based" in data.notes[0]


def test_limit_counts_scored_questions(files):
    assert len(load_mcq(files["cmb"], limit=1).items) == 1
    assert [it.answer for it in load_mcq(files["medmcqa"], limit=1).items] == ["A"]
    with pytest.raises(UserError, match="--limit"):
        load_mcq(files["medqa"], limit=0)


def test_pubmedqa_contexts_and_options_are_in_the_prompt(files):
    item = load_mcq(files["pubmedqa"]).items[0]
    [message] = question_messages(item)
    text = message["content"]
    assert message["role"] == "user"
    assert text.index("Adults walked daily") < text.index(item.question) < text.index("A. yes")
    assert "B. no\nC. maybe" in text


def _bad(tmp_path, rows, name="bad.jsonl"):
    return _jsonl(tmp_path / name, rows)


@pytest.mark.parametrize("rows, row, message", [
    ([MEDQA[0], dict(MEDQA[1], answer_idx="F")], 2, "answer_idx 'F' is not one of the options A, B, C, D, E"),
    ([MEDQA[0], {k: v for k, v in MEDQA[1].items() if k != "question"}], 2, "missing 'question'"),
    ([dict(MEDQA[0], options={"A": "only one"}, answer_idx="A")], 1, "needs at least 2 options"),
    ([dict(MEDQA[0], options=["x", "y"])], 1, "'options' must be an object"),
    ([MEDMCQA[0], dict(MEDMCQA[1], cop=5)], 2, "'cop' must be a number from 1 to 4, got 5"),
    ([{k: v for k, v in MEDMCQA[0].items() if k != "cop"} | {"opb": "x", "cop": None}], 1, "'cop' must be a number"),
    ([dict(MEDMCQA[0], opc="")], 1, "'opc' must be non-empty text"),
    ([CMB[0], dict(CMB[2], answer="Z")], 2, "answer 'Z' is not one of the options A, B, C"),
    ([CMB[0], dict(CMB[2], answer="选B")], 2, "must be option letters"),
    ([dict(CMEXAM[0], Options="A 35℃\n???")], 1, "cannot read the option line"),
])
def test_malformed_row_names_file_and_row(tmp_path, rows, row, message):
    path = _bad(tmp_path, rows)
    with pytest.raises(UserError) as err:
        load_mcq(path)
    assert str(err.value).startswith(f"{path}:{row}: ") and message in str(err.value)


def test_malformed_pubmedqa_names_the_id(tmp_path):
    path = _json(tmp_path / "p.json", {**PUBMEDQA, "104": {"QUESTION": "Q?", "CONTEXTS": [], "final_decision": "perhaps"}})
    with pytest.raises(UserError, match=rf"^{path}:104: 'final_decision' must be yes, no or maybe"):
        load_mcq(path)


@pytest.mark.parametrize("text, message", [
    ('{"question": "q", "options": {"A": "a", "B": "b"}, "answer_idx": "A"}\n{"question": oops}\n', ":2: not valid JSON"),
    ('[{"question": "q",\n "options": }]', ":2: not valid JSON"),
    ('[1, 2]', ":1: expected a JSON object"),
    ('[{"prompt": "q", "choices": ["a", "b"]}]', "cannot tell the question format"),
    ('', "no questions in the file"),
    ('"just text"', "expected JSON rows"),
])
def test_bad_files_give_one_clear_line(tmp_path, text, message):
    path = tmp_path / "f.jsonl"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(UserError) as err:
        load_mcq(path)
    assert message in str(err.value) and str(err.value).startswith(str(path)) and "\n" not in str(err.value)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(UserError, match="no such file"):
        load_mcq(tmp_path / "nope.jsonl")
    with pytest.raises(UserError, match="not a file"):
        load_mcq(tmp_path)


def test_only_multi_answer_questions_is_an_error(tmp_path):
    with pytest.raises(UserError, match="no single-answer questions.*1 multi-answer"):
        load_mcq(_json(tmp_path / "c.json", [CMB[1]]))


def test_wilson_matches_published_values():
    # Newcombe (1998), Stat Med 17:857, Table I, method 3 (Wilson score, no continuity correction)
    for (correct, n), (lo, hi) in {(81, 263): (0.2553, 0.3662), (15, 148): (0.0624, 0.1605),
                                   (0, 20): (0.0, 0.1611), (1, 29): (0.0061, 0.1718),
                                   (29, 29): (0.8830, 1.0)}.items():
        got = wilson(correct, n)
        assert got == pytest.approx((lo, hi), abs=5e-5), (correct, n)


def test_pick_sum_mean_and_ties():
    scores = [(-2.0, 1), (-3.0, 3), (-2.0, 1)]  # option 1 is longer: worse sum, better mean
    assert pick(scores, "sum") == 0 and pick(scores, "mean") == 1
    assert pick([(-1.0, 1), (-1.0, 1)], "sum") == 0  # a tie goes to the first option


def _synthetic(n, k=4, seed=0):
    rng = random.Random(seed)
    items = [MCQItem(f"q{i}", [(letter, f"option {letter}") for letter in "ABCDE"[:k]], rng.choice("ABCDE"[:k]))
             for i in range(n)]
    return MCQSet(items, "medqa", "synthetic.jsonl")


def test_oracle_scores_one_and_uniform_scores_near_random():
    data = _synthetic(2000)

    def oracle(items):  # the gold option is far more likely, and its continuation longer
        return [[(-0.5, 3) if letter == it.answer else (-4.0, 1) for letter in it.letters] for it in items]

    rng = random.Random(1)

    def uniform(items):  # every option equally likely a priori: random scores
        return [[(rng.uniform(-5, 0), 2) for _ in it.options] for it in items]

    result = evaluate(data, {"oracle": oracle, "uniform": uniform}, "mean")
    assert result["profiles"]["oracle"]["accuracy"] == 1.0 and result["profiles"]["oracle"]["n"] == 2000
    assert result["baselines"]["random"] == pytest.approx(0.25)
    uni = result["profiles"]["uniform"]
    assert abs(uni["accuracy"] - 0.25) < 0.04 and uni["ci95"][0] < 0.25 < uni["ci95"][1]
    assert evaluate(data, {"oracle": oracle}, "sum")["profiles"]["oracle"]["accuracy"] == 1.0


def test_result_shape_and_baselines():
    items = [MCQItem("q1", [("A", "a"), ("B", "b")], "A"), MCQItem("q2", [("A", "a"), ("B", "b"), ("C", "c")], "A"),
             MCQItem("q3", [("A", "a"), ("B", "b"), ("C", "c"), ("D", "d")], "C"),
             MCQItem("q4", [("A", "a"), ("B", "b"), ("C", "c"), ("D", "d")], "A")]
    data = MCQSet(items, "cmb", "x.json", skipped_multi_answer=2)

    def always_b(its):
        return [[(-1.0, 1) if letter == "B" else (-2.0, 1) for letter in it.letters] for it in its]

    result = evaluate(data, {"b": always_b})
    assert result["baselines"] == pytest.approx({"majority": 0.75, "random": (1 / 2 + 1 / 3 + 1 / 4 + 1 / 4) / 4})
    assert result["profiles"]["b"] == {"accuracy": 0.0, "ci95": list(wilson(0, 4)), "n": 4}
    assert result["format"] == "cmb" and result["file"] == "x.json" and result["skipped_multi_answer"] == 2
    with pytest.raises(UserError, match="--score"):
        evaluate(data, {"b": always_b}, "max")
