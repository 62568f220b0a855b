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


def test_entities_leave_out_possessives_and_closing_quotes():
    assert entity_mentions("How long did I take to read 'The Nightingale' by Kristin Hannah?") == [
        "Nightingale", "Kristin Hannah"]
    assert entity_mentions("Who walks James' dog and Caroline's cat?") == ["James", "Caroline"]
    assert entity_mentions("Did I call O'Brien?") == ["O'Brien"]  # a quote inside a name stays


def test_entities_include_known_speakers_in_any_case():
    assert "Jon" in entity_mentions("what did jon open?", known=["Jon", "Gina"])


def test_questions_asking_for_a_time_are_recognized():
    from memlane.retrieve.query import analyze_query

    for question in ("When did Ana adopt Biscuit?", "what year did Bo move to Lisbon?", "Since when has Ana run?",
                     "How long ago did Bo start painting?", '"When" did it happen?'):
        assert analyze_query(question, None).asks_when, question
    for question in ("Who went hiking?", "Whenever Ana travels, what does she pack?", "What did Bo say about time?"):
        assert not analyze_query(question, None).asks_when, question


# Long adversarial questions: each of these once took quadratic time (tens of seconds at 100,000
# characters). The tests check the result; if the regression came back they would run for minutes.

def test_a_long_run_of_one_letter_holds_no_email_or_code():
    from datetime import date

    from memlane.retrieve.query import analyze_query

    analysis = analyze_query("a" * 100_000, date(2023, 5, 8))
    assert analysis.needles == [] and analysis.entities == [] and analysis.time_range is None
    assert analysis.terms == ["a" * 100_000]


def test_a_long_run_of_letters_and_hyphens_ends_in_the_one_code():
    assert lookup_needles("a-" * 50_000 + "1") == ["a-1"]


def test_long_runs_of_email_characters_and_of_quotes_hold_nothing_to_find():
    for text in ("a." * 50_000, "Ab" * 50_000, "“" * 100_000, '"' * 100_000):
        assert lookup_needles(text) == [], text[:4]
    assert lookup_needles("1" * 100_000) == ["1" * 100_000]  # a long number is one


def test_an_email_may_start_in_the_run_where_the_previous_one_ended():
    assert lookup_needles("write to a@b.co+d@e.org") == ["a@b.co", "+d@e.org"]
    assert lookup_needles("x" * 100_000 + "@example.com and y@z.io") == ["x" * 100_000 + "@example.com", "y@z.io"]
