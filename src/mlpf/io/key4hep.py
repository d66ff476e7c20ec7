"""Key4HEP full simulation of one shard: the stack check and the job's command lines.

The chain is the MLPF CLIC production (jpata/particleflow `scripts/fcc/run_sim.sh`, HEP-KBFI/key4hep-sim
`clic/run_sim.sh`): Pythia8 through `k4run pythia.py` writes HepMC, `ddsim` simulates CLIC_o3_v14 with the
crossing-angle steering, and `k4run clicRec_e4h_input.py` (Marlin processors in Gaudi: ConformalTracking,
refit, DDCaloDigi, DDMarlinPandora) reconstructs it into EDM4HEP. The PU10 sample overlays
Poisson(10) gamma gamma -> hadrons interactions on ttbar with a small Pythia8 program; particle guns use the
ddsim gun. This module only builds the command lines (one source of truth for the rule, `mlpf key4hep-script`
and the run scripts); `workflow/resources/key4hep/in_stack.sh` runs them inside the stack.

Where a Key4HEP stack comes from: a sourced setup script (CVMFS release) or an Apptainer image. Without one
the chain cannot run at all, so every job checks first and fails at once with a single line saying what is
missing, instead of failing later inside a shell with `ddsim: command not found`.
"""

from __future__ import annotations

import shlex
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlpf.errors import ConfigError, MlpfError

# Container runtimes that can run an Apptainer/Singularity image (Apptainer is the renamed Singularity).
CONTAINER_RUNTIMES = ("apptainer", "singularity")

# Pythia8 cards shipped in workflow/resources/key4hep/pythia/, all at sqrt(s) = 380 GeV (MLPF CLIC production;
# z_tautau uses the 125 GeV card's settings at 380 GeV, since no 380 GeV card was published).
PYTHIA_CARDS = {
    "ttbar": "p8_ee_tt_ecm380.cmd",
    "qq": "p8_ee_qq_ecm380.cmd",
    "zh_tautau": "p8_ee_ZH_Htautau_ecm380.cmd",
    "ww_fullhad": "p8_ee_WW_fullhad_ecm380.cmd",
    "z_tautau": "p8_ee_Z_Ztautau_ecm380.cmd",
    "ttbar_pu10": "p8_ee_tt_ecm380.cmd",  # the signal; the overlay comes from PILEUP_CARD
}
# gamma gamma -> hadrons, the pile-up source of the PU10 sample (scripts/fcc/p8_ee_gg_ecm380.cmd).
PILEUP_CARD = "p8_ee_gg_ecm380.cmd"
PILEUP_SAMPLES = frozenset({"ttbar_pu10"})

# Geant4 particle names of the guns (MLPF guns: e, mu, pi, pi0, K0L, n, gamma; negative charges here).
GUN_PARTICLES = {
    "gun_e": "e-",
    "gun_mu": "mu-",
    "gun_pi": "pi-",
    "gun_pi0": "pi0",
    "gun_kl": "kaon0L",
    "gun_n": "neutron",
    "gun_gamma": "gamma",
}

# First job seed per sample; shard k uses base + seed_offset + k. The physics-sample bases are those of the
# 2023 production (tt 1-10010, qq 100001-120010, ZH 200001-210010, WW 300001-310010, tt PU10 1-10000), so
# shard k with offset 0 regenerates the published job k+1. Z->tautau and the guns had no published range;
# their bases are new, disjoint ranges. ttbar_pu10 shares the ttbar base as in the production, so its signal
# generator starts from the same Pythia seed as the ttbar job of the same shard: with equal Pythia versions
# the PU10 signal events repeat those ttbar events (a paired comparison with and without pile-up).
SEED_BASE = {
    "ttbar": 1,
    "qq": 100001,
    "zh_tautau": 200001,
    "ww_fullhad": 300001,
    "z_tautau": 400001,
    "ttbar_pu10": 1,
    "gun_e": 500001,
    "gun_mu": 510001,
    "gun_pi": 520001,
    "gun_pi0": 530001,
    "gun_kl": 540001,
    "gun_n": 550001,
    "gun_gamma": 560001,
}

# File names inside the job's scratch directory.
HEPMC = "out.hepmc"
SIM = "out_sim.edm4hep.root"
RECO = "reco.edm4hep.root"
# k4FWCore IOSvc naming of the CLIC reco output for `--outputBasename out_RECO` (as CLDConfig's
# CLDReconstruction.py names its output; *unverified* for clicRec_e4h_input.py).
IOSVC_BASENAME = "out_RECO"
IOSVC_OUTPUT = "out_RECO_REC.edm4hep.root"


@dataclass(frozen=True)
class Stack:
    """A usable Key4HEP stack: `kind` is "setup" (source a script) or "apptainer" (run inside an image)."""

    kind: str
    path: Path
    runtime: str | None = None

    def describe(self) -> str:
        if self.kind == "setup":
            return f"source {self.path}"
        return f"{self.runtime} exec {self.path}"


def find_stack(settings: Mapping[str, Any]) -> Stack:
    """The configured stack if it is usable; else `MlpfError` naming what is missing (one line).

    An Apptainer image, when configured, takes precedence (it is the explicit choice); the image must exist
    and `apptainer` or `singularity` must be on PATH (`setup_script` is then a path inside the image).
    Otherwise the setup script must exist.
    """
    image = str(settings.get("apptainer_image") or "")
    script = str(settings.get("setup_script") or "")
    if image:
        runtime = next((r for r in CONTAINER_RUNTIMES if shutil.which(r)), None)
        if not Path(image).is_file():
            raise MlpfError(f"no Key4HEP stack: key4hep.apptainer_image {image} does not exist")
        if runtime is None:
            raise MlpfError(
                f"no Key4HEP stack: key4hep.apptainer_image is set ({image}) but neither apptainer nor "
                "singularity is on PATH"
            )
        return Stack("apptainer", Path(image), runtime)
    if script and Path(script).is_file():
        return Stack("setup", Path(script))
    raise MlpfError(
        f"no Key4HEP stack: setup script {script or '(key4hep.setup_script empty)'} not found (is CVMFS "
        "mounted?) and no key4hep.apptainer_image configured"
    )


def stack_arguments(settings: Mapping[str, Any]) -> list[str]:
    """in_stack.sh options selecting the stack: `--setup S [--release R]` and/or `--image I`."""
    args = []
    if settings.get("setup_script"):
        args += ["--setup", str(settings["setup_script"])]
        if settings.get("release"):
            args += ["--release", str(settings["release"])]
    if settings.get("apptainer_image"):
        args += ["--image", str(settings["apptainer_image"])]
    return args


def job_seed(sample: str, shard: int, settings: Mapping[str, Any]) -> int:
    """The job's random seed (Pythia `Random:seed` and ddsim `--random.seed`)."""
    if sample not in SEED_BASE:
        raise ConfigError(f"unknown sample '{sample}' for Key4HEP generation; known: {', '.join(SEED_BASE)}")
    return SEED_BASE[sample] + int(settings.get("seed_offset", 0)) + int(shard)


def _card_lines(card: str, dest: str, seed: int, resources: str) -> list[str]:
    """Copy a shipped card into the job directory with the job's seed appended."""
    return [f'{{ cat {resources}/pythia/{card}; echo "Random:seed={seed}"; }} > {dest}']


def chain_commands(
    sample: str, shard: int, settings: Mapping[str, Any], resources: str = "$MLPF_KEY4HEP_RESOURCES"
) -> list[str]:
    """The shell commands of one shard's job, run inside the stack in a scratch directory.

    `resources` is how the commands refer to workflow/resources/key4hep (an environment variable set by
    in_stack.sh, so the lines stay readable and relocatable). Environment variables of the stack
    (`$K4GEO`, the CLIC config directory) are expanded there, not here. The last command leaves the
    reconstructed events in `reco.edm4hep.root`.
    """
    n = int(settings.get("events_per_shard", 100))
    seed = job_seed(sample, shard, settings)
    compact = settings.get("compact_file", "$K4GEO/CLIC/compact/CLIC_o3_v14/CLIC_o3_v14.xml")
    cmds: list[str] = []
    if sample in GUN_PARTICLES:
        lo, hi = settings.get("gun_momentum_min", 1.0), settings.get("gun_momentum_max", 100.0)
        if not lo < hi:
            raise ConfigError(f"key4hep.gun_momentum_min ({lo}) must be below gun_momentum_max ({hi})")
        source = (
            f"--enableGun --gun.particle {GUN_PARTICLES[sample]} --gun.distribution uniform "
            f'--gun.momentumMin "{lo}*GeV" --gun.momentumMax "{hi}*GeV"'
        )
    elif sample in PILEUP_SAMPLES:
        cmds += _card_lines(PYTHIA_CARDS[sample], "card.cmd", seed, resources)
        cmds += _card_lines(PILEUP_CARD, "card_pu.cmd", seed, resources)
        cmds.append(
            f"g++ -O2 -std=c++17 {resources}/pileup_overlay.cc -o pileup_overlay "
            "$(pythia8-config --cxxflags --libs) -lHepMC3"
        )
        mean, shift = settings.get("pileup_mean", 10.0), settings.get("pileup_time_shift", 0.5)
        cmds.append(f"./pileup_overlay card.cmd card_pu.cmd {seed} {mean} {n} {shift} {HEPMC}")
        source = f"--inputFiles {HEPMC}"
    elif sample in PYTHIA_CARDS:
        cmds += _card_lines(PYTHIA_CARDS[sample], "card.cmd", seed, resources)
        cmds.append(
            f"k4run {resources}/pythia.py -n {n} --Dumper.Filename {HEPMC} "
            "--Pythia8.PythiaInterface.pythiacard card.cmd"
        )
        source = f"--inputFiles {HEPMC}"
    else:
        raise ConfigError(f"unknown sample '{sample}' for Key4HEP generation")
    cmds.append(
        f'ddsim --compactFile "{compact}" --steeringFile {resources}/clic_steer.py {source} '
        f"--outputFile {SIM} --numberOfEvents {n} --random.seed {seed}"
    )
    config_dir = settings.get("clic_config_dir", "$CLICPERFORMANCE/clicConfig")
    # The reconstruction options read PandoraSettings and calibration files by relative path.
    cmds.append(f'cp -r "{config_dir}"/. .')
    if settings.get("reco_style", "iosvc") == "legacy":  # Key4hep 2023 (k4DataSvc/PodioOutput)
        cmds.append(
            f"k4run clicRec_e4h_input.py -n {n} --EventDataSvc.input {SIM} --PodioOutput.filename {RECO}"
        )
    else:  # Key4hep >= 2024 (k4FWCore IOSvc)
        cmds.append(
            f"k4run clicRec_e4h_input.py --inputFiles {SIM} --outputBasename {IOSVC_BASENAME} --num-events {n}"
        )
        cmds.append(f"mv {IOSVC_OUTPUT} {RECO}")
    return cmds


def job_script(sample: str, shard: int, settings: Mapping[str, Any]) -> str:
    """The job's commands as one script text (one command per line), as the rule passes it to in_stack.sh."""
    return "\n".join(chain_commands(sample, shard, settings))


def workflow_script(settings: Mapping[str, Any]):
    """A params function for the Key4HEP rule: wildcards -> the shard's job script."""

    def script(wildcards: Any) -> str:
        return job_script(wildcards.sample, int(wildcards.shard), settings)

    return script


def stack_arguments_shell(settings: Mapping[str, Any]) -> str:
    """`stack_arguments` as one shell-quoted string for a rule's command line."""
    return shlex.join(stack_arguments(settings))
