"""Password rules (NIST SP 800-63B style): length, not common, not a run, not the e-mail.

Every way a password enters the exchange follows them: sign-up (422 ``weak_password``),
``pmarket admin create`` and the first-start admin (``PMARKET_ADMIN_PASSWORD``).
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from pmarket.cli import load_commands
from pmarket.server import Settings, WeakSecret
from pmarket.server.passwords import common_passwords, password_problem

EMAIL = "ann.smith@example.com"


@pytest.mark.parametrize(("password", "why"), [
    ("a", "at least 10"),
    ("short one", "at least 10"),
    ("é" * 40, "72 bytes"),
    ("password1234", "common"),
    ("iloveyou2024", "common"),
    ("Sunshine!!", "common"),
    ("qwertyuiop", "run"),
    ("0987654321", "run"),
    ("zzzzzzzzzzzz", "repeated"),
    ("ababababababab", "repeated"),
    ("my-ann.smith-pass", "e-mail"),
    ("ANN.SMITH rocks 42", "e-mail"),
])
def test_weak_passwords_are_refused_with_the_reason(password, why):
    problem = password_problem(password, EMAIL)
    assert problem is not None and why in problem


@pytest.mark.parametrize("password", ["correct horse battery", "Tr0ub4dor&3x",
                                      "a-long-password", "ann is here 42"])
def test_long_uncommon_passwords_need_no_character_classes(password):
    assert password_problem(password, EMAIL) is None


def test_the_bundled_list_is_there_and_lower_case():
    common = common_passwords()
    assert len(common) >= 29_000 and "123456" in common and "password" in common


@given(st.sampled_from(sorted(common_passwords())), st.sampled_from(["", "1", "!", "2024"]))
def test_no_common_password_with_a_little_padding_passes(password, padding):
    assert password_problem(password + padding, "someone@example.com") is not None


@pytest.mark.asyncio(loop_scope="module")
async def test_signup_answers_weak_password(client):
    r = await client.http.post("/auth/signup", json={
        "email": "weak@example.com", "name": "W", "password": "password123"})
    assert r.status_code == 422 and r.json()["error"]["code"] == "weak_password"
    assert "common" in r.json()["error"]["message"]
    r = await client.http.post("/auth/signup", json={
        "email": "weak@example.com", "name": "W", "password": "a"})
    assert r.status_code == 422 and r.json()["error"]["code"] == "weak_password"
    assert "10" in r.json()["error"]["message"]


def test_admin_create_refuses_a_weak_password(tmp_path):
    url = f"sqlite:///{tmp_path / 'x.db'}"
    result = CliRunner().invoke(load_commands(), [
        "admin", "create", "--email", "ops@example.com", "--name", "Ops",
        "--password", "ops-password", "--database-url", url])
    assert result.exit_code == 2 and "e-mail" in result.output
    result = CliRunner().invoke(load_commands(), [
        "admin", "create", "--email", "ops@example.com", "--name", "Ops",
        "--password", "a strong operator key", "--database-url", url])
    assert result.exit_code == 0, result.output


def test_a_weak_first_start_admin_password_refuses_to_start(tmp_path):
    with pytest.raises(WeakSecret, match="PMARKET_ADMIN_PASSWORD"):
        Settings(database_url=f"sqlite:///{tmp_path / 'x.db'}",
                 admin_email="root@example.com", admin_password="letmein123").with_secret()


@pytest.mark.parametrize("field, value", [("admin_email", "ops\x00@example.com"),
                                          ("admin_name", "Op\x07s"),
                                          ("admin_name", "x" * 201)])
def test_a_first_start_admin_breaking_the_input_limits_refuses_to_start(tmp_path, field,
                                                                         value):
    account = {"admin_email": "ops@example.com", "admin_password": "a strong operator key"}
    with pytest.raises(WeakSecret, match=r"first-start admin's (email|name)"):
        Settings(database_url=f"sqlite:///{tmp_path / 'x.db'}",
                 **{**account, field: value}).with_secret()
