from __future__ import annotations

import re
from pathlib import Path

from cronicorn.config import Settings

ROOT = Path(__file__).resolve().parents[2]


def test_env_example_documents_every_setting() -> None:
    text = (ROOT / ".env.example").read_text()
    documented = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", text, flags=re.MULTILINE))
    variables = {field.alias for field in Settings.model_fields.values() if field.alias}
    assert variables - documented == set(), "add these to .env.example"
