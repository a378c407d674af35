"""Rejection memory (lsp/rejections.py): which edits reject a suggestion, and for how long."""

from __future__ import annotations

from ghostfill.lsp.rejections import Place, Rejections

URI = "file:///tmp/r.py"
PLACE = Place(URI, 1, "    ")
TEXT = "return sum(values)"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def watched(clock: Clock | None = None) -> Rejections:
    r = Rejections(ttl_s=60, clock=clock or Clock())
    r.watch(PLACE, 22, TEXT)
    return r


def test_typing_other_text_at_the_place_rejects_it_there_only():
    r = watched()
    assert r.edited(URI, 22, 22, "x")
    assert r.rejected(PLACE, TEXT)
    assert not r.rejected(PLACE, "return 0")  # another suggestion at that place
    assert not r.rejected(Place(URI, 1, "    x"), TEXT)  # the same one elsewhere
    assert not r.rejected(Place("file:///tmp/other.py", 1, "    "), TEXT)


def test_typing_its_first_character_or_accepting_follows_it():
    for typed in ("r", "return", TEXT, TEXT + ")"):
        r = watched()
        assert not r.edited(URI, 22, 22, typed)
        assert not r.rejected(PLACE, TEXT)


def test_typing_through_moves_the_watch_to_the_rest():
    r = watched()
    assert not r.edited(URI, 22, 22, "ret")
    assert r.edited(URI, 25, 25, "x")  # typed over half way
    assert r.rejected(Place(URI, 1, "    ret"), "urn sum(values)")
    assert not r.rejected(PLACE, TEXT)


def test_an_edit_elsewhere_ends_the_watch_without_a_verdict():
    r = watched()
    assert not r.edited(URI, 21, 22, "")  # a backspace before the place
    assert not r.edited(URI, 22, 22, "x")  # no longer watched
    assert not r.rejected(PLACE, TEXT)
    r = watched()
    assert not r.edited(URI, 22, 30, "")  # deleting what follows: no text typed over it
    assert not r.rejected(PLACE, TEXT)
    r = watched()
    assert not r.edited("file:///tmp/other.py", 22, 22, "x")  # another document
    assert r.edited(URI, 22, 22, "x")


def test_a_replacement_starting_at_the_place_judges_by_its_text():
    r = watched()
    assert r.edited(URI, 22, 25, "pass")  # typed over a selection with other text
    r = watched()
    assert not r.edited(URI, 22, 25, TEXT)  # the editor's accept: it replaces the range


def test_a_rejection_expires():
    clock = Clock()
    r = watched(clock)
    r.edited(URI, 22, 22, "x")
    clock.now += 59
    assert r.rejected(PLACE, TEXT)
    clock.now += 2
    assert not r.rejected(PLACE, TEXT)
    assert len(r) == 0


def test_a_newer_suggestion_replaces_the_watch_and_close_forgets_it():
    r = watched()
    r.watch(PLACE, 22, "pass")
    assert not r.edited(URI, 22, 22, "p")
    r = watched()
    r.forget(URI)
    assert not r.edited(URI, 22, 22, "x")


def test_memory_is_bounded():
    r = Rejections(ttl_s=60, max_entries=3, clock=Clock())
    for i in range(10):
        place = Place(URI, i, "")
        r.watch(place, i, TEXT)
        r.edited(URI, i, i, "x")
    assert len(r) == 3
    assert r.rejected(Place(URI, 9, ""), TEXT)
    assert not r.rejected(Place(URI, 0, ""), TEXT)
