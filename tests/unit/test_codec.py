"""Table property limits: big JSON values are split, huge ones truncated with a note, nothing is lost silently."""

from __future__ import annotations

from shared.state.codec import (
    MAX_JSON_PARTS,
    MAX_PROPERTY_CHARS,
    MAX_TEXT_CHARS,
    get_json,
    is_truncated,
    put_json,
    put_text,
)


def test_small_values_use_one_property():
    entity: dict = {}
    put_json(entity, "Observed", {"state": "Succeeded", "ids": [1, 2]})
    assert list(entity) == ["Observed"]
    assert get_json(entity, "Observed") == {"state": "Succeeded", "ids": [1, 2]}


def test_none_writes_nothing_and_reads_back_as_none():
    entity: dict = {}
    put_json(entity, "Observed", None)
    put_text(entity, "Message", None)
    assert entity == {} and get_json(entity, "Observed") is None


def test_large_values_are_split_into_parts_that_each_fit_a_property():
    value = {"output": "é" * 30_000}  # non-ASCII: escaped to 6 characters each
    entity: dict = {}
    put_json(entity, "Observed", value)
    parts = [key for key in entity if key.startswith("Observed")]
    assert entity["Observed__parts"] > 1
    assert all(
        len(entity[key]) <= MAX_PROPERTY_CHARS and entity[key].isascii()
        for key in parts
        if key != "Observed__parts"
    )
    assert get_json(entity, "Observed") == value


def test_values_beyond_the_entity_budget_are_replaced_by_a_note():
    value = {"output": "x" * (MAX_PROPERTY_CHARS * MAX_JSON_PARTS + 1)}
    entity: dict = {}
    put_json(entity, "Observed", value)
    stored = get_json(entity, "Observed")
    assert is_truncated(stored)
    assert f"{len(value['output']) + 13} characters of JSON" in stored["note"]
    assert stored["preview"].startswith('{"output":"xxx')


def test_long_text_is_cut_with_a_note_of_its_length():
    entity: dict = {}
    put_text(entity, "Message", "m" * 20_000)
    assert len(entity["Message"]) == MAX_TEXT_CHARS
    assert entity["Message"].endswith("[truncated: 20000 characters in total]")
