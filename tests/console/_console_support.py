"""Helpers shared by the console tests (the fixtures are in conftest.py)."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient


def sign_in(client: TestClient, token: str) -> TestClient:
    response = client.post("/console/sign-in", data={"api_key": token}, follow_redirects=False)
    assert response.status_code == 303, response.text
    return client


def csrf(page: str) -> str:
    """The form token a console page carries."""
    return re.search(r'name="csrf" value="([0-9a-f]+)"', page).group(1)
