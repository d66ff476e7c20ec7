"""Physics constants of the CLICdet-like (CLIC_o3_v14) parametric detector, in one place.

Units: mm, GeV, ns, tesla. Sources, cited per block:
- [K4GEO] CLIC_o3_v14 compact geometry, key4hep/k4geo `CLIC/compact/CLIC_o3_v14/`.
- [DELPHES] Delphes CLICdet Stage1 card, delphes/delphes `cards/delphes_card_CLICdet_Stage1.tcl`
  (CLICdet model after arXiv:1812.07337 and CLICdp-Note-2017-001, validated in arXiv:1909.12728).
- [CDR] CLIC CDR vol. 2 (arXiv:1202.5940) detector requirements, as quoted by PAPAS (cbernet/heppy `papas/detectors/CLIC.py`).
- [PAPAS] cbernet/heppy `heppy/papas/` shower sharing and cluster sizes.
- [CLICPERF] iLCSoft/CLICPerformance `clicConfig/` digitisation and Pandora settings; HEP-KBFI/key4hep-sim `clic/`.
- [PDG] Review of Particle Physics, material properties (W, Fe radiation and interaction lengths, dE/dx of MIPs).
Values marked "model choice" are parameters of this emulation, tuned so the calibration numbers of
docs/fastsim.md come out close to the published CLICdet performance.
"""

from __future__ import annotations

import numpy as np

# --- Field and units --------------------------------------------------------------------------------------
B_FIELD_T = 4.0  # solenoid field inside the coil [K4GEO]
# pT[GeV] = C_LIGHT_GEV * B[T] * R[mm]; 0.299792458 GeV/(T m) -> per mm.  (LCIO HelixClass FCT)
C_LIGHT_GEV = 2.99792458e-4
C_MM_PER_NS = 299.792458

# --- Tracker (CLIC_o3_v14) [K4GEO] -------------------------------------------------------------------------
# Barrel layers: vertex double layers (two sensors each), inner and outer tracker.
TRACKER_BARREL_RADII = np.array(
    [31.0, 33.0, 44.0, 46.0, 58.0, 60.0, 127.0, 340.0, 554.0, 819.0, 1153.0, 1486.0]
)
TRACKER_BARREL_HALF_Z = np.array([130.0] * 6 + [482.0, 482.0, 692.0, 1264.0, 1264.0, 1264.0])
# Endcap disks (|z| in mm, inner and outer radius); vertex double disks, inner and outer tracker disks.
# Positions follow the CLIC_o3_v14 layout to within a few cm (model choice where the XML is not quoted).
TRACKER_DISK_Z = np.array(
    [160.0, 162.0, 230.0, 232.0, 300.0, 302.0, 524.0, 808.0, 1093.0, 1377.0, 1661.0, 1946.0, 2231.0]
)
TRACKER_DISK_RMIN = np.array([27.0] * 6 + [70.0, 90.0, 120.0, 150.0, 180.0, 210.0, 240.0])
TRACKER_DISK_RMAX = np.array([102.0] * 6 + [500.0, 550.0, 1450.0, 1450.0, 1450.0, 1450.0, 1450.0])
TRACKER_HALF_LENGTH = 2306.0  # [K4GEO]
MIN_TRACK_HITS = 4  # pattern recognition needs at least four hits (ConformalTracking minimum, [CLICPERF])
# Subdetector order of SiTracks_Refitted.subdetectorHitNumbers written here: VXD barrel, VXD endcap,
# inner tracker barrel, inner tracker endcap, outer tracker barrel, outer tracker endcap.
BARREL_LAYER_SUBDET = np.array([0] * 6 + [2, 2, 2, 4, 4, 4])
DISK_SUBDET = np.array([1] * 6 + [3, 3, 5, 5, 5, 5, 5])

# --- Tracking efficiency [DELPHES] ---------------------------------------------------------------------------
TRACK_MIN_PT = 0.1  # GeV; efficiency zero below
TRACK_MAX_ABS_ETA = 2.54  # theta > 9 deg
# (eta edges, efficiency) per (particle class, energy band). Bands: pions E<3, 3-80, >=80; electrons E<5,
# 5-80, >=80; muons E<5, >=5 (same table above 80).
PION_EFF = {
    "low": ([0.0, 0.55, 2.54], [1.000, 0.990]),
    "mid": ([0.0, 2.34, 2.54], [1.000, 0.994]),
    "high": ([0.0, 2.54], [1.000]),
}
ELECTRON_EFF = {
    "low": ([0.0, 0.76, 2.34, 2.54], [0.999, 0.997, 1.000]),
    "mid": ([0.0, 2.17, 2.54], [1.000, 0.998]),
    "high": ([0.0, 2.34, 2.44, 2.54], [1.000, 0.997, 0.993]),
}
MUON_EFF = {
    "low": ([0.0, 2.25, 2.44, 2.54], [1.000, 0.999, 0.996]),
    "mid": ([0.0, 2.44, 2.54], [1.000, 0.996]),
    "high": ([0.0, 2.44, 2.54], [1.000, 0.994]),
}

# --- Momentum resolution sigma(pT)/pT = sqrt((a pT)^2 + b^2) [DELPHES Stage1] ----------------------------------
PT_RES_ETA_EDGES = np.array([0.0, 0.18, 0.45, 0.88, 1.32, 1.74, 2.66])
PT_RES_A = {
    "pion": np.array([1.32845e-5, 1.28327e-5, 1.16768e-5, 1.12382e-5, 8.56036e-5, 2 * 8.56036e-5]),
    "electron": np.array([1.40722e-5, 1.3307e-5, 1.15518e-5, 1.0915e-5, 8.62283e-5, 2 * 8.62283e-5]),
    "muon": np.array([1.29686e-5, 1.20149e-5, 1.1959e-5, 9.81626e-6, 4.57439e-5, 2 * 4.57439e-5]),
}
PT_RES_B = {
    "pion": np.array([2.09325e-3, 2.20587e-3, 2.55204e-3, 3.91722e-3, 1.48987e-2, 2 * 1.48987e-2]),
    "electron": np.array([2.92138e-3, 3.17807e-3, 3.98644e-3, 6.63766e-3, 1.77556e-2, 2 * 1.77556e-2]),
    "muon": np.array([2.0392e-3, 2.19291e-3, 2.42417e-3, 3.79895e-3, 1.49328e-2, 2 * 1.49328e-2]),
}
# Impact parameters: sigma(d0) = a (+) b / (p sin^{3/2} theta), CLIC requirement a = 5 um, b = 15 um GeV
# (CLICdp-Note-2017-001); the same for z0 with a factor 1.5 on both terms (model choice: z pixels coarser).
D0_RES_A, D0_RES_B = 5e-3, 15e-3  # mm, mm GeV
Z0_RES_SCALE = 1.5
# Angular resolutions (multiple scattering + point resolution), model choice of the same form:
# sigma(phi) = sigma(theta) = 2e-5 (+) 1.5e-3 / (p sin^{1/2} theta) rad.
ANGLE_RES_A, ANGLE_RES_B = 2e-5, 1.5e-3

# --- Fake tracks (model choice; ConformalTracking fake rate at the per-mille level per true track) -----------
FAKE_TRACK_RATE = 0.005  # fake tracks per reconstructed true track

# --- Calorimeters (CLIC_o3_v14) [K4GEO] ------------------------------------------------------------------------
ECAL_BARREL_RMIN, ECAL_BARREL_RMAX, ECAL_BARREL_HALF_Z = 1500.0, 1702.0, 2210.0
ECAL_ENDCAP_ZMIN, ECAL_ENDCAP_ZMAX, ECAL_ENDCAP_RMIN, ECAL_ENDCAP_RMAX = 2307.0, 2509.0, 260.0, 1700.0
HCAL_BARREL_RMIN, HCAL_BARREL_RMAX, HCAL_BARREL_HALF_Z = 1740.0, 3330.0, 2210.0
HCAL_ENDCAP_ZMIN, HCAL_ENDCAP_ZMAX, HCAL_ENDCAP_RMIN, HCAL_ENDCAP_RMAX = 2539.0, 4129.0, 250.0, 3246.0
ECAL_LAYERS, HCAL_LAYERS = 40, 60
ECAL_CELL, HCAL_CELL = 5.1, 30.0  # mm
ECAL_X0_MM = 202.0 / 22.0  # 22 X0 in 202 mm of W/Si
ECAL_LAMBDA_MM = 202.0  # 1 lambda_I
HCAL_LAMBDA_MM = 1590.0 / 7.5  # 7.5 lambda_I in 1590 mm of Fe/scintillator
# Muon system in the return yoke (r 3.5-6 m), a few hits per muon; layer radii/planes (model choice).
MUON_BARREL_RADII = np.array([4000.0, 4400.0, 4800.0, 5200.0, 5600.0])
MUON_ENDCAP_Z = np.array([4600.0, 5000.0, 5400.0, 5800.0])
MUON_CELL = 30.0
MUON_MIN_P = 3.0  # GeV to cross 8.5 lambda of calorimeter + coil (range-energy of muons in Fe, [PDG])

# --- Energy resolutions -------------------------------------------------------------------------------------
# ECAL: sqrt((0.01 E)^2 + S^2 E), S = 0.156 (|eta| <= 0.8), 0.151 beyond [DELPHES].
ECAL_STOCH_BARREL, ECAL_STOCH_ENDCAP, ECAL_CONST = 0.156, 0.151, 0.01
ECAL_ETA_SPLIT = 0.8
# Hadrons: sqrt(N^2 + S^2 E + C^2 E^2) with the Delphes S, C per |eta| band [DELPHES]. The Delphes noise term
# (1.1-1.4 GeV) describes tower noise; hits here carry none (noise off in the production [CLICPERF]), so the
# PAPAS/CDR 0.5 GeV noise term is used instead [CDR].
HAD_ETA_EDGES = np.array([0.0, 0.3, 0.78, 1.099, 3.5])
HAD_STOCH = np.array([0.308, 0.322, 0.341, 0.319])
HAD_CONST = np.array([0.050, 0.048, 0.049, 0.052])
HAD_NOISE = 0.5

# --- Shower shapes (model choices informed by [PDG] and [PAPAS]) ---------------------------------------------
# EM longitudinal profile: Gamma(a, b) in X0 with t_max = ln(E/Ec) - 0.5, b = 0.5, Ec(W) = 8 MeV [PDG].
EM_B = 0.5
EM_EC_GEV = 0.008
# Lateral: core with Moliere radius of the W/Si ECAL (~ 9 mm W; 15 mm effective with Si gaps), 90% containment.
EM_MOLIERE_MM = 15.0
HAD_CORE_MM_ECAL = 35.0  # hadron shower lateral scale in ECAL (PAPAS hadron cluster size 4.5 cm)
HAD_CORE_MM_HCAL = 70.0  # hadron lateral scale in HCAL (PAPAS HCAL size 10 cm)
HAD_HALO_FRACTION = 0.04  # energy fraction in a wide halo that can detach as split-off fragments
HAD_HALO_SCALE = 4.0  # halo lateral scale in units of the core scale
# ECAL/HCAL sharing [PAPAS]: shower start ~ Exp(lambda); if inside the ECAL, a fraction U(0, 0.7) there.
HAD_ECAL_FRACTION_MAX = 0.7
# MIP deposits, calibrated to the electromagnetic scale: dE/dx(W) 22.1 MeV/cm x 7.6 cm and dE/dx(Fe)
# 11.4 MeV/cm x 114 cm [PDG] (Pandora calibrates MIPs to ~ these values).
MIP_ECAL_GEV = 0.17
MIP_HCAL_GEV = 1.3
MIP_MUON_HIT_GEV = 0.01
# Spots (sub-deposits) per shower: n = clip(N0 + N1 sqrt(E), 2, NMAX) (model choice; sets hits per event).
EM_SPOTS = (6.0, 6.0, 60)
HAD_SPOTS = (6.0, 5.0, 60)

# --- Full hit detail (`fastsim.hit_detail: full`): hit multiplicities and hit energies like the full simulation.
# Targets: a CLIC ttbar event has 8484 calorimeter hits (jpata/particleflow PR #490); the 10 GeV photons of the
# CLIC_o3_v14 reconstruction fixture (tests/fixtures/edm4hep, clic_o3_v14_gamma10gev_rec_3evt_legacy.root) leave
# ~35 ECAL hits per GeV with hit energies 3.8 / 14 / 95 MeV (5 % / median / 95 %), the HCAL hits of the CLD
# fixture 14 / 40 / 210 MeV. Spot counts are proportional to the deposited energy (model choice, tuned to
# these numbers, docs/fastsim.md); each spot carries a Gamma(FULL_SPOT_WEIGHT_SHAPE) share of its shower part.
FULL_EM_SPOTS_PER_GEV = 70.0
FULL_HAD_SPOTS_PER_GEV = 40.0
FULL_MAX_SPOTS = 20000  # per shower part (a 1 TeV deposit at most)
FULL_SPOT_WEIGHT_SHAPE = 1.5
# A wider halo around the electromagnetic core (the ~10 % of the energy outside one Moliere radius [PDG]).
FULL_EM_HALO_FRACTION = 0.1
FULL_EM_HALO_SCALE = 3.0
# Minimum-ionising segments: one spot per calorimeter layer crossed before a hadron showers and along a muon;
# Landau-like fluctuations from Gamma(FULL_MIP_WEIGHT_SHAPE) weights (model choice).
FULL_MIP_WEIGHT_SHAPE = 4.0
# Electronic noise hits: none in the CLIC/CLD productions (every hit of both reconstruction fixtures carries a
# CalohitMCTruthLink); `fastsim.noise_hits_per_event` adds Poisson-distributed hits without truth, in random
# ECAL/HCAL cells in proportion to the cell counts, each with the hit threshold plus an exponential tail of
# NOISE_TAIL_MIP (model choice) and a time uniform in the NOISE_WINDOW_NS readout window.
NOISE_TAIL_MIP = 0.3
NOISE_WINDOW_NS = 10.0

# --- Readout thresholds: 0.5 MIP ECAL, 0.3 MIP HCAL per layer cell (Pandora ECalMipThreshold 0.5,
# HCalMipThreshold 0.3 [CLICPERF]); MIP per layer = MIP total / layers.
ECAL_HIT_THRESHOLD = 0.5 * MIP_ECAL_GEV / ECAL_LAYERS
HCAL_HIT_THRESHOLD = 0.3 * MIP_HCAL_GEV / HCAL_LAYERS

# --- Clustering (model choice, Pandora-like cone clustering emulated on a projected grid) ---------------------
CLUSTER_GRID_MM = 30.0  # projected cell size at the ECAL front face
CLUSTER_MIN_ENERGY = 0.05  # GeV; smaller islands are left unclustered
# Fragment removal (Pandora FragmentRemoval-like): hadronic satellites within FRAGMENT_RADIUS_MM and with less
# than FRAGMENT_MAX_RATIO of a neighbour's energy are merged into it (model choice).
FRAGMENT_RADIUS_MM = 200.0
FRAGMENT_MAX_RATIO = 0.3
FRAGMENT_MAX_EM_FRACTION = 0.5

# --- Baseline particle flow [PAPAS], [DELPHES] ------------------------------------------------------------------
PF_NEUTRAL_SIGMA = 2.0  # PAPAS: excess significant if > 2 sigma_had(sum p)
PF_PHOTON_MIN_E = 0.2  # PAPAS ECAL cluster threshold
PF_NEUTRAL_HADRON_MIN_E = 0.5  # between Delphes EFlow HCAL EnergyMin (1 GeV) and PAPAS
PF_EM_FRACTION = 0.8  # cluster ECAL fraction above which an unlinked cluster is a photon
PF_ELECTRON_EOP_MIN = 0.7  # electron: E_ecal / p above this and ECAL fraction above PF_EM_FRACTION

# --- Particle masses (GeV) [PDG] ---------------------------------------------------------------------------------
PION_MASS = 0.13957
NEUTRON_MASS = 0.93957
ELECTRON_MASS = 0.000511
MUON_MASS = 0.10566

# --- Beam conditions ---------------------------------------------------------------------------------------------
# Half crossing angle 10 mrad: ddsim crossingAngleBoost = 0.010 in clic_steer.py [CLICPERF].
CROSSING_ANGLE_BOOST = 0.010
# Vertex spread of the 2025 MLPF CLIC production cards (Beams:allowVertexSpread, sigma x 27.3 um, y 48.8 nm,
# z 1.33 mm; HEP-KBFI/key4hep-sim clic/pythia/p8_ee_*_ecm380.cmd).
VERTEX_SIGMA_MM = (27.3e-3, 48.8e-6, 1.33)
# Long-lived decays: Pythia decays particles only inside the tracker cylinder, as in the production cards
# (ParticleDecays:limitCylinder, xyMax 2250 mm, zMax 2500 mm; HEP-KBFI/key4hep-sim clic/pythia).
DECAY_XY_MAX, DECAY_Z_MAX = 2250.0, 2500.0
