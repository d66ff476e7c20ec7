"""ddsim steering for CLIC_o3_v14 as in the MLPF CLIC production (jpata/particleflow scripts/fcc/clic_steer.py,
itself the CLICPerformance clicConfig steering).

Usage: ddsim --compactFile $K4GEO/CLIC/compact/CLIC_o3_v14/CLIC_o3_v14.xml --steeringFile clic_steer.py \
             --inputFiles out.hepmc --outputFile out_sim.edm4hep.root --numberOfEvents 100 --random.seed N
Only settings that differ from the DDSim defaults, or that the production fixes explicitly, are set here.
"""

from __future__ import annotations

import os
from pathlib import Path

from DDSim.DD4hepSimulation import DD4hepSimulation
from g4units import MeV, mm

SIM = DD4hepSimulation()

# CLIC beams cross at 20 mrad; events are boosted by the half angle, 10 mrad (so the momenta in the simulated
# file differ from the HepMC input).
SIM.crossingAngleBoost = 0.010
SIM.enableDetailedShowerMode = True
SIM.runType = "batch"
SIM.printLevel = 3

# The beam spot is already smeared by the generator options (pythia.py); no second smearing here.
SIM.vertexOffset = [0.0, 0.0, 0.0, 0.0]
SIM.vertexSigma = [0.0, 0.0, 0.0, 0.0]

# Sensitive-detector actions of the CLIC detector model.
SIM.action.tracker = "Geant4TrackerWeightedAction"
SIM.action.calo = "Geant4ScintillatorCalorimeterAction"

# Energy-deposit filters: keep every calorimeter deposit (edep0), tracker deposits above 1 keV (edep1kev).
SIM.filter.filters = {
    "edep0": {"name": "EnergyDepositMinimumCut/Cut0", "parameter": {"Cut": 0.0}},
    "edep1kev": {"name": "EnergyDepositMinimumCut", "parameter": {"Cut": 0.001}},
    "geantino": {"name": "GeantinoRejectFilter/GeantinoRejector", "parameter": {}},
}
SIM.filter.calo = "edep0"
SIM.filter.tracker = "edep1kev"
SIM.filter.mapDetFilter = {}

# Magnetic-field stepping (CLICPerformance values).
SIM.field.delta_chord = 0.25 * mm
SIM.field.delta_intersection = 0.001 * mm
SIM.field.delta_one_step = 0.01 * mm
SIM.field.eps_max = 0.001 * mm
SIM.field.eps_min = 5e-05 * mm
SIM.field.equation = "Mag_UsualEqRhs"
SIM.field.min_chord_step = 0.01 * mm
SIM.field.stepper = "ClassicalRK4"

# MC truth: not every secondary, only those above 1 MeV created in the tracking region, plus decays.
SIM.part.keepAllParticles = False
SIM.part.minimalKineticEnergy = 1.0 * MeV
SIM.part.minDistToParentVertex = 2.2e-14
SIM.part.saveProcesses = ["Decay"]

# Physics: FTFP_BERT with the Geant4 default range cut; partons and heavy bosons of the generator record are
# not handed to Geant4; the generator decays them.
SIM.physics.list = "FTFP_BERT"
SIM.physics.decays = False
SIM.physics.rangecut = 0.7 * mm
SIM.physics.rejectPDGs = {1, 2, 3, 4, 5, 6, 21, 23, 24, 25}
# Extra particles and lifetimes shipped with DD4hep (the variable name is DD4hep's own spelling).
_dd4hep = os.environ.get("DD4hepINSTALL", "")  # noqa: SIM112
SIM.physics.pdgfile = str(Path(_dd4hep) / "examples" / "DDG4" / "examples" / "particle.tbl")

# One seed per event derived from the run seed (--random.seed) and the event number: reproducible jobs.
SIM.random.enableEventSeed = True
SIM.random.luxury = 1
SIM.random.replace_gRandom = True
