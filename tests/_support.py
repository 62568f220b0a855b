"""Constants shared by tests (conftest.py holds the fixtures)."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
FIXTURES = Path(__file__).resolve().parent / "fixtures"

CHAT = [
    {"role": "user", "content": "I adopted a beagle puppy named Biscuit yesterday."},
    {"role": "assistant", "content": "Congratulations! Beagles are lively dogs."},
    {"role": "user", "content": "My sister Maria lives in Lisbon and works as a nurse."},
    {"role": "user", "content": "Please email the invoice to ana.silva@example.com before Friday."},
]
