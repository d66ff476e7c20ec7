"""Where the real EDM4HEP fixture files are: tests/fixtures/edm4hep (copies of public Key4HEP sample files,
see the README there for origin and licence). MLPF_EDM4HEP_FIXTURES points the tests at another directory."""

from __future__ import annotations

import os
from pathlib import Path

FIXTURES = Path(os.environ.get("MLPF_EDM4HEP_FIXTURES", Path(__file__).parent / "fixtures" / "edm4hep"))
CLD_FILE = FIXTURES / "cld_o2_v05_zh_hbb_240gev_rec_1evt.edm4hep.root"
CLIC_LEGACY_FILE = FIXTURES / "clic_o3_v14_gamma10gev_rec_3evt_legacy.root"
