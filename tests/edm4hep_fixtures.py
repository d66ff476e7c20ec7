"""The real EDM4HEP fixture files, named once: tests/fixtures/edm4hep (copies of public Key4HEP sample files,
see the README there for what each is, its origin and licence). MLPF_EDM4HEP_FIXTURES points the tests at
another directory."""

from __future__ import annotations

import os
from pathlib import Path

FIXTURES = Path(os.environ.get("MLPF_EDM4HEP_FIXTURES", Path(__file__).parent / "fixtures" / "edm4hep"))
CLD_FILE = FIXTURES / "cld_o2_v05_zh_hbb_240gev_rec_1evt.edm4hep.root"  # CLD reconstruction, podio LinkData
CLD_SIM_FILE = FIXTURES / "cld_o2_v06_zuds_sim_3evt.edm4hep.root"  # simulation only, EDM4hep 0.10
CLIC_LEGACY_FILE = FIXTURES / "clic_o3_v14_gamma10gev_rec_3evt_legacy.root"  # 2023 Zenodo layout (C#N)
CLIC_SIM_FILE = FIXTURES / "clic_o3_v14_ttbar_sim_1evt.edm4hep.root"  # simulation only
ILD_PFOS_FILE = FIXTURES / "ild_l5_v02_pfos_10evt.edm4hep.root"  # PandoraPFOs only
SYNTHETIC_FILE = FIXTURES / "synthetic_edm4hep1.0_podio1.7_3evt.edm4hep.root"  # EDM4hep 1.0 / podio 1.7
