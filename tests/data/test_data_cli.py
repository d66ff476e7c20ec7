"""`mlpf parse` and `mlpf dataset-validate` through the command line entry point."""

from __future__ import annotations

import json

import awkward as ak
import numpy as np
import pyarrow.parquet as pq
import pytest

from edm4hep_fixtures import CLD_FILE as CLD
from edm4hep_fixtures import CLIC_LEGACY_FILE as LEGACY
from edm4hep_fixtures import CLIC_SIM_FILE as CLIC_SIM
from mlpf.cli import main
from mlpf.data.validate import validate_shards

pytestmark = pytest.mark.skipif(not CLD.is_file(), reason="real EDM4HEP fixtures not available")


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    root = tmp_path_factory.mktemp("datasets")
    out = []
    for sample, path in (("zh", CLD), ("gamma", LEGACY)):
        shard = root / sample / "0.parquet"
        rc = main(
            ["parse", "--input", str(path), "--output", str(shard), "--settings", '{"target": "paper"}']
        )
        assert rc == 0
        out.append(shard)
    return out


def test_parse_cli_writes_shard(shards):
    assert all(s.is_file() for s in shards)
    assert len(ak.from_parquet(shards[1])) == 3


def test_parse_cli_user_error_is_one_line(tmp_path, capsys):
    rc = main(["parse", "--input", str(CLIC_SIM), "--output", str(tmp_path / "x.parquet")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert len(err) == 1
    assert "missing collection" in err[0]
    assert "SiTracks_Refitted" in err[0]
    assert not (tmp_path / "x.parquet").exists()


def test_parse_cli_rejects_bad_settings(tmp_path, capsys):
    rc = main(["parse", "--input", str(CLD), "--output", str(tmp_path / "x.parquet"), "--settings",
               '{"target": "v3"}'])  # fmt: skip
    assert rc == 2
    assert "target" in capsys.readouterr().err


def test_dataset_validate_summary(shards, tmp_path, capsys):
    out = tmp_path / "summary.json"
    rc = main(["dataset-validate", *map(str, shards), "--output", str(out)])
    assert rc == 0
    summary = json.loads(out.read_text())
    assert set(summary["samples"]) == {"zh", "gamma"}
    zh = summary["samples"]["zh"]
    assert zh["ok"]
    assert zh["tracks"] == 24
    assert zh["clusters"] == 48
    assert zh["target_coverage"] == pytest.approx(1.0, abs=0.05)
    assert sum(zh["target_class_fractions"].values()) == pytest.approx(1.0)
    assert summary["samples"]["gamma"]["target_class_fractions"]["photon"] == 1.0
    assert "zh:" in capsys.readouterr().out


def test_dataset_validate_flags_nan(shards, tmp_path):
    table = pq.read_table(shards[0])
    events = ak.from_parquet(shards[0])
    X = ak.to_numpy(events.X[0]).copy()
    X[0, 1] = np.nan
    events = ak.with_field(events, ak.unflatten(ak.from_numpy(X), [len(X)]), "X")
    bad = tmp_path / "zh" / "0.parquet"
    bad.parent.mkdir()
    new = ak.to_arrow_table(events, extensionarray=False).replace_schema_metadata(table.schema.metadata)
    pq.write_table(new, bad)
    summary = validate_shards([bad])
    assert not summary["ok"]
    assert not summary["samples"]["zh"]["checks"]["finite"]
    assert main(["dataset-validate", str(bad)]) == 1
