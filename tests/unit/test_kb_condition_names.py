"""Which documents a question names (kb.condition_names): titles and "Also called" aliases, stemmed, with
acronyms matched by case so that an everyday word is not read as one."""

from __future__ import annotations

from kb.chunking import Chunk
from kb.condition_names import ConditionNames


def chunk(source: str, title: str, *aliases: str) -> Chunk:
    return Chunk(chunk_id=f"{source}#0", text="...", source=source, title=title, section="Overview",
                 aliases=tuple(aliases))


NAMES = ConditionNames([
    chunk("pad.md", "Peripheral Artery Disease", "PAD", "peripheral arterial disease", "claudication"),
    chunk("copd.md", "Chronic Obstructive Pulmonary Disease", "COPD", "emphysema"),
    chunk("concussion.md", "Concussion", "mild traumatic brain injury", "mTBI"),
    chunk("flu.md", "Influenza", "flu"),
    chunk("gerd.md", "Gastro-oesophageal Reflux Disease", "GERD", "acid reflux"),
])


def test_a_title_or_alias_names_its_document_in_any_inflection():
    assert NAMES.named("my son got concussed at rugby today") == {"concussion.md"}
    assert NAMES.named("does Emphysema get worse every winter?") == {"copd.md"}
    assert NAMES.named("I've had the flu for three days") == {"flu.md"}
    assert NAMES.named("what helps with peripheral arterial disease?") == {"pad.md"}
    assert NAMES.named("acid reflux and influenza at once") == {"gerd.md", "flu.md"}


def test_an_acronym_needs_its_capitals_unless_it_is_long_enough_not_to_be_a_word():
    assert NAMES.named("how is PAD treated?") == {"pad.md"}
    assert NAMES.named("where do I buy a heating pad?") == set()
    assert NAMES.named("is copd curable") == {"copd.md"}
    assert NAMES.named("gerd at night") == {"gerd.md"}
    assert NAMES.named("any news on mTBI research?") == {"concussion.md"}
    assert NAMES.named("我爸有COPD，冬天会加重吗") == {"copd.md"}  # an acronym inside Chinese text


def test_a_question_naming_no_document_names_none():
    assert NAMES.named("how do I bake sourdough bread?") == set()
    assert NAMES.named("") == set()
    # a word inside a longer name is not the name: "disease" alone names no document
    assert NAMES.named("is this disease contagious?") == set()


def test_titles_a_text_does_not_spell_out_are_put_after_it_once():
    from kb.condition_names import with_titles

    assert with_titles("how is PAD treated?", ["Peripheral Artery Disease"]) == \
        "how is PAD treated? (Peripheral Artery Disease)"
    assert with_titles("is influenza worse than a cold?", ["Influenza"]) == "is influenza worse than a cold?"
    assert with_titles("flu and reflux", ["Influenza", "GERD", "Influenza"]) == "flu and reflux (Influenza; GERD)"
    assert with_titles("anything", []) == "anything"


def test_key_fact_cosines_read_the_question_with_its_named_condition_title():
    """The question that used an acronym is read with the condition's title, as the search read it, when the
    passage is `named`: every sentence's cosine to it rises (its passage context holds the title)."""
    from types import SimpleNamespace

    from kb.key_facts import ranked
    from tests.support.hashing_embedder import HashingEmbedder

    def cosines(named):
        p = SimpleNamespace(text="Supervised walking programmes ease the pain. Smoking harms the heart.",
                            source="pad.md", title="Peripheral Artery Disease", section="Treatment", score=0.5,
                            named=named)
        return {f.sentence: f.score for f in ranked("how is PAD treated?", [p], HashingEmbedder(dim=512),
                                                      min_score=-1.0)}

    plain, named = cosines(False), cosines(True)
    assert set(plain) == set(named) and len(plain) == 2
    assert all(named[s] > plain[s] + 0.1 for s in plain)
