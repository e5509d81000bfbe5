"""The alert lifecycle: one firing and one resolved transition per episode, owned subjects only."""

from __future__ import annotations

from streamproc.core.alerts import ALERT_TYPES, Episode, apply, reconcile

TYPES = ["quote_stale"]


def ep(inst: str, mark: int) -> Episode:
    return Episode("quote_stale", ("instrument", inst), f"quote_stale:{inst}:{mark}", mark)


def everyone(_subject: object) -> bool:
    return True


def states(transitions) -> list[tuple[str, str]]:
    return [(t.state, t.episode.id) for t in transitions]


def test_an_episode_fires_once_while_open_and_resolves_once_when_gone() -> None:
    firing: dict = {}
    a = ep("EQ", 1)
    first = reconcile(TYPES, {a.key: a}, [], firing, everyone)
    assert states(first) == [("firing", a.id)]
    apply(firing, first)
    assert reconcile(TYPES, {a.key: a}, [], firing, everyone) == []  # every tick: nothing new
    gone = reconcile(TYPES, {}, [], firing, everyone)
    assert states(gone) == [("resolved", a.id)]
    apply(firing, gone)
    assert firing == {}


def test_a_short_episode_between_two_calls_fires_and_resolves() -> None:
    a = ep("EQ", 1)
    assert states(reconcile(TYPES, {}, [a], {}, everyone)) == [("firing", a.id), ("resolved", a.id)]


def test_a_new_episode_on_the_same_subject_resolves_the_old_one_first() -> None:
    a, b = ep("EQ", 1), ep("EQ", 2)
    assert states(reconcile(TYPES, {b.key: b}, [], {a.key: a}, everyone)) == [
        ("resolved", a.id),
        ("firing", b.id),
    ]


def test_only_owned_subjects_and_the_given_types_are_touched() -> None:
    a, b = ep("EQ", 1), ep("BOND", 1)
    gap = Episode("quote_gap", ("instrument", "EQ"), "quote_gap:EQ:2-3", 1)

    def mine(subject: object) -> bool:
        return subject == ("instrument", "EQ")

    out = reconcile(TYPES, {a.key: a, b.key: b}, [], {gap.key: gap}, mine)
    assert states(out) == [("firing", a.id)]  # BOND is another worker's; the gap is another family


def test_every_type_has_a_severity_and_a_runbook_path() -> None:
    for name, kind in ALERT_TYPES.items():
        assert kind.severity in {"info", "warning", "critical"}
        assert kind.runbook == f"runbooks/{name}.md"


def test_a_short_episode_does_not_disturb_an_announced_one_still_open() -> None:
    a, b = ep("EQ", 1), ep("EQ", 2)
    firing = {b.key: b}
    out = reconcile(TYPES, {b.key: b}, [a], firing, everyone)
    assert states(out) == [("firing", a.id), ("resolved", a.id)]
    apply(firing, out)
    assert firing == {b.key: b}
