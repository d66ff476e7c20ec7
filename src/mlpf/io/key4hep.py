"""Key4HEP full simulation of one shard: the stack check and the job's command lines.

The chain is the MLPF CLIC production: Pythia8 through `k4run pythia.py` writes HepMC, `ddsim` simulates
CLIC_o3_v14 with the CLIC steering (`clic_steer.py`), and `k4run clicRec_e4h_input.py` (Marlin processors in
Gaudi: ConformalTracking, refit, DDCaloDigi, DDMarlinPandora) reconstructs it into EDM4HEP. The PU10 sample
overlays Poisson(10) gamma gamma -> hadrons interactions on ttbar with a small Pythia8 program; particle guns use
the ddsim gun. This module only builds the command lines (one source of truth for the rule, `mlpf key4hep-run`
and the run scripts); `workflow/resources/key4hep/in_stack.sh` runs them inside the stack.

Two productions (`key4hep.production`) fix what changed between Key4HEP releases:
- `paper-2023`: the production of the published dataset (Zenodo 8260741), as jpata/particleflow ran it
  (`fcc/run_sim*.sh`, Key4HEP stacks of 2022-12-23 and 2023-01-15): geometry under `$LCGEO`, and the
  production's own reconstruction options and steering (jpata/particleflow `scripts/fcc/`, with its
  PandoraSettings), run as `k4run clicRec_e4h_input.py -n N --EventDataSvc.input SIM --PodioOutput.filename
  RECO`.
- `key4hep-2025`: the same physics settings on release 2025-05-29: geometry under `$K4GEO`; the reconstruction
  options are k4MarlinWrapper's CLIC example (`$K4MARLINWRAPPER/examples/clicRec_e4h_input.py`) plus
  `clic_reco_tracking.py` (the production's tracking settings), run in a copy of CLICPerformance's
  `clicConfig` (PandoraSettings, `clic_steer.py`) as `--gaudi-input SIM --gaudi-output RECO --num-events -1`,
  the example's options (HEP-KBFI/key4hep-sim clic/run_sim.sh).
In both, the directory `key4hep.clic_config_dir` is copied into the job directory first: the reconstruction
reads its files by relative path, and `ddsim` takes the steering from there.

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

# Pythia8 cards shipped in workflow/resources/key4hep/pythia/, all at sqrt(s) = 380 GeV: the 2023 production's
# (jpata/particleflow scripts/fcc/) and, for z_tautau, the 380 GeV card published with HEP-KBFI/key4hep-sim
# v1.2.2 (clic/p8_ee_Z_Ztautau_ecm380.cmd).
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

# Geant4 particle names of the guns. The production shot e-, e+, mu-, mu+, pi-, pi+, pi0, K0L, n and gamma
# (jpata/particleflow fcc/run_sim_gun.sh, particle = its argument); a charged sample alternates the charge by
# shard (even shards the first name, odd shards the second), so two shards hold both charges.
GUN_PARTICLES: dict[str, tuple[str, ...]] = {
    "gun_e": ("e-", "e+"),
    "gun_mu": ("mu-", "mu+"),
    "gun_pi": ("pi-", "pi+"),
    "gun_pi0": ("pi0",),
    "gun_kl": ("kaon0L",),
    "gun_n": ("neutron",),
    "gun_gamma": ("gamma",),
}

# First job seed per sample; shard k uses base + seed_offset + k. The physics-sample bases are those of the
# 2023 production (tt 1-10010, qq 100001-120010, ZH 200001-210010, WW 300001-310010, tt PU10 1-10000), so
# shard k with offset 0 uses the seed of published job k+1. Z->tautau and the guns had no published range;
# their bases are new, disjoint ranges. ttbar_pu10 shares the ttbar base as in the production, so its signal
# generator starts from the same Pythia seed as the ttbar job of the same shard.
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

# Memory a job asks for, cited from the production's batch requests (none was measured here): the gun jobs
# asked for 35 GB (jpata/particleflow fcc/run_sim_gun.sh, commit 13dd72e, --mem-per-cpu=35G), the physics and
# PU jobs for 6 GB (fcc/run_sim_pu.sh, commit 203c35a; HEP-KBFI/key4hep-sim clic/run_sim.sh, commit 3a3b548).
GUN_MEM_MB = 35_000
PHYSICS_MEM_MB = 6_000

# File names inside the job's scratch directory.
HEPMC = "out.hepmc"
SIM = "out_sim.edm4hep.root"
RECO = "reco.edm4hep.root"
STEERING = "clic_steer.py"  # from key4hep.clic_config_dir, copied into the job directory
COMPACT_PATH = "CLIC/compact/CLIC_o3_v14/CLIC_o3_v14.xml"  # CLIC_o3_v14 inside lcgeo / k4geo


@dataclass(frozen=True)
class Production:
    """What one production setting fixes: the geometry variable and how the reconstruction is called."""

    name: str
    geometry_variable: str  # the stack's variable holding lcgeo/k4geo
    reco_options: tuple[str, ...]  # k4run options files, in load order
    reco_io: str  # k4run's input, output and event-count options ({n}, {sim}, {reco} filled in)
    config_needs: str  # a file the copied clic_config_dir must hold
    config_hint: str  # what clic_config_dir should be, for the error message

    def reco_command(self, n_events: int) -> str:
        io = self.reco_io.format(n=n_events, sim=SIM, reco=RECO)
        return f"k4run {' '.join(self.reco_options)} {io}"


PRODUCTIONS = {
    "paper-2023": Production(
        name="paper-2023",
        geometry_variable="LCGEO",
        reco_options=("clicRec_e4h_input.py",),
        # jpata/particleflow fcc/run_sim_gun.sh (commit 13dd72e) and fcc/run_sim_pu.sh (commit 203c35a).
        reco_io="-n {n} --EventDataSvc.input {sim} --PodioOutput.filename {reco}",
        config_needs="clicRec_e4h_input.py",
        config_hint="jpata/particleflow scripts/fcc at tag v1.6.2 (the production options and PandoraSettings)",
    ),
    "key4hep-2025": Production(
        name="key4hep-2025",
        geometry_variable="K4GEO",
        reco_options=(
            '"$K4MARLINWRAPPER/examples/clicRec_e4h_input.py"',
            "$MLPF_KEY4HEP_RESOURCES/clic_reco_tracking.py",
        ),
        # HEP-KBFI/key4hep-sim clic/run_sim.sh (5be058e); the example reads its whole input (the simulation
        # holds the shard's events), hence -1.
        reco_io="--gaudi-input {sim} --gaudi-output {reco} --num-events -1",
        config_needs=STEERING,
        config_hint="the clicConfig directory of an iLCSoft/CLICPerformance clone",
    ),
}


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


def production(settings: Mapping[str, Any]) -> Production:
    name = str(settings.get("production", "key4hep-2025"))
    if name not in PRODUCTIONS:
        raise ConfigError(f"unknown key4hep.production '{name}'; known: {', '.join(PRODUCTIONS)}")
    return PRODUCTIONS[name]


def find_stack(settings: Mapping[str, Any]) -> Stack:
    """The configured stack if it is usable; else `MlpfError` naming what is missing (one line).

    An Apptainer image, when configured, takes precedence (it is the explicit choice); the image must exist
    and `apptainer` or `singularity` must be on PATH (`setup_script` is then a path inside the image).
    Otherwise the setup script must exist. The reconstruction's configuration directory is checked too.
    """
    stack = _stack(settings)
    check_config_dir(settings, on_host=stack.kind == "setup")
    return stack


def _stack(settings: Mapping[str, Any]) -> Stack:
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


def check_config_dir(settings: Mapping[str, Any], on_host: bool = True) -> None:
    """`key4hep.clic_config_dir` must be set and, where it is a plain host path, hold what the production needs.

    A path with `$` is expanded inside the stack, and the job script checks it there."""
    prod = production(settings)
    config_dir = str(settings.get("clic_config_dir") or "")
    if not config_dir:
        raise MlpfError(f"key4hep.clic_config_dir is empty; set it to {prod.config_hint}")
    if not on_host or "$" in config_dir:
        return
    if not (Path(config_dir) / prod.config_needs).is_file():
        raise MlpfError(
            f"key4hep.clic_config_dir {config_dir} has no {prod.config_needs}; it should be {prod.config_hint}"
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


def gun_particle(sample: str, shard: int) -> str:
    """The particle a gun shard shoots: charged samples alternate the charge from shard to shard."""
    particles = GUN_PARTICLES[sample]
    return particles[shard % len(particles)]


def job_mem_mb(sample: str) -> int:
    """Memory to request for one job of `sample` (see GUN_MEM_MB / PHYSICS_MEM_MB for the sources)."""
    return GUN_MEM_MB if sample in GUN_PARTICLES else PHYSICS_MEM_MB


def compact_file(settings: Mapping[str, Any]) -> str:
    """The detector description: `key4hep.compact_file`, else CLIC_o3_v14 under the production's variable."""
    return str(settings.get("compact_file") or f"${production(settings).geometry_variable}/{COMPACT_PATH}")


def _fail_unless(test: str, message: str) -> str:
    """A job line that stops the job with `message` on stderr unless the shell `test` holds."""
    return f"{test} || {{ echo {shlex.quote('key4hep job: ' + message)} >&2; exit 1; }}"


def _card_lines(card: str, dest: str, seed: int, resources: str) -> list[str]:
    """Copy a shipped card into the job directory with the job's seed appended."""
    return [f'{{ cat {resources}/pythia/{card}; echo "Random:seed={seed}"; }} > {dest}']


def _config_lines(settings: Mapping[str, Any]) -> list[str]:
    """Copy the reconstruction's configuration directory into the job directory, after checking it.

    Unset, the job stops at this line (and `mlpf key4hep-check` before it); the plan still shows every line."""
    prod = production(settings)
    config_dir = str(settings.get("clic_config_dir") or "")
    if not config_dir:
        return [_fail_unless("false", f"key4hep.clic_config_dir is empty; set it to {prod.config_hint}")]
    wrong = f"{config_dir} has no {prod.config_needs}; key4hep.clic_config_dir should be {prod.config_hint}"
    return [_fail_unless(f'test -f "{config_dir}/{prod.config_needs}"', wrong), f'cp -r "{config_dir}"/. .']


def _stack_checks(settings: Mapping[str, Any]) -> list[str]:
    """Fail early, with one line, where the stack lacks a variable the commands use."""
    prod = production(settings)
    lines = []
    if not settings.get("compact_file"):
        variable = prod.geometry_variable
        unset = (
            f"${variable} is not set by this stack; is key4hep.production ({prod.name}) the one for this "
            "release? Or set key4hep.compact_file"
        )
        lines.append(_fail_unless(f'test -n "${{{variable}:-}}"', unset))
    if prod.name == "key4hep-2025":
        example = "$K4MARLINWRAPPER/examples/clicRec_e4h_input.py"
        lines.append(_fail_unless(f'test -f "{example}"', f"{example} not found in this stack"))
    return lines


# The generator options' own k4run options (k4Gen: HepMCFileWriter "Filename", PythiaInterface "pythiacard").
PYTHIA_COMMAND = "k4run {resources}/pythia.py -n {n} --Dumper.Filename {hepmc} --Pythia8.PythiaInterface.pythiacard card.cmd"
# Pythia8Plugins/HepMC3.h needs the HepMC3 headers and library next to Pythia's own (HepMC3-config prints them).
OVERLAY_COMPILE = (
    "g++ -O2 -std=c++17 {resources}/pileup_overlay.cc -o pileup_overlay "
    "$(pythia8-config --cxxflags) $(HepMC3-config --cxxflags) "
    "$(pythia8-config --libs) $(HepMC3-config --libs) -Wl,-rpath,$(HepMC3-config --libdir)"
)


def _generation_lines(
    sample: str, seed: int, n: int, settings: Mapping[str, Any], resources: str
) -> list[str]:
    """Commands that leave the generated events in HEPMC (none for guns)."""
    if sample in PILEUP_SAMPLES:
        mean, shift = settings.get("pileup_mean", 10.0), settings.get("pileup_time_shift", 0.5)
        return [
            *_card_lines(PYTHIA_CARDS[sample], "card.cmd", seed, resources),
            *_card_lines(PILEUP_CARD, "card_pu.cmd", seed, resources),
            OVERLAY_COMPILE.format(resources=resources),
            f"./pileup_overlay card.cmd card_pu.cmd {seed} {mean} {n} {shift} {HEPMC}",
        ]
    if sample in PYTHIA_CARDS:
        return [
            *_card_lines(PYTHIA_CARDS[sample], "card.cmd", seed, resources),
            PYTHIA_COMMAND.format(resources=resources, n=n, hepmc=HEPMC),
        ]
    if sample in GUN_PARTICLES:
        return []
    raise ConfigError(f"unknown sample '{sample}' for Key4HEP generation")


def _ddsim_source(sample: str, shard: int, settings: Mapping[str, Any]) -> str:
    """ddsim's event source: the HepMC file, or the gun (momentum uniform in the range, isotropic)."""
    if sample not in GUN_PARTICLES:
        return f"--inputFiles {HEPMC}"
    lo, hi = settings.get("gun_momentum_min", 1.0), settings.get("gun_momentum_max", 100.0)
    if not lo < hi:
        raise ConfigError(f"key4hep.gun_momentum_min ({lo}) must be below gun_momentum_max ({hi})")
    return (
        f"--enableGun --gun.particle {gun_particle(sample, shard)} --gun.distribution uniform "
        f'--gun.momentumMin "{lo}*GeV" --gun.momentumMax "{hi}*GeV"'
    )


def chain_commands(
    sample: str, shard: int, settings: Mapping[str, Any], resources: str = "$MLPF_KEY4HEP_RESOURCES"
) -> list[str]:
    """The shell commands of one shard's job, run inside the stack in a scratch directory.

    `resources` is how the commands refer to workflow/resources/key4hep (an environment variable set by
    in_stack.sh, so the lines stay readable and relocatable). Environment variables of the stack (`$K4GEO`,
    `$LCGEO`, `$K4MARLINWRAPPER`) are expanded there, not here. The last command leaves the reconstructed
    events in `reco.edm4hep.root`.
    """
    n = int(settings.get("events_per_shard", 100))
    seed = job_seed(sample, shard, settings)
    prod = production(settings)
    generation = _generation_lines(sample, seed, n, settings, resources)
    ddsim = (
        f'ddsim --compactFile "{compact_file(settings)}" --steeringFile {STEERING} '
        f"{_ddsim_source(sample, shard, settings)} --outputFile {SIM} --numberOfEvents {n} --random.seed {seed}"
    )
    return [*_stack_checks(settings), *_config_lines(settings), *generation, ddsim, prod.reco_command(n)]


def job_script(sample: str, shard: int, settings: Mapping[str, Any]) -> str:
    """The job's commands as one script text (one command per line), as the rule passes it to in_stack.sh."""
    return "\n".join(chain_commands(sample, shard, settings))


def workflow_script(settings: Mapping[str, Any]):
    """A params function for the Key4HEP rule: wildcards -> the shard's job script."""

    def script(wildcards: Any) -> str:
        return job_script(wildcards.sample, int(wildcards.shard), settings)

    return script


def workflow_mem_mb(wildcards: Any) -> int:
    """A resources function for the Key4HEP rule: the memory of the sample's jobs."""
    return job_mem_mb(wildcards.sample)


def stack_arguments_shell(settings: Mapping[str, Any]) -> str:
    """`stack_arguments` as one shell-quoted string for a rule's command line."""
    return shlex.join(stack_arguments(settings))
