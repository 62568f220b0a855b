from memlane.retrieve.query import content_terms, entity_mentions, lookup_needles


def test_content_terms_drop_stopwords_possessives_and_repeats():
    assert content_terms("What did Caroline's dog eat, and what did the dog like?") == ["caroline", "dog", "eat"]


def test_lookup_needles_find_emails_ids_quotes_and_codes():
    text = 'Who wrote "the blue notebook" to ana@example.com about order AB-1234 and 5551234 in 2023?'
    needles = lookup_needles(text)
    assert "the blue notebook" in needles
    assert "ana@example.com" in needles
    assert "AB-1234" in needles
    assert "5551234" in needles
    assert "2023" not in needles  # years are too common to anchor on


def test_lookup_needles_find_memory_ids():
    mid = "3f2a6b1c-0d4e-4f5a-8b9c-0123456789ab"
    assert lookup_needles(f"show memory {mid}") == [mid]


def test_entities_skip_sentence_starts_and_keep_names():
    assert entity_mentions("What did Caroline research?") == ["Caroline"]
    assert entity_mentions("When did Melanie go to New York City?") == ["Melanie", "New York City"]


def test_entities_include_known_speakers_in_any_case():
    assert "Jon" in entity_mentions("what did jon open?", known=["Jon", "Gina"])


def test_questions_asking_for_a_time_are_recognized():
    from memlane.retrieve.query import analyze_query

    for question in ("When did Ana adopt Biscuit?", "what year did Bo move to Lisbon?", "Since when has Ana run?",
                     "How long ago did Bo start painting?", '"When" did it happen?'):
        assert analyze_query(question, None).asks_when, question
    for question in ("Who went hiking?", "Whenever Ana travels, what does she pack?", "What did Bo say about time?"):
        assert not analyze_query(question, None).asks_when, question
