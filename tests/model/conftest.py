"""Fixtures: small synthetic parquet shards following docs/contracts.md section 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from ._synthetic import write_parquet


@pytest.fixture(scope="session")
def shards(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("datasets")
    return [
        write_parquet(root / "ttbar" / "0.parquet", 48, seed=1),
        write_parquet(root / "qq" / "0.parquet", 32, seed=2),
    ]
