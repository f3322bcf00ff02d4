"""bridge_project.env: each helper parses one variable and fails loudly (SPEC §7)."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured

from bridge_project import env


def refusal(helper, *args, **kwargs) -> str:
    with pytest.raises(ImproperlyConfigured) as caught:
        helper(*args, **kwargs)
    return str(caught.value)


# --- env_str ----------------------------------------------------------------------


def test_str_is_the_default_when_unset_and_the_value_when_set():
    assert env.env_str("NAME", "dflt", environ={}) == "dflt"
    assert env.env_str("NAME", "dflt", environ={"NAME": ""}) == ""
    assert env.env_str("NAME", "dflt", environ={"NAME": "x"}) == "x"


def test_helpers_read_os_environ_when_no_mapping_is_given(monkeypatch):
    monkeypatch.setenv("BRIDGE_TEST_ONLY_INT", "42")
    assert env.env_int("BRIDGE_TEST_ONLY_INT", 1) == 42
    monkeypatch.delenv("BRIDGE_TEST_ONLY_INT")
    assert env.env_int("BRIDGE_TEST_ONLY_INT", 1) == 1


# --- env_bool ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1", True),
        ("true", True),
        ("YES", True),
        (" on ", True),
        ("0", False),
        ("False", False),
        ("no", False),
        ("off", False),
        ("", False),
    ],
)
def test_bool_accepts_the_usual_spellings(raw, expected):
    assert env.env_bool("DEBUG", not expected, environ={"DEBUG": raw}) is expected


def test_bool_is_the_default_when_unset():
    assert env.env_bool("DEBUG", True, environ={}) is True


@pytest.mark.parametrize("raw", ["maybe", "2", "tru", "y e s", "-1"])
def test_malformed_bool_names_the_variable_and_value(raw):
    message = refusal(env.env_bool, "DEBUG", False, environ={"DEBUG": raw})
    assert "DEBUG" in message
    assert repr(raw) in message


# --- env_int ----------------------------------------------------------------------


def test_int_is_parsed_and_blank_means_default():
    assert (
        env.env_int("BRIDGE_MAX_BATCH", 1000, environ={"BRIDGE_MAX_BATCH": " 25 "})
        == 25
    )
    assert (
        env.env_int("BRIDGE_MAX_BATCH", 1000, environ={"BRIDGE_MAX_BATCH": ""}) == 1000
    )
    assert env.env_int("BRIDGE_MAX_BATCH", 1000, environ={}) == 1000


@pytest.mark.parametrize("raw", ["abc", "1.5", "1e3", "0x10", "10 20", "ten"])
def test_malformed_int_names_the_variable(raw):
    message = refusal(
        env.env_int, "BRIDGE_MAX_BATCH", 1000, environ={"BRIDGE_MAX_BATCH": raw}
    )
    assert "BRIDGE_MAX_BATCH" in message
    assert repr(raw) in message


@pytest.mark.parametrize("raw", ["0", "-5"])
def test_int_below_minimum_names_the_variable_and_minimum(raw):
    message = refusal(
        env.env_int,
        "BRIDGE_MAX_BATCH",
        1000,
        minimum=1,
        environ={"BRIDGE_MAX_BATCH": raw},
    )
    assert "BRIDGE_MAX_BATCH" in message
    assert "1" in message


def test_int_at_minimum_is_accepted():
    assert env.env_int("N", 5, minimum=1, environ={"N": "1"}) == 1


# --- env_float --------------------------------------------------------------------


def test_float_is_parsed_and_blank_means_default():
    name = "BRIDGE_HEARTBEAT_INTERVAL"
    assert env.env_float(name, 30.0, environ={name: "0.5"}) == 0.5
    assert env.env_float(name, 30.0, environ={name: "2"}) == 2.0
    assert env.env_float(name, 30.0, environ={name: " "}) == 30.0
    assert env.env_float(name, 30.0, environ={}) == 30.0


@pytest.mark.parametrize("raw", ["abc", "1,5", "30s", "1/2"])
def test_malformed_float_names_the_variable(raw):
    name = "BRIDGE_HEARTBEAT_INTERVAL"
    message = refusal(env.env_float, name, 30.0, minimum=0.1, environ={name: raw})
    assert name in message
    assert repr(raw) in message


def test_float_below_minimum_names_the_variable():
    name = "BRIDGE_HEARTBEAT_TIMEOUT"
    message = refusal(env.env_float, name, 60.0, minimum=0.1, environ={name: "0.01"})
    assert name in message


@pytest.mark.parametrize("raw", ["nan", "inf"])
def test_non_finite_float_is_malformed(raw):
    # float() accepts these and `nan < minimum` is False, so they would slip past
    # the minimum check: a heartbeat interval of inf crashes every handshake
    # (int(inf) in the connected frame) and nan is sent to clients as bare NaN.
    name = "BRIDGE_HEARTBEAT_INTERVAL"
    message = refusal(env.env_float, name, 30.0, minimum=0.1, environ={name: raw})
    assert name in message


# --- env_list ---------------------------------------------------------------------


def test_list_splits_on_commas_and_drops_blanks():
    raw = " a_bot, b_bot ,,c_bot, "
    assert env.env_list("PUBLIC_ACCOUNTS", [], environ={"PUBLIC_ACCOUNTS": raw}) == [
        "a_bot",
        "b_bot",
        "c_bot",
    ]
    assert env.env_list("PUBLIC_ACCOUNTS", ["x"], environ={"PUBLIC_ACCOUNTS": ""}) == []


def test_list_default_is_a_copy():
    default = ["127.0.0.1"]
    value = env.env_list("BRIDGE_METRICS_ALLOWED_IPS", default, environ={})
    value.append("10.0.0.1")
    assert default == ["127.0.0.1"]


# --- env_choice -------------------------------------------------------------------


def test_choice_is_case_and_space_insensitive():
    name = "BRIDGE_AUTH_MODE"
    assert env.env_choice(
        name, "token", ("open", "token"), environ={name: " OPEN "}
    ) == ("open")
    assert env.env_choice(name, "token", ("open", "token"), environ={}) == "token"


@pytest.mark.parametrize("raw", ["bogus", "", "tokens", "open,token"])
def test_choice_outside_the_choices_names_the_variable_and_the_choices(raw):
    name = "BRIDGE_AUTH_MODE"
    message = refusal(
        env.env_choice, name, "token", ("open", "token"), environ={name: raw}
    )
    assert name in message
    assert "open" in message and "token" in message


# --- env_rate (throttle rates) ----------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("100/minute", "100/minute"), ("5/s", "5/s"), ("none", None), ("NONE", None)],
)
def test_rate_accepts_drf_rates_and_none(raw, expected):
    name = "BRIDGE_THROTTLE_API_KEY_RATE"
    assert env.env_rate(name, "60000/minute", environ={name: raw}) == expected


@pytest.mark.parametrize(
    "raw", ["100", "100 per minute", "abc/minute", "-5/minute", "100/fortnight", "/m"]
)
def test_malformed_rate_names_the_variable(raw):
    name = "BRIDGE_THROTTLE_API_KEY_RATE"
    message = refusal(env.env_rate, name, "60000/minute", environ={name: raw})
    assert name in message
