"""Build the grounded-dialogue SFT data for the `doctor` profile (trainer/recipes/doctor.yaml).

    PYTHONPATH=. python scripts/build_doctor_data.py            # writes trainer/samples/doctor_sft_*.json

Every example is rendered exactly as the chat renders a turn (medchat.app.session.ChatSession.build_messages):
system = DOCTOR_SYSTEM_PROMPT, earlier turns plain, the newest user turn = format_context(passages) +
the key lines (kb.key_facts.ranked) + "\n\nQuestion: ..." with passages from the real retriever
(kb.retrieve(query, kb="default")); for a follow-up the retrieval query is the previous user question +
the new one, as in ChatSession.retrieve.

Only conditions of the TRAIN split of kb/data/grounded/questions.jsonl are used; an example is dropped
when any retrieved passage comes from a condition whose split is `test`. Answers restate the listed key
lines of the question's condition in rank order (lightly reworded, nothing added), each with its [n];
the expected facts never choose them, so the model learns a rule it can see. Abstentions say the
passages do not cover the question. Deterministic for a given seed, KB and question file; the sha256 of
every input and output goes to trainer/samples/doctor_sft_manifest.json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import re
from pathlib import Path

import kb
from kb.grounded import DEFAULT_FILE, condition_names, load_questions, section_templates, split_of
from kb.key_facts import PROMPT_LIMIT, content_words, ranked
from medchat.app.context import format_context
from medchat.core.settings import DOCTOR_SYSTEM_PROMPT

ROOT = Path(__file__).resolve().parent.parent
KB_DIR = ROOT / "kb" / "data" / "default"
OUT_DIR = ROOT / "trainer" / "samples"
TRAIN_FILE, VAL_FILE, MANIFEST = "doctor_sft_train.json", "doctor_sft_val.json", "doctor_sft_manifest.json"
SEEK = ("Red flags", "When to seek care")

TEMPLATES, FOLLOW_UPS = section_templates()  # kb/data/grounded/section_templates.json
ABSTAIN = [
    "The passages I have do not cover this, so I can't answer it reliably. Please ask a doctor or pharmacist.",
    "The reference passages here are about other topics and don't answer this question. A doctor or pharmacist "
    "can give you a reliable answer.",
    "I don't have information on this in the passages provided, so I won't guess. Please check with a clinician.",
    "None of the passages I was given cover this, and I'd rather not guess about your health. Please speak to "
    "your doctor, nurse or pharmacist.",
    "I can't answer that reliably: the passages I have don't cover it. A clinician can advise you properly.",
]
GENERIC_SEEK = ["If symptoms are severe or getting worse, please see a clinician.",
                "If you are worried or it is getting worse, see a doctor."]
LIST_LEADS = {"Symptoms": ["Symptoms include", "Common signs are", "Typical symptoms are"],
              "Red flags": ["Warning signs that need urgent care include", "Get urgent help for"]}
SERIOUS_RE = re.compile(r"serious|symptom|symtom|sign|worr|emergency|danger|feel like", re.I)
SWAPS = [(r"\bapproximately\b", "about"), (r"\bindividuals\b", "people"), (r"\bphysician\b", "doctor"),
         (r"\bcommonly\b", "often")]


# --- the knowledge base ----------------------------------------------------------------------
def units(text: str) -> list[str]:
    """A passage's bullet items and sentences, each one statement."""
    out = []
    for item in re.split(r"(?:^|\s)-\s(?=\S)", text.strip()):
        out += [s.strip() for s in re.split(r"(?<=[.!?])\s+(?=[A-Z])", item) if len(s.strip()) > 12]
    return out


def simplify(sentence: str) -> str:
    """Light rewording that removes nothing factual and adds nothing."""
    s = sentence.strip().rstrip(";,. ")
    for pat, rep in SWAPS:
        s = re.sub(pat, rep, s)
    return s[0].upper() + s[1:]


def lower(s: str) -> str:
    """Lowercase the first letter unless it starts an acronym (ECG, HIV)."""
    return s[0].lower() + s[1:] if len(s) > 1 and not s[1].isupper() else s


def cite(sentence: str, n: int) -> str:
    return f"{simplify(sentence)} [{n}]."


def pick_units(passage, question: str, most: int = 3) -> list[str]:
    """The passage's statements sharing most words with `question`, in passage order."""
    items = units(passage.text)
    q = content_words(question)
    scored = [(len(q & content_words(u)) - 0.3 * i, i) for i, u in enumerate(items)]
    keep = sorted(i for _, i in sorted(scored, reverse=True)[:most])
    return [items[i] for i in keep]


def is_list(passage) -> bool:
    return passage.text.lstrip().startswith("-")


# --- examples --------------------------------------------------------------------------------
class Builder:
    def __init__(self, seed: int):
        self.rng = random.Random(seed)
        self.cache: dict[str, list] = {}
        self.embedder = kb.embedder_for("default")

    def retrieve(self, query: str, k: int = 4) -> list:
        key = f"{k}|{query}"
        if key not in self.cache:
            self.cache[key] = kb.retrieve(query, kb="default", k=k)
        return self.cache[key]

    def lines(self, question: str, passages, query: str = "") -> list:
        """The ranked sentences the chat lists under the passages (ChatSession.rank_key_facts); `query`
        is what the turn searched with, for a follow-up."""
        return ranked(question, passages, self.embedder, query=query)

    @staticmethod
    def clean(passages) -> bool:
        """2-4 passages and none from a test-split condition."""
        return 2 <= len(passages) <= 4 and all(split_of(p.source) == "train" for p in passages)

    def answer(self, passages, question: str, source: str, section: str = "", query: str = "") -> str | None:
        """The listed sentences of the relevant condition, restated in rank order with their [n]
        (up to PROMPT_LIMIT; one fewer and the "when to seek care" advice for a worried question, unless it asks exactly
        that and the listed seek-care lines lead the answer); None when the
        condition's passage, or the asked section of it, was not retrieved. Only what the prompt shows
        decides which sentences: the model can learn it."""
        own = [(i, p) for i, p in enumerate(passages, 1) if p.source == source]
        if not own or (section and not any(p.section == section for _, p in own)):
            return None
        asks_seek = section in SEEK  # "when should I see a doctor": the seek-care lines are the answer itself
        serious = asks_seek or bool(SERIOUS_RE.search(question))
        listed = [f for f in self.lines(question, passages, query) if f.source == source]
        body = [(f.n, f.sentence, f.section) for f in listed if asks_seek or not (serious and f.section in SEEK)]
        if not body:  # nothing of the condition made the list: its first passage's closest statements
            n, p = own[0]
            body = [(n, u, p.section) for u in pick_units(p, question, most=3)]
        body = body[:PROMPT_LIMIT - 1 if serious else PROMPT_LIMIT]
        lead = LIST_LEADS.get(body[0][2])
        listed_passages = {n for n, _, _ in body}
        if lead and len(body) > 1 and len(listed_passages) == 1 and is_list(passages[body[0][0] - 1]) \
                and all(sec == body[0][2] for _, _, sec in body):  # bullets read as one list
            items = [f"{lower(simplify(u))} [{n}]" for n, u, _ in body]
            sentences = [f"{self.rng.choice(lead)} {', '.join(items[:-1])} and {items[-1]}."]
        else:
            sentences = [cite(u, n) for n, u, _ in body]
        if serious and not any(sec in SEEK for _, _, sec in body):
            seek = [f for f in listed if f.section in SEEK]
            seek_passages = [(i, p) for i, p in own if p.section in SEEK]
            if seek:
                sentences.append(cite(seek[0].sentence, seek[0].n))
            elif seek_passages:
                i, p = seek_passages[0]
                sentences.append(cite(pick_units(p, "emergency urgent help", most=1)[0], i))
            else:
                sentences.append(self.rng.choice(GENERIC_SEEK))
        return " ".join(sentences)

    def abstain(self) -> str:
        return self.rng.choice(ABSTAIN)

    def prompt(self, passages, question: str, query: str = "") -> str:
        return f"{format_context(passages, key_lines=self.lines(question, passages, query))}\n\nQuestion: {question}"

    def single(self, question: str, source: str, section: str) -> dict | None:
        passages = self.retrieve(question)
        if not self.clean(passages):
            return None
        reply = self.answer(passages, question, source, section)
        return None if reply is None else convo([(self.prompt(passages, question), reply)], "grounded")

    def forced_abstain(self, question: str, source: str, others: list[str]) -> dict | None:
        """A covered question shown only passages of other conditions: the answer must abstain."""
        passages = [p for p in self.retrieve(question, k=8) if p.source != source][:4]
        if len(passages) < 2:
            other = self.rng.choice([o for o in others if o != source])
            passages = self.retrieve(f"{other} treatment symptoms")[:self.rng.choice([2, 3, 4])]
        if not self.clean(passages) or any(p.source == source for p in passages):
            return None
        return convo([(self.prompt(passages, question), self.abstain())], "abstain")

    def uncovered(self, question: str, others: list[str]) -> dict | None:
        passages = self.retrieve(question)
        if len(passages) < 2:  # the chat would send no context; show unrelated passages instead
            passages = self.retrieve(f"{self.rng.choice(others)} symptoms")[:self.rng.choice([2, 3])]
        if not self.clean(passages):
            return None
        return convo([(self.prompt(passages, question), self.abstain())], "abstain")

    def follow_up(self, first: str, second: str, source: str, section: str) -> dict | None:
        """Turn 1 answered from its own passages (kept plain, as the chat keeps it), then turn 2 with
        passages retrieved for 'previous question + new one'."""
        query = kb.turn_query([first], second)
        p1, p2 = self.retrieve(first), self.retrieve(query)
        if not (self.clean(p1) and self.clean(p2)):
            return None
        a1 = self.answer(p1, first, source)
        a2 = self.answer(p2, second, source, section, query)
        if a1 is None or a2 is None:
            return None
        return convo([(first, a1), (self.prompt(p2, second, query), a2)], "follow-up")


def convo(turns: list[tuple[str, str]], kind: str) -> dict:
    msgs = []
    for user, reply in turns:
        msgs += [{"from": "human", "value": user}, {"from": "gpt", "value": reply}]
    return {"system": DOCTOR_SYSTEM_PROMPT, "conversations": msgs, "kind": kind}


def typo(text: str, rng: random.Random) -> str:
    """Drop or swap one letter of a longer word, as people type."""
    words = text.split()
    idx = [i for i, w in enumerate(words) if len(w) > 4 and w.isalpha()]
    if not idx:
        return text
    i = rng.choice(idx)
    w, j = words[i], rng.randrange(1, len(words[i]) - 2)
    words[i] = w[:j] + w[j + 1:] if rng.random() < 0.5 else w[:j] + w[j + 1] + w[j] + w[j + 2:]
    return " ".join(words)


def build(seed: int = 13, n_train: int = 900, n_val: int = 60) -> tuple[list, list, dict]:
    rng = random.Random(seed)
    b = Builder(seed)
    questions = [q for q in load_questions() if q.split == "train"]
    conditions = sorted({q.source for q in questions if q.covered})
    val_conds = set(sorted(conditions, key=lambda s: hashlib.sha1(f"val{seed}{s}".encode()).hexdigest())[:8])
    names = {c: condition_names(KB_DIR / c) for c in conditions}
    titles = [names[c][0] for c in conditions]

    pools = {"grounded": [], "abstain": [], "follow-up": []}  # (condition, example)
    for q in questions:
        if not q.covered:
            ex = b.uncovered(q.question, titles)
            if ex:
                pools["abstain"].append(("", ex))
        elif q.context:
            ex = b.follow_up(q.context[-1], q.question, q.source, q.section)
            if ex:
                pools["follow-up"].append((q.source, ex))
        else:
            ex = b.single(q.question, q.source, q.section)
            if ex:
                pools["grounded"].append((q.source, ex))
            if rng.random() < 0.4:
                ex = b.forced_abstain(q.question, q.source, titles)
                if ex:
                    pools["abstain"].append((q.source, ex))
    for c in conditions:
        for section, temps in TEMPLATES.items():
            for t in rng.sample(temps, 2):
                name = rng.choice(names[c])
                question = t.format(n=name)
                question = typo(question, rng) if rng.random() < 0.15 else question
                ex = b.single(question, c, section)
                if ex:
                    pools["grounded"].append((c, ex))
        for _ in range(2):
            s1, s2 = rng.sample(sorted(FOLLOW_UPS), 2)
            first = rng.choice(TEMPLATES[s1]).format(n=rng.choice(names[c]))
            ex = b.follow_up(first, rng.choice(FOLLOW_UPS[s2]), c, s2)
            if ex:
                pools["follow-up"].append((c, ex))
        if rng.random() < 0.8:
            q = rng.choice(TEMPLATES["Treatment"]).format(n=rng.choice(names[c]))
            ex = b.forced_abstain(q, c, titles)
            if ex:
                pools["abstain"].append((c, ex))

    shares = {"abstain": 0.16, "follow-up": 0.15}
    train, val = [], []
    for kind, pool in pools.items():
        rng.shuffle(pool)
        tr = [e for c, e in pool if c not in val_conds]
        va = [e for c, e in pool if c in val_conds]
        if kind == "abstain":  # uncovered questions have no condition: every 15th goes to val
            va += [e for i, (c, e) in enumerate(pool) if not c and i % 15 == 0]
            tr = [e for i, (c, e) in enumerate(pool) if c not in val_conds and (c or i % 15)]
        want = shares.get(kind)
        train += tr[:round(n_train * want)] if want else tr
        val += va[:round(n_val * want)] if want else va
    n_ground = sum(e["kind"] == "grounded" for e in train)
    excess = len(train) - n_train
    if excess > 0:  # trim grounded singles to the target size
        drop = set(rng.sample([i for i, e in enumerate(train) if e["kind"] == "grounded"], min(excess, n_ground)))
        train = [e for i, e in enumerate(train) if i not in drop]
    val_g = [i for i, e in enumerate(val) if e["kind"] == "grounded"]
    if len(val) > n_val:
        drop = set(rng.sample(val_g, min(len(val) - n_val, len(val_g))))
        val = [e for i, e in enumerate(val) if i not in drop]
    rng.shuffle(train)
    rng.shuffle(val)
    stats = {"seed": seed, "train": len(train), "val": len(val), "val_conditions": sorted(val_conds),
             "train_kinds": {k: sum(e["kind"] == k for e in train) for k in pools},
             "val_kinds": {k: sum(e["kind"] == k for e in val) for k in pools}}
    return train, val, stats


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--out", type=Path, default=OUT_DIR)
    ap.add_argument("--train-size", type=int, default=900)
    ap.add_argument("--val-size", type=int, default=60)
    args = ap.parse_args(argv)
    train, val, stats = build(args.seed, args.train_size, args.val_size)
    args.out.mkdir(parents=True, exist_ok=True)
    outputs = {}
    for name, rows in ((TRAIN_FILE, train), (VAL_FILE, val)):
        path = args.out / name
        path.write_text(json.dumps(rows, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
        outputs[name] = sha256(path)
    kb_hash = hashlib.sha256(b"".join(sha256(p).encode() for p in sorted(KB_DIR.glob("*.md")))).hexdigest()
    manifest = {"script": "scripts/build_doctor_data.py", **stats, "outputs": outputs,
                "inputs": {"questions": sha256(DEFAULT_FILE), "kb_default_files": kb_hash}}
    (args.out / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    print(json.dumps({k: manifest[k] for k in ("train", "val", "train_kinds", "val_kinds", "outputs")}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
