"""What gets embedded for a turn: its sentences as passages, and their mean as its own vector."""

import numpy as np

from memlane.embed import HashEmbedder
from memlane.ingest.build import (
    MAX_PASSAGES,
    embed_records,
    own_vector,
    passage_texts,
    split_sentences,
    with_passages,
)
from memlane.records import MemoryRecord


def _turn(text, node_type="turn"):
    return MemoryRecord(id="t", user_id="ana", text=text, embed_text=f"[2023-05-01] Jo: {text}",
                        recorded_at="2023-05-01T00:00:00Z", speaker="Jo", node_type=node_type)


def test_sentences_split_at_end_marks_and_short_ones_join_the_next():
    text = "Hey Mel! Long time no see! I adopted a beagle last week. [shared a photo: a dog on a couch]"
    assert split_sentences(text) == [
        "Hey Mel! Long time no see!", "I adopted a beagle last week.", "[shared a photo: a dog on a couch]",
    ]
    assert split_sentences("Sure thing!") == ["Sure thing!"]
    assert split_sentences("We met Dr. Smith at 5 p.m. on Friday.") != []


def test_a_long_text_is_grouped_into_at_most_max_passages():
    text = " ".join(f"This is sentence number {i} of many." for i in range(50))
    passages = split_sentences(text)
    assert len(passages) <= MAX_PASSAGES
    assert " ".join(passages).split() == text.split()  # nothing lost, order kept


def test_only_turns_of_several_sentences_have_passages():
    assert passage_texts(_turn("Sure thing!")) == []
    assert passage_texts(_turn("I adopted a beagle. His name is Biscuit.", node_type="session")) == []
    assert passage_texts(_turn("I adopted a beagle puppy. His name is Biscuit, he is two.")) == [
        "Jo: I adopted a beagle puppy.", "Jo: His name is Biscuit, he is two.",
    ]


def test_a_turn_vector_is_the_normalized_mean_of_its_passages():
    passages = np.array([[1, 0], [0, 1]], np.float32)
    packed = with_passages(passages)
    assert packed.shape == (3, 2)
    assert np.allclose(packed[0], [2 ** -0.5, 2 ** -0.5]) and np.allclose(packed[1:], passages)
    assert np.allclose(own_vector(packed), packed[0]) and np.allclose(own_vector(passages[0]), passages[0])


def test_embed_records_packs_passages_and_keeps_single_texts_as_one_vector():
    embedder = HashEmbedder(dims=64)
    short, long = _turn("Sure thing!"), _turn("I adopted a beagle puppy. His name is Biscuit, he is two.")
    vectors = embed_records(embedder, [short, long], batch=1)
    assert vectors[0].shape == (64,)
    assert np.allclose(vectors[0], embedder.encode([short.embed_text])[0])
    assert vectors[1].shape == (3, 64)
    assert np.allclose(vectors[1][1:], embedder.encode(passage_texts(long)))


def test_with_passages_off_every_record_is_embedded_whole():
    embedder = HashEmbedder(dims=64)
    long = _turn("I adopted a beagle puppy. His name is Biscuit, he is two.")
    [vector] = embed_records(embedder, [long], passages=False)
    assert vector.shape == (64,) and np.allclose(vector, embedder.encode([long.embed_text])[0])


def test_embed_records_sends_texts_longest_first_and_puts_each_vector_back_in_place():
    class Recording(HashEmbedder):
        def __init__(self):
            super().__init__(dims=32)
            self.calls = []

        def encode(self, texts, purpose="document"):
            self.calls.append(list(texts))
            return super().encode(texts, purpose)

    embedder = Recording()
    records = [_turn("ok"), _turn("A much longer single sentence about the beagle"), _turn("I adopted a beagle puppy. His name is Biscuit, he is two."),
               _turn("medium length one")]
    vectors = embed_records(embedder, records, batch=2)
    sent = [text for call in embedder.calls for text in call]
    assert [len(t) for t in sent] == sorted((len(t) for t in sent), reverse=True)
    assert all(len(call) <= 2 for call in embedder.calls) and len(sent) == 5  # the third record has 2 passages
    plain = HashEmbedder(dims=32)
    for record, vector in zip(records, vectors):
        pieces = passage_texts(record)
        expected = with_passages(plain.encode(pieces)) if pieces else plain.encode([record.embed_text])[0]
        assert np.allclose(vector, expected)


def test_a_very_long_text_of_tiny_sentences_is_grouped_without_losing_a_word():
    text = "A. " * 100_000
    passages = split_sentences(text)
    assert len(passages) == MAX_PASSAGES
    assert " ".join(passages).split() == text.split()
