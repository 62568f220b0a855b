"""API keys: random, shown once, stored hashed, bound to a role and users, revocable."""

from __future__ import annotations

from pathlib import Path

import pytest
from _server_support import tampered

from memlane.errors import InputError, NotFoundError
from memlane.server.auth import Unauthorized
from memlane.server.keys import KeyRing
from memlane.server.ratelimit import Rate
from memlane.store import open_store


def test_a_token_authenticates_as_its_key(ring):
    key_id, token = ring.create("tenant", users=["ana", "bob"], rate="50/s", label="mobile app")
    who = ring.authenticate(token)
    assert (who.key_id, who.role, who.users, who.user_prefix) == (key_id, "tenant", ("ana", "bob"), None)
    assert who.rate == Rate(50, 1.0)
    assert token.startswith(f"mlk_{key_id}_") and len(token) > 50


def test_two_keys_never_share_an_id_or_a_token(ring):
    made = [ring.create("admin") for _ in range(20)]
    assert len({k for k, _ in made}) == len({t for _, t in made}) == 20


def test_list_shows_settings_but_never_the_secret_or_its_hash(ring):
    key_id, token = ring.create("tenant", user_prefix="org1/", rate="600/min")
    [info] = ring.list()
    assert info.to_dict() == {"key_id": key_id, "role": "tenant", "users": [], "user_prefix": "org1/",
                              "rate": "600/min", "label": None, "created_at": info.created_at, "revoked_at": None}
    secret = token.split("_", 2)[2]  # mlk_<id>_<secret>; the secret itself may hold "_"
    assert secret not in repr(info) and "sha256" not in repr(info)


def test_the_secret_is_not_in_the_store_files(memory, ring):
    _, token = ring.create("admin")
    secret = token.split("_", 2)[2]
    memory.close()
    files = [p for p in Path(memory.path).parent.iterdir() if p.name.startswith(Path(memory.path).name)]
    assert files
    for path in files:
        assert secret.encode() not in path.read_bytes()
        assert token.encode() not in path.read_bytes()


@pytest.mark.parametrize("token", [None, "", "mlk_", "Bearer x", "mlk_0123456789ab", "mlk_XYZ_abcdefghijklmnopqrstuvwxyz"])
def test_a_missing_or_malformed_token_is_refused(ring, token):
    with pytest.raises(Unauthorized):
        ring.authenticate(token)


def test_an_unknown_key_and_a_wrong_secret_get_the_same_answer(ring):
    key_id, token = ring.create("admin")
    wrong_secret = tampered(token)
    unknown_id = "mlk_" + ("0" * 12 if key_id != "0" * 12 else "1" * 12) + token[len("mlk_") + 12:]
    with pytest.raises(Unauthorized) as wrong:
        ring.authenticate(wrong_secret)
    with pytest.raises(Unauthorized) as unknown:
        ring.authenticate(unknown_id)
    assert str(wrong.value) == str(unknown.value)
    assert token[-10:] not in str(wrong.value)


def test_a_revoked_key_is_refused_at_once_in_the_process_that_revoked_it(ring):
    key_id, token = ring.create("admin")
    ring.authenticate(token)
    info = ring.revoke(key_id)
    assert info.revoked_at is not None and ring.list()[0].revoked_at == info.revoked_at
    with pytest.raises(Unauthorized, match="revoked"):
        ring.authenticate(token)
    assert ring.revoke(key_id).revoked_at == info.revoked_at  # revoking again changes nothing


def test_another_process_sees_a_revocation_within_the_cache_time(memory, records):
    now = [0.0]
    server = KeyRing(records, cache_s=5.0, clock=lambda: now[0])
    key_id, token = server.create("admin")
    server.authenticate(token)
    other = open_store(memory.path)  # what `memlane keys revoke` opens
    KeyRing(other).revoke(key_id)
    other.close()
    now[0] = 4.0
    server.authenticate(token)  # still cached
    now[0] = 5.0
    with pytest.raises(Unauthorized, match="revoked"):
        server.authenticate(token)


def test_the_cached_check_answers_from_memory_or_says_it_must_read(memory, records):
    now = [0.0]
    ring = KeyRing(records, cache_s=5.0, clock=lambda: now[0])
    key_id, token = ring.create("tenant", users=["ana"])
    assert ring.authenticate_cached(token) is None  # never read: the store must be asked
    assert ring.authenticate(token).users == ("ana",)
    assert ring.authenticate_cached(token) == ring.authenticate(token)  # now from memory
    with pytest.raises(Unauthorized, match="unknown"):  # a wrong secret is refused from memory too
        ring.authenticate_cached(token[:-4] + "AAAA")
    with pytest.raises(Unauthorized, match="malformed"):
        ring.authenticate_cached("mlk_nonsense")
    ring.revoke(key_id)
    with pytest.raises(Unauthorized, match="revoked"):
        ring.authenticate_cached(token)
    now[0] = 5.0
    assert ring.authenticate_cached(token) is None  # stale: read again, off the event loop


def test_revoking_an_unknown_key_names_the_command_that_lists_them(ring):
    with pytest.raises(NotFoundError, match="keys list"):
        ring.revoke("0123456789ab")
    with pytest.raises(InputError) as bad:
        ring.revoke("not an id")
    assert bad.value.field == "key_id"


@pytest.mark.parametrize("settings, field", [
    ({"role": "root"}, "role"),
    ({"role": "tenant"}, "users"),
    ({"role": "tenant", "users": "ana"}, "users"),
    ({"role": "tenant", "users": ["ana", ""]}, "users"),
    ({"role": "tenant", "users": [" ana"]}, "users"),
    ({"role": "tenant", "users": [7]}, "users"),
    ({"role": "tenant", "user_prefix": ""}, "user_prefix"),
    ({"role": "admin", "users": ["ana"]}, "role"),
    ({"role": "admin", "rate": "fast"}, "rate"),
    ({"role": "admin", "rate": "0/s"}, "rate"),
    ({"role": "admin", "rate": "5/fortnight"}, "rate"),
    ({"role": "admin", "label": "x" * 201}, "label"),
])
def test_bad_settings_are_refused_naming_the_field(ring, settings, field):
    with pytest.raises(InputError) as bad:
        ring.create(**settings)
    assert bad.value.field == field
    assert ring.list() == []
