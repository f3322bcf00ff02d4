"""SPEC §1's mention grammar: which `@handle`s in a text mention a public account.

`mention_candidates` applies the boundary rules (pure text); `resolve_mentions`
keeps the candidates that name an active public account, in canonical spelling.
"""

from __future__ import annotations

import re

import pytest
from django.test import override_settings
from hypothesis import example, given, settings
from hypothesis import strategies as st

from accounts.identifiers import USER_ID_RE
from accounts.mentions import mention_candidates
from accounts.models import PublicAccount
from accounts.selectors import resolve_mentions


def mentioned(text: str) -> list[str]:
    return resolve_mentions(mention_candidates(text))


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # SPEC §1: these mention ci_bot ...
        pytest.param("please (@CI_BOT)", ["ci_bot"], id="in-parentheses-upper-case"),
        pytest.param("thanks @ci_bot, done", ["ci_bot"], id="before-comma"),
        pytest.param("ask @ci_bot.", ["ci_bot"], id="before-full-stop"),
        pytest.param("@ci_bot's queue is long", ["ci_bot"], id="possessive"),
        pytest.param("@ci_bot run the tests", ["ci_bot"], id="at-start"),
        pytest.param("run the tests @ci_bot", ["ci_bot"], id="at-end"),
        pytest.param("@ci_bot", ["ci_bot"], id="whole-text"),
        pytest.param("hey @CI_Bot", ["ci_bot"], id="canonical-spelling-returned"),
        pytest.param("line one\n@ci_bot", ["ci_bot"], id="after-newline"),
        pytest.param("really?@ci_bot", ["ci_bot"], id="after-question-mark"),
        pytest.param("see @ci_bot-", ["ci_bot"], id="trailing-hyphen-removed"),
        pytest.param("see @ci_bot.-.", ["ci_bot"], id="trailing-dots-hyphens-removed"),
        # ... and these do not.
        pytest.param("write to email@ci_bot.io", [], id="email-address"),
        pytest.param("see @ci_bot.io", [], id="longer-handle-with-dot"),
        pytest.param("see @ci_botx", [], id="longer-handle"),
        pytest.param("@@ci_bot", [], id="double-at"),
        pytest.param("ask @nobody_bot", [], id="not-a-public-account"),
        pytest.param("café@ci_bot", [], id="after-accented-letter"),
        pytest.param("ビルド@ci_bot", [], id="after-cjk-letter"),
        pytest.param("x1@ci_bot", [], id="after-digit"),
        pytest.param("x_@ci_bot", [], id="after-underscore"),
        pytest.param("x.@ci_bot", [], id="after-full-stop"),
        pytest.param("x-@ci_bot", [], id="after-hyphen"),
        pytest.param("@ ci_bot", [], id="space-after-at"),
        pytest.param("ci_bot", [], id="no-at"),
        pytest.param("", [], id="empty"),
    ],
)
def test_mention_grammar(text: str, expected: list[str]) -> None:
    assert mentioned(text) == expected


@pytest.mark.django_db
def test_several_mentions_are_reported_once_each_in_order_of_appearance() -> None:
    text = "@email_bot, tell @ci_bot to ping @CI_BOT and @email_bot again"
    assert mentioned(text) == ["email_bot", "ci_bot"]


@pytest.mark.django_db
def test_handle_of_an_inactive_account_is_plain_text() -> None:
    PublicAccount.objects.create(handle="retired_bot", is_active=False)
    PublicAccount.objects.filter(handle="email_bot").update(is_active=False)

    assert mentioned("ask @retired_bot or @email_bot or @ci_bot") == ["ci_bot"]


@pytest.mark.django_db
def test_a_new_account_is_mentionable_in_its_own_spelling() -> None:
    PublicAccount.objects.create(handle="Deploy.Bot")

    assert mentioned("(@deploy.bot) and @DEPLOY.BOT.") == ["Deploy.Bot"]


# --- properties of the pure parser (no database) --------------------------------------

# Text dense in the characters the grammar cares about, plus arbitrary Unicode.
_grammar_text = st.lists(
    st.sampled_from(
        [*"@@._-aZ09 '(),\né日\u0301", " @ci_bot", "@ci_bot", "ci_bot", "CI_BOT"]
    ),
    max_size=30,
).map("".join)
_any_text = st.one_of(st.text(), _grammar_text)


@settings(max_examples=500, deadline=None)
@given(_any_text)
@example("@ci_bot @ci_bot @CI_BOT")
@example("@" * 70 + "a" * 70)
@example("@\x00@\ud7ff@\U0010ffff")
def test_mention_candidates_never_raises_on_any_text(text: str) -> None:
    candidates = mention_candidates(text)
    assert isinstance(candidates, list)
    assert len(candidates) == len(set(candidates))


@settings(max_examples=500, deadline=None)
@given(_any_text)
def test_every_candidate_follows_an_at_and_is_a_user_id(text: str) -> None:
    for handle in mention_candidates(text):
        assert USER_ID_RE.match(handle), handle
        assert not handle.endswith((".", "-")), handle
        # Somewhere in the text, `@handle` stands at a mention boundary: the
        # `@` starts the text or follows a character that is not a letter,
        # digit, _, ., - or @, and the handle is not cut out of a longer run.
        boundary = re.compile(
            rf"(?:^|(?<=[^\w.@-]))@{re.escape(handle)}[.-]*(?![A-Za-z0-9_.-])"
        )
        assert boundary.search(text), (handle, text)


@settings(max_examples=200, deadline=None)
@given(
    prefix=st.text(alphabet=st.sampled_from(list(" \n(,;:!?'\"")), max_size=3),
    handle=st.from_regex(USER_ID_RE, fullmatch=True).filter(
        lambda h: not h.endswith((".", "-"))
    ),
    suffix=st.sampled_from(["", " ", ",", ".", "'s", ")", "!", ". next"]),
)
def test_a_well_formed_mention_is_always_found(
    prefix: str, handle: str, suffix: str
) -> None:
    assert mention_candidates(f"{prefix}@{handle}{suffix}") == [handle]


# --- cost and cap (issue 12: a 64 KB text of distinct @handles) -------------------


class _CountedHandle(str):
    """A handle that counts how often it is compared for equality."""

    comparisons = 0

    def __eq__(self, other: object) -> bool:
        _CountedHandle.comparisons += 1
        return str.__eq__(self, other)

    __hash__ = str.__hash__

    def rstrip(self, chars: str | None = None) -> _CountedHandle:
        return _CountedHandle(str.rstrip(self, chars))


class _CountingPattern:
    """The mention pattern, handing out _CountedHandle runs."""

    def __init__(self, pattern: re.Pattern[str]) -> None:
        self.pattern = pattern

    def findall(self, text: str) -> list[_CountedHandle]:
        return [_CountedHandle(run) for run in self.pattern.findall(text)]

    def finditer(self, text: str):
        for match in self.pattern.finditer(text):
            yield _CountedMatch(match)


class _CountedMatch:
    def __init__(self, match: re.Match[str]) -> None:
        self.match = match

    def group(self, index: int) -> _CountedHandle:
        return _CountedHandle(self.match.group(index))


def test_dropping_repeated_candidates_costs_one_comparison_per_repeat(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Counting comparisons instead of timing: checking each new handle against a
    # list of those seen compares it with every one of them, n²/2 in all.
    from accounts import mentions

    monkeypatch.setattr(mentions, "_MENTION_RE", _CountingPattern(mentions._MENTION_RE))
    n = 2000
    text = (
        " ".join(f"@h{i}" for i in range(n))
        + " "
        + " ".join(f"@h{i}" for i in range(n))
    )
    _CountedHandle.comparisons = 0

    found = mention_candidates(text)

    assert found == [f"h{i}" for i in range(n)]
    # One comparison per repeat (its hash matched), none per distinct handle.
    assert _CountedHandle.comparisons <= 2 * n


@pytest.mark.django_db
@override_settings(BRIDGE_MAX_MENTIONS=2)
def test_a_message_mentions_at_most_max_mentions_accounts_in_text_order() -> None:
    for handle in ("a_bot", "b_bot", "c_bot"):
        PublicAccount.objects.create(handle=handle)

    # Words that name no account do not use up the cap.
    text = "@nobody @x @y @c_bot @nobody2 @a_bot @b_bot"
    assert mentioned(text) == ["c_bot", "a_bot"]


@pytest.mark.django_db
@override_settings(BRIDGE_MAX_MENTIONS=0)
def test_max_mentions_zero_turns_mention_routing_off() -> None:
    assert mentioned("@ci_bot") == []
