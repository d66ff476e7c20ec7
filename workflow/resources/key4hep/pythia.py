"""k4run options: Pythia8 events from a card, beam-spot smeared, written as HepMC for ddsim.

Usage (inside a Key4HEP stack):
    k4run pythia.py -n 100 --Dumper.Filename out.hepmc --Pythia8.PythiaInterface.pythiacard card.cmd

Components from k4Gen as used by the MLPF CLIC production (jpata/particleflow scripts/fcc/pythia.py).
The vertex smearing is the production's: sigma_x = sigma_y = 0.5 mm, sigma_z = 40 mm, sigma_t = 180 ps.
"""

from __future__ import annotations

from Configurables import (
    ApplicationMgr,
    GaussSmearVertex,
    GenAlg,
    HepMCFileWriter,
    HepMCToEDMConverter,
    PythiaInterface,
    k4DataSvc,
)
from Gaudi.Configuration import INFO
from GaudiKernel import SystemOfUnits as units

app = ApplicationMgr()
app.EvtSel = "NONE"
app.EvtMax = 100  # overridden by k4run -n
app.OutputLevel = INFO
app.ExtSvc += ["RndmGenSvc", k4DataSvc("EventDataSvc")]

smear = GaussSmearVertex()
smear.xVertexSigma = 0.5 * units.mm
smear.yVertexSigma = 0.5 * units.mm
smear.zVertexSigma = 40.0 * units.mm
smear.tVertexSigma = 180.0 * units.picosecond

pythia = PythiaInterface()
pythia.pythiacard = "card.cmd"  # overridden by --Pythia8.PythiaInterface.pythiacard
pythia.doEvtGenDecays = False
pythia.printPythiaStatistics = True

gen = GenAlg("Pythia8")
gen.SignalProvider = pythia
gen.VertexSmearingTool = smear
gen.hepmc.Path = "hepmc"

# Converting to EDM4hep keeps the generator record in the event store (useful for debugging jobs).
converter = HepMCToEDMConverter()

dumper = HepMCFileWriter("Dumper")  # --Dumper.Filename sets the HepMC file ddsim reads
dumper.hepmc.Path = "hepmc"

app.TopAlg += [gen, converter, dumper]
