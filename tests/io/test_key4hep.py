"""Key4HEP generation: stack detection, the job's command lines checked against the options the real tools
define, the shipped Pythia cards and tracking settings, the runner (against a stand-in stack whose programs
parse their command lines as the real ones do and reject unknown options), and the workflow's dry run.

The option tables below are facts read from the tools' sources, each with its file, commit and line; the
stand-ins accept exactly those options, so a command line the real tool would reject fails here too.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import pytest

from edm4hep_fixtures import CLIC_LEGACY_FILE as FIXTURE
from mlpf.cli import main
from mlpf.config import validate_section
from mlpf.errors import ConfigError, MlpfError
from mlpf.io import key4hep
from snakemake_runner import run_snakemake, workdir_with_default_config

REPO = Path(__file__).resolve().parents[2]
RESOURCES = REPO / "workflow" / "resources" / "key4hep"
ALL_SAMPLES = (
    "ttbar", "qq", "zh_tautau", "ww_fullhad", "z_tautau", "ttbar_pu10",
    "gun_e", "gun_mu", "gun_pi", "gun_pi0", "gun_kl", "gun_n", "gun_gamma",
)  # fmt: skip
PRODUCTIONS = ("key4hep-2025", "paper-2023")

# ------------------------------------------------------------------------------------------------ facts

# k4run (key4hep/k4FWCore, k4FWCore/scripts/k4run, commit 00aee891): its own options, lines 147-172
# ("--dry-run" 148, "-v/--verbose" 152, "-n/--num-events" 153 (type=int), "-l/--list" 155-156, "--gdb" 160,
# "--interactive-root" 162, "--log-level" 168); one option "--<configurable>.<property>" for every property of
# every configurable the options files create (lines 107-109); the options files are positional arguments opened
# as files (line 140-142), and the final parser.parse_args() (line 210) rejects every other option.
K4RUN_FLAGS = ("--dry-run", "-v/--verbose", "-l/--list", "--gdb", "--interactive-root")
K4RUN_VALUES = ("-n/--num-events", "--log-level")
# Options the options files add (script arguments or configurable properties), per options file:
OPTIONS_FILE_FACTS: dict[str, dict[str, list[str]]] = {
    # workflow/resources/key4hep/pythia.py creates HepMCFileWriter("Dumper") and GenAlg("Pythia8") with a
    # PythiaInterface tool: properties "Filename" (HEP-FCC/k4Gen k4Gen/src/components/HepMCFileWriter.h,
    # commit 23c3b092, line 38) and "pythiacard" (k4Gen/src/components/PythiaInterface.h, commit 087787a3,
    # line 53).
    "pythia.py": {"values": ["--Dumper.Filename", "--Pythia8.PythiaInterface.pythiacard"], "flags": []},
    # k4MarlinWrapper's CLIC example as released in 2024 (copied with its options into HEP-KBFI/key4hep-sim
    # clic/clicRec_e4h_input.py, commit 819e4e9e): "--iosvc" line 44 (store_true), "--rec-output" 47,
    # "--dst-output" 50, "--gaudi-input" 53, "--gaudi-output" 56.
    "k4marlinwrapper-example": {
        "values": ["--rec-output", "--dst-output", "--gaudi-input", "--gaudi-output"],
        "flags": ["--iosvc"],
    },
    # The 2023 production's own options (jpata/particleflow scripts/fcc/clicRec_e4h_input.py) define no script
    # arguments; its k4DataSvc("EventDataSvc") has the property "input" (key4hep/k4FWCore
    # k4FWCore/src/K4DataSvc.cpp, commit 08fc1544, line 11) and its PodioOutput("PodioOutput") the property
    # "filename" (k4FWCore/components/PodioOutput.h, commit 17620747, line 36).
    "particleflow-2023": {"values": ["--EventDataSvc.input", "--PodioOutput.filename"], "flags": []},
    # workflow/resources/key4hep/clic_reco_tracking.py creates nothing new.
    "clic_reco_tracking.py": {"values": [], "flags": []},
}
# ddsim (AIDASoft/DD4hep, DDG4/python/DDSim/DD4hepSimulation.py, commit 01a9fb13): "--steeringFile/-S" line
# 128, "--compactFile" 141 (nargs +), "--runType" 145, "--inputFiles/-I" 154 (nargs +), "--outputFile/-O" 157,
# "-v/--printLevel" 161, "--numberOfEvents/-N" 168, "--skipNEvents" 171, "--physicsList" 174,
# "--crossingAngleBoost" 177, "--vertexSigma" 181, "--vertexOffset" 185, "--macroFile/-M" 189, "--enableGun/-G"
# 192, "--enableG4GPS" 195, "--enableG4Gun" 199, "--dumpParameter/--dump" 203, "--enableDetailedShowerMode" 206,
# "--dumpSteeringFile" 210; ConfigHelper.addAllHelper (line 214) adds "--<helper>.<member>" for the helpers
# (DDSim/Helper/ConfigHelper.py, commit 01aa3c9f, line 142; members starting with "enable" are flags), among
# them gun (DDSim/Helper/Gun.py, commit 01aa3c9f: particle line 16, momentumMin 35, momentumMax 37,
# distribution choices 42) and random (DDSim/Helper/Random.py, commit 01aa3c9f: seed line 15); the final
# parser.parse_args() (line 220) rejects every other option.
DDSIM_VALUES = (
    "-S/--steeringFile", "--runType", "-O/--outputFile", "-v/--printLevel", "-N/--numberOfEvents",
    "--skipNEvents", "--physicsList", "--crossingAngleBoost", "-M/--macroFile",
    "--gun.particle", "--gun.multiplicity", "--gun.position", "--gun.isotrop", "--gun.direction",
    "--gun.phiMin", "--gun.phiMax", "--gun.thetaMin", "--gun.thetaMax", "--gun.etaMin", "--gun.etaMax",
    "--gun.momentumMin", "--gun.momentumMax", "--gun.energy",
    "--random.seed", "--random.type", "--random.luxury", "--random.replace_gRandom", "--random.file",
)  # fmt: skip
DDSIM_LISTS = ("--compactFile", "-I/--inputFiles")
DDSIM_FLAGS = (
    "-G/--enableGun", "--enableG4GPS", "--enableG4Gun", "--dump/--dumpParameter", "--enableDetailedShowerMode",
    "--dumpSteeringFile", "--random.enableEventSeed",
)  # fmt: skip
GUN_DISTRIBUTIONS = ("uniform", "cos(theta)", "eta", "pseudorapidity", "ffbar")  # Gun.py line 42
# HepMC3-config (HepMC3 HepMC3-config.in, hep-mirrors/hepmc3 commit 15a22905): --cxxflags prints "-I<include>",
# --libs "-L<lib> -lHepMC3", --libdir the library directory.


def settings(**over: object) -> dict:
    return validate_section("key4hep", {"clic_config_dir": "/clicConfig", **over})


# ------------------------------------------------------------------------------------------------- stack


def test_no_stack_is_one_clear_line(tmp_path: Path) -> None:
    missing = tmp_path / "cvmfs" / "setup.sh"
    with pytest.raises(MlpfError) as info:
        key4hep.find_stack(settings(setup_script=str(missing)))
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("no Key4HEP stack")
    assert str(missing) in message
    assert "apptainer_image" in message


def _setup_script(tmp_path: Path) -> Path:
    script = tmp_path / "setup.sh"
    script.write_text("true\n")
    return script


def test_setup_script_and_configuration_found(tmp_path: Path) -> None:
    config = tmp_path / "clicConfig"
    config.mkdir()
    (config / "clic_steer.py").write_text("# steering\n")
    stack = key4hep.find_stack(
        settings(setup_script=str(_setup_script(tmp_path)), clic_config_dir=str(config))
    )
    assert stack.kind == "setup"
    assert stack.describe() == f"source {tmp_path / 'setup.sh'}"


@pytest.mark.parametrize(
    ("production", "config_dir", "message"),
    [
        ("key4hep-2025", "", "key4hep.clic_config_dir is empty; set it to the clicConfig directory of an iLCSoft"),
        ("key4hep-2025", "{tmp}", "key4hep.clic_config_dir {tmp} has no clic_steer.py"),
        ("paper-2023", "{tmp}", "has no clicRec_e4h_input.py; it should be jpata/particleflow scripts/fcc"),
    ],
)  # fmt: skip
def test_configuration_directory_checked_before_any_job(
    tmp_path: Path, production: str, config_dir: str, message: str
) -> None:
    s = settings(setup_script=str(_setup_script(tmp_path)), clic_config_dir=config_dir.format(tmp=tmp_path),
                 production=production)  # fmt: skip
    with pytest.raises(MlpfError, match=message.format(tmp=tmp_path).replace("(", r"\(")) as info:
        key4hep.find_stack(s)
    assert "\n" not in str(info.value)


def test_image_needs_file_and_runtime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(MlpfError, match=r"apptainer_image .*nope\.sif does not exist"):
        key4hep.find_stack(settings(apptainer_image=str(tmp_path / "nope.sif")))
    image = tmp_path / "k4h.sif"
    image.write_bytes(b"\0")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(MlpfError, match="neither apptainer nor singularity is on PATH"):
        key4hep.find_stack(settings(apptainer_image=str(image)))
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "singularity").write_text("#!/bin/sh\n")
    (bindir / "singularity").chmod(0o755)
    monkeypatch.setenv("PATH", str(bindir))
    # The configuration directory is a path inside the image: not checked on the host.
    stack = key4hep.find_stack(settings(apptainer_image=str(image)))
    assert (stack.kind, stack.runtime) == ("apptainer", "singularity")


def test_check_command_exit_2_and_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["key4hep-check", "--setup-script", str(tmp_path / "missing.sh")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert len(err) == 1
    assert err[0].startswith("mlpf key4hep-check: error: no Key4HEP stack")


# -------------------------------------------------------------------------------------------- commands


def _line(cmds: list[str], start: str) -> str:
    return next(c for c in cmds if c.startswith(start))


def test_key4hep_2025_chain() -> None:
    cmds = key4hep.chain_commands("ttbar", 3, settings())
    assert 'cp -r "/clicConfig"/. .' in cmds  # steering and PandoraSettings from the clicConfig directory
    card = _line(cmds, "{ cat")
    assert "pythia/p8_ee_tt_ecm380.cmd" in card
    assert 'echo "Random:seed=4"' in card  # production seed base 1 + shard 3
    assert _line(cmds, "k4run $MLPF").startswith(
        "k4run $MLPF_KEY4HEP_RESOURCES/pythia.py -n 100 --Dumper.Filename out.hepmc"
    )
    ddsim = _line(cmds, "ddsim")
    assert '--compactFile "$K4GEO/CLIC/compact/CLIC_o3_v14/CLIC_o3_v14.xml"' in ddsim
    assert "--steeringFile clic_steer.py --inputFiles out.hepmc" in ddsim
    assert ddsim.endswith("--numberOfEvents 100 --random.seed 4")
    assert cmds[-1] == (
        'k4run "$K4MARLINWRAPPER/examples/clicRec_e4h_input.py" $MLPF_KEY4HEP_RESOURCES/clic_reco_tracking.py '
        "--gaudi-input out_sim.edm4hep.root --gaudi-output reco.edm4hep.root --num-events -1"
    )


def test_paper_2023_chain_uses_lcgeo_and_the_production_options() -> None:
    cmds = key4hep.chain_commands("qq", 0, settings(production="paper-2023", events_per_shard=7))
    assert cmds[-1] == (
        "k4run clicRec_e4h_input.py -n 7 --EventDataSvc.input out_sim.edm4hep.root "
        "--PodioOutput.filename reco.edm4hep.root"
    )
    ddsim = _line(cmds, "ddsim")
    assert '--compactFile "$LCGEO/CLIC/compact/CLIC_o3_v14/CLIC_o3_v14.xml"' in ddsim
    assert "--numberOfEvents 7 --random.seed 100001" in ddsim
    assert not any("K4GEO" in c or "K4MARLINWRAPPER" in c for c in cmds)


def test_pileup_chain_overlays_gg_on_ttbar_and_links_hepmc3() -> None:
    cmds = key4hep.chain_commands("ttbar_pu10", 0, settings(pileup_mean=10.0))
    assert any("pythia/p8_ee_tt_ecm380.cmd" in c and c.endswith("> card.cmd") for c in cmds)
    assert any("pythia/p8_ee_gg_ecm380.cmd" in c and c.endswith("> card_pu.cmd") for c in cmds)
    compile_line = _line(cmds, "g++ ")
    for flags in ("$(HepMC3-config --cxxflags)", "$(HepMC3-config --libs)", "$(pythia8-config --cxxflags)",
                  "$(pythia8-config --libs)"):  # fmt: skip
        assert flags in compile_line
    assert "./pileup_overlay card.cmd card_pu.cmd 1 10.0 100 0.5 out.hepmc" in cmds
    assert not any(c.startswith("k4run $MLPF_KEY4HEP_RESOURCES/pythia.py") for c in cmds)


def test_guns_shoot_both_charges_as_the_production() -> None:
    s = settings(gun_momentum_min=2.0, gun_momentum_max=50.0)
    particles = {
        sample: {key4hep.gun_particle(sample, k) for k in range(4)} for sample in key4hep.GUN_PARTICLES
    }
    assert particles["gun_e"] == {"e-", "e+"}
    assert particles["gun_mu"] == {"mu-", "mu+"}
    assert particles["gun_pi"] == {"pi-", "pi+"}
    assert particles["gun_kl"] == {"kaon0L"}
    ddsim = _line(key4hep.chain_commands("gun_pi", 1, s), "ddsim")
    assert "--enableGun --gun.particle pi+ --gun.distribution uniform" in ddsim
    assert '--gun.momentumMin "2.0*GeV" --gun.momentumMax "50.0*GeV"' in ddsim
    assert "--inputFiles" not in ddsim
    with pytest.raises(ConfigError, match="gun_momentum_min"):
        key4hep.chain_commands("gun_kl", 0, settings(gun_momentum_min=60.0, gun_momentum_max=50.0))


def test_seeds_follow_production_and_never_collide_within_a_sample() -> None:
    s = settings()
    assert [key4hep.job_seed(x, 0, s) for x in ("ttbar", "qq", "zh_tautau", "ww_fullhad")] == [
        1, 100001, 200001, 300001,
    ]  # fmt: skip
    assert key4hep.job_seed("qq", 5, settings(seed_offset=1000)) == 101006
    seeds = {key4hep.job_seed(x, k, s) for x in ALL_SAMPLES if x != "ttbar_pu10" for k in range(200)}
    assert len(seeds) == 12 * 200  # independent events for every sample and shard
    with pytest.raises(ConfigError, match="unknown sample"):
        key4hep.job_seed("ttbar_pu200", 0, s)


def test_memory_requests_are_the_production_ones() -> None:
    assert {key4hep.job_mem_mb(s) for s in ALL_SAMPLES if s.startswith("gun_")} == {35_000}
    assert {key4hep.job_mem_mb(s) for s in ALL_SAMPLES if not s.startswith("gun_")} == {6_000}


def test_unset_configuration_directory_stops_the_job_but_not_the_plan() -> None:
    cmds = key4hep.chain_commands("ttbar", 0, validate_section("key4hep", {}))
    assert any(c.startswith("false || { echo 'key4hep job: key4hep.clic_config_dir is empty") for c in cmds)


@pytest.mark.parametrize("production", PRODUCTIONS)
def test_every_sample_has_a_chain_and_its_files_exist(production: str) -> None:
    for sample in ALL_SAMPLES:
        text = key4hep.job_script(sample, 0, settings(production=production))
        for token in text.split():
            if token.startswith("$MLPF_KEY4HEP_RESOURCES/"):
                assert (RESOURCES / token.removeprefix("$MLPF_KEY4HEP_RESOURCES/").rstrip(";")).is_file(), (
                    token
                )
    compile((RESOURCES / "pythia.py").read_text(), "pythia.py", "exec")  # valid Python (runs only in k4run)


# ------------------------------------------------------------------------------------- tracking settings


def _run_tracking_options(parameters: dict | None) -> dict:
    """Run clic_reco_tracking.py against a stand-in of Gaudi's configurable registry."""
    registry = (
        {} if parameters is None else {"MyConformalTracking": types.SimpleNamespace(Parameters=parameters)}
    )
    gaudi_kernel = types.ModuleType("GaudiKernel")
    configurable = types.ModuleType("GaudiKernel.Configurable")
    configurable.Configurable = types.SimpleNamespace(allConfigurables=registry)
    modules = {"GaudiKernel": gaudi_kernel, "GaudiKernel.Configurable": configurable}
    saved = {name: sys.modules.get(name) for name in modules}
    sys.modules.update(modules)
    try:
        code = compile((RESOURCES / "clic_reco_tracking.py").read_text(), "clic_reco_tracking.py", "exec")
        exec(code, {})  # noqa: S102 - runs the shipped options file as k4run would
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name)
            else:
                sys.modules[name] = module
    return registry["MyConformalTracking"].Parameters


def test_tracking_options_set_the_production_values_only() -> None:
    # The stock example's values (k4MarlinWrapper examples/clicRec_e4h_input.py): false and 100000.
    stock = {
        "RetryTooManyTracks": ["false"],
        "TooManyTracks": ["100000"],
        "MinClustersOnTrackAfterFit": ["3"],
    }
    # The production's (jpata/particleflow scripts/fcc/clicRec_e4h_input.py, commit c5f1bd06).
    assert _run_tracking_options(dict(stock)) == {
        "RetryTooManyTracks": ["true"], "TooManyTracks": ["400000"], "MinClustersOnTrackAfterFit": ["3"],
    }  # fmt: skip


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        (None, "define no MyConformalTracking"),
        ({"TooManyTracks": ["1"]}, "has no parameter RetryTooManyTracks"),
    ],
)
def test_tracking_options_refuse_options_without_the_step(parameters: dict | None, message: str) -> None:
    with pytest.raises(RuntimeError, match=message):
        _run_tracking_options(parameters)


# ------------------------------------------------------------------------------------------------ cards


def _card_settings(card: str) -> dict[str, str]:
    """The settings of a Pythia card (comments and spacing dropped)."""
    out = {}
    for raw in (RESOURCES / "pythia" / card).read_text().splitlines():
        setting = raw.split("!")[0].strip()
        if setting:
            key, value = (part.strip() for part in setting.split("=", 1))
            out[key] = value
    return out


def test_z_tautau_card_is_the_published_one() -> None:
    """HEP-KBFI/key4hep-sim v1.2.2 clic/p8_ee_Z_Ztautau_ecm380.cmd (trahxam/key4hep-sim commit 4e458652):
    its event-defining settings, written out here; only printout settings may differ."""
    published = {
        "Random:setSeed": "on", "Main:numberOfEvents": "100", "Main:timesAllowErrors": "5",
        "Beams:idA": "11", "Beams:idB": "-11", "Beams:eCM": "380", "PartonLevel:ISR": "on",
        "PartonLevel:FSR": "on", "WeakSingleBoson:ffbar2gmZ": "on", "23:onMode": "off", "23:onIfAny": "15",
    }  # fmt: skip
    ours = {
        k: v
        for k, v in _card_settings("p8_ee_Z_Ztautau_ecm380.cmd").items()
        if not k.startswith(("Init:", "Next:"))
    }
    assert ours == published


pythia8mc = pytest.importorskip("pythia8mc")


def _pythia(card: str, seed: int = 7):
    pythia = pythia8mc.Pythia("", False)
    assert pythia.readFile(str(RESOURCES / "pythia" / card)), f"{card}: a setting was not recognised"
    for line in ("Print:quiet = on", "Next:numberCount = 0", "Random:setSeed = on", f"Random:seed = {seed}"):
        pythia.readString(line)
    assert pythia.init()
    assert pythia.settings.parm("Beams:eCM") == 380.0
    return pythia


def _decay_products(pythia, mother_id: int, n_events: int = 30) -> set[int]:
    """|PDG id| of the daughters of every `mother_id` (in any charge) in n events."""
    found: set[int] = set()
    for _ in range(n_events):
        assert pythia.next()
        event = pythia.process
        for i in range(event.size()):
            p = event[i]
            if abs(p.id()) == mother_id and p.daughter1() > 0:
                found |= {abs(event[d].id()) for d in range(p.daughter1(), p.daughter2() + 1)}
    return found


@pytest.mark.parametrize(
    ("card", "mother", "allowed"),
    [
        ("p8_ee_ZH_Htautau_ecm380.cmd", 25, {15}),
        ("p8_ee_Z_Ztautau_ecm380.cmd", 23, {15}),
        ("p8_ee_WW_fullhad_ecm380.cmd", 24, {1, 2, 3, 4, 5, 6}),
        ("p8_ee_qq_ecm380.cmd", 23, {1, 2, 3, 4, 5}),
    ],
)
def test_card_decays(card: str, mother: int, allowed: set[int]) -> None:
    products = _decay_products(_pythia(card), mother)
    assert products, f"{card}: no {mother} decays seen"
    assert products <= allowed, f"{card}: {mother} decayed to {products - allowed}"


def test_ttbar_and_pileup_cards_make_their_processes() -> None:
    tt = _pythia("p8_ee_tt_ecm380.cmd")
    assert tt.next()
    assert {abs(tt.process[i].id()) for i in range(tt.process.size())} >= {6}
    gg = _pythia("p8_ee_gg_ecm380.cmd")
    assert gg.next()
    assert gg.infoPython().code() in {261, 262, 263}  # PhotonCollision:gmgm2qqbar / ccbar / bbbar


# ------------------------------------------------------------------------------------- stand-in stack

# The stand-ins are Python programs that parse their command line with argparse from the facts above (so an
# option the real program lacks is "unrecognized arguments", exit 2), check what the real program needs
# (files it reads, the configuration directory in the job directory), log the call and write what the real
# program writes (the reconstruction writes a real CLIC EDM4HEP file).

_K4RUN = """
import argparse, json, os, shutil, sys
FACTS, LOG, FIXTURE = json.loads({facts!r}), {log!r}, {fixture!r}
with open(LOG, "a") as fh:
    fh.write("k4run " + " ".join(sys.argv[1:]) + "\\n")
def kind(path):
    head = open(path).readline()
    return head.split("stand-in options:")[1].strip() if "stand-in options:" in head else os.path.basename(path)
files = [a for a in sys.argv[1:] if a.endswith(".py") and not a.startswith("-")]
parser = argparse.ArgumentParser(prog="k4run")
parser.add_argument("config_files", nargs="*", type=open)
for flag in FACTS["k4run_flags"]:
    parser.add_argument(*flag.split("/"), action="store_true")
parser.add_argument("-n", "--num-events", type=int)
parser.add_argument("--log-level")
kinds = [kind(f) for f in files]
for k in kinds:
    for option in FACTS["files"][k]["values"]:
        parser.add_argument(option)
    for option in FACTS["files"][k]["flags"]:
        parser.add_argument(option, action="store_true")
args = vars(parser.parse_args())
if "pythia.py" in kinds:
    assert "Random:seed=" in open(args["Pythia8.PythiaInterface.pythiacard"]).read()
    open(args["Dumper.Filename"], "w").write("HepMC::Version 3\\n")
else:
    source = args.get("gaudi_input") or args.get("EventDataSvc.input")
    output = args.get("gaudi_output") or args.get("PodioOutput.filename")
    assert os.path.isfile(source), source
    assert os.path.isdir("PandoraSettings"), "run where PandoraSettings is"
    shutil.copyfile(FIXTURE, output)
"""

_DDSIM = """
import argparse, json, os, sys
FACTS, LOG = json.loads({facts!r}), {log!r}
with open(LOG, "a") as fh:
    fh.write("ddsim " + " ".join(sys.argv[1:]) + "\\n")
parser = argparse.ArgumentParser(prog="ddsim")
for option in FACTS["values"]:
    parser.add_argument(*option.split("/"))
parser.add_argument("--gun.distribution", choices=FACTS["distributions"])
for option in FACTS["lists"]:
    parser.add_argument(*option.split("/"), nargs="+")
for option in FACTS["flags"]:
    parser.add_argument(*option.split("/"), action="store_true")
args = vars(parser.parse_args())
assert os.path.isfile(args["steeringFile"]), "no steering file " + str(args["steeringFile"])
assert all(os.path.isfile(c) for c in args["compactFile"]), args["compactFile"]
assert args["enableGun"] or all(os.path.isfile(f) and f.endswith(".hepmc") for f in args["inputFiles"])
assert args["outputFile"].endswith(".root") and int(args["numberOfEvents"]) > 0 and args["random.seed"]
open(args["outputFile"], "w").write("sim")
"""

_GXX = """
import os, sys
args, log = sys.argv[1:], {log!r}
with open(log, "a") as fh:
    fh.write("g++ " + " ".join(args) + "\\n")
for needed in ("-I{hepmc}/include", "-L{hepmc}/lib", "-lHepMC3", "-I{pythia}/include", "-lpythia8"):
    if needed not in args:
        sys.exit("g++ stand-in: missing " + needed + " (HepMC3/GenEvent.h: No such file or directory)")
program = args[args.index("-o") + 1]
open(program, "w").write("#!/bin/sh\\n[ $# -eq 7 ] || exit 1\\necho overlay > \\"$7\\"\\n")
os.chmod(program, 0o755)
"""

_CONFIG = """
import sys
answers = {answers!r}
unknown = [a for a in sys.argv[1:] if a not in answers]
if unknown:
    sys.exit("unknown option " + unknown[0])
print(" ".join(answers[a] for a in sys.argv[1:]))
"""


def _program(path: Path, body: str) -> None:
    path.write_text(f"#!{sys.executable}\n" + textwrap.dedent(body))
    path.chmod(0o755)


def _stand_in_stack(tmp_path: Path, production: str) -> tuple[Path, Path, Path]:
    """(setup script, call log, configuration directory) of a stand-in stack of the given era."""
    root = tmp_path / "stack"
    bindir, log = root / "bin", root / "calls.log"
    bindir.mkdir(parents=True)
    k4run_facts = {"k4run_flags": list(K4RUN_FLAGS), "files": OPTIONS_FILE_FACTS}
    _program(
        bindir / "k4run", _K4RUN.format(facts=json.dumps(k4run_facts), log=str(log), fixture=str(FIXTURE))
    )
    ddsim_facts = {"values": list(DDSIM_VALUES), "lists": list(DDSIM_LISTS), "flags": list(DDSIM_FLAGS),
                   "distributions": list(GUN_DISTRIBUTIONS)}  # fmt: skip
    _program(bindir / "ddsim", _DDSIM.format(facts=json.dumps(ddsim_facts), log=str(log)))
    hepmc, pythia = root / "hepmc3", root / "pythia8"
    _program(bindir / "g++", _GXX.format(log=str(log), hepmc=hepmc, pythia=pythia))
    hepmc_answers = {
        "--cxxflags": f"-I{hepmc}/include",
        "--libs": f"-L{hepmc}/lib -lHepMC3",
        "--libdir": f"{hepmc}/lib",
    }
    pythia_answers = {
        "--cxxflags": f"-I{pythia}/include",
        "--libs": f"-L{pythia}/lib -Wl,-rpath,{pythia}/lib -lpythia8 -ldl",
    }
    _program(bindir / "HepMC3-config", _CONFIG.format(answers=hepmc_answers))
    _program(bindir / "pythia8-config", _CONFIG.format(answers=pythia_answers))
    geometry = root / "geo"
    (geometry / "CLIC" / "compact" / "CLIC_o3_v14").mkdir(parents=True)
    (geometry / "CLIC" / "compact" / "CLIC_o3_v14" / "CLIC_o3_v14.xml").write_text("<lccdd/>")
    config = root / "config"
    (config / "PandoraSettings").mkdir(parents=True)
    (config / "clic_steer.py").write_text("# steering\n")
    exports = [f"export PATH={bindir}:$PATH"]
    if production == "key4hep-2025":  # 2025 stacks: $K4GEO and k4MarlinWrapper's examples
        example = root / "k4marlinwrapper" / "examples" / "clicRec_e4h_input.py"
        example.parent.mkdir(parents=True)
        example.write_text("# stand-in options: k4marlinwrapper-example\n")
        exports += [f"export K4GEO={geometry}", f"export K4MARLINWRAPPER={example.parent.parent}"]
    else:  # 2023 stacks: $LCGEO only; the production's options come with its scripts/fcc directory
        (config / "clicRec_e4h_input.py").write_text("# stand-in options: particleflow-2023\n")
        exports += [f"export LCGEO={geometry}"]
    setup = root / "setup.sh"
    setup.write_text('echo "setup $*" >> ' + str(log) + "\n" + "\n".join(exports) + "\n")
    return setup, log, config


def _run(tmp_path: Path, setup: Path, config: Path, output: Path, sample: str, shard: int, production: str,
         release: str = "2025-05-29") -> subprocess.CompletedProcess[str]:  # fmt: skip
    s = json.dumps({"setup_script": str(setup), "release": release, "events_per_shard": 5,
                    "production": production, "clic_config_dir": str(config)})  # fmt: skip
    env = {**os.environ, "TMPDIR": str(tmp_path / "scratch")}
    (tmp_path / "scratch").mkdir(exist_ok=True)
    return subprocess.run(
        [sys.executable, "-m", "mlpf", "key4hep-run", "--sample", sample, "--shard", str(shard), "--output",
         str(output), "--resources", str(RESOURCES), "--settings", s],
        capture_output=True, text=True, env=env, cwd=tmp_path, check=False, timeout=120,
    )  # fmt: skip


@pytest.mark.parametrize("production", PRODUCTIONS)
@pytest.mark.parametrize(("sample", "shard"), [("zh_tautau", 2), ("ttbar_pu10", 0), ("gun_pi", 1)])
def test_job_scripts_pass_the_stand_in_tools(
    tmp_path: Path, production: str, sample: str, shard: int
) -> None:
    setup, log, config = _stand_in_stack(tmp_path, production)
    output = tmp_path / "resources" / "edm4hep" / sample / f"{shard}.root"
    result = _run(tmp_path, setup, config, output, sample, shard, production)
    assert result.returncode == 0, result.stderr[-3000:]
    assert output.read_bytes() == FIXTURE.read_bytes()
    calls = log.read_text().splitlines()
    assert calls[0] == "setup -r 2025-05-29"
    reco = calls[-1]
    if production == "key4hep-2025":
        assert reco.endswith(
            "--gaudi-input out_sim.edm4hep.root --gaudi-output reco.edm4hep.root --num-events -1"
        )
        assert f"{RESOURCES}/clic_reco_tracking.py" in reco
    else:
        assert reco == (
            "k4run clicRec_e4h_input.py -n 5 --EventDataSvc.input out_sim.edm4hep.root "
            "--PodioOutput.filename reco.edm4hep.root"
        )
    if sample == "gun_pi":
        assert "--gun.particle pi+" in calls[1]  # odd shard: the positive pion
    if sample == "ttbar_pu10":
        assert any(c.startswith("g++ ") for c in calls)
    assert list((tmp_path / "scratch").iterdir()) == []  # scratch directory cleaned up
    assert [p.name for p in output.parent.iterdir()] == [f"{shard}.root"]


def test_stand_in_rejects_the_options_the_real_tool_lacks(tmp_path: Path) -> None:
    """The stand-in can fail: the CLDReconstruction-style options once used here are not the CLIC example's."""
    _, _, config = _stand_in_stack(tmp_path, "key4hep-2025")
    example = next((tmp_path / "stack").rglob("examples/clicRec_e4h_input.py"))
    env = {**os.environ, "PATH": f"{tmp_path / 'stack' / 'bin'}:{os.environ['PATH']}"}
    result = subprocess.run(
        ["k4run", str(example), "--inputFiles", "sim.root", "--outputBasename", "out_RECO", "--num-events", "5"],
        capture_output=True, text=True, env=env, cwd=config, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert "unrecognized arguments: --inputFiles sim.root --outputBasename out_RECO" in result.stderr


def test_a_2023_stack_with_the_2025_production_stops_at_once(tmp_path: Path) -> None:
    """A dated 2023 stack sets $LCGEO, not $K4GEO: the job says so instead of simulating a missing file."""
    setup, log, config = _stand_in_stack(tmp_path, "paper-2023")
    output = tmp_path / "out" / "0.root"
    result = _run(tmp_path, setup, config, output, "ttbar", 0, "key4hep-2025")
    assert result.returncode != 0
    assert "key4hep job: $K4GEO is not set by this stack" in result.stderr
    assert not any(c.startswith(("k4run", "ddsim")) for c in log.read_text().splitlines())
    assert not output.exists()


def test_runner_failure_leaves_no_output(tmp_path: Path) -> None:
    setup, _, config = _stand_in_stack(tmp_path, "key4hep-2025")
    (config / "clic_steer.py").unlink()  # ddsim cannot read its steering
    output = tmp_path / "out" / "0.root"
    result = _run(tmp_path, setup, config, output, "qq", 0, "key4hep-2025")
    assert result.returncode != 0
    assert not output.exists()
    assert not output.parent.exists() or list(output.parent.iterdir()) == []
    assert list((tmp_path / "scratch").iterdir()) == []


# ---------------------------------------------------------------------------------------------- workflow


def _snakemake(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return run_snakemake(*args, cwd=cwd, timeout=120)


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return workdir_with_default_config(tmp_path)


@pytest.mark.slow
@pytest.mark.workflow
def test_dry_run_shows_full_key4hep_commands(workdir: Path) -> None:
    key4hep_settings = "key4hep={'clic_config_dir': '/opt/CLICPerformance/clicConfig'}"
    result = _snakemake("-n", "-p", "--cores", "1", "--directory", str(workdir), "--config", "source=key4hep",
                        key4hep_settings, cwd=workdir)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert "rule key4hep_generate:" in out
    assert "rule figures:" in out  # the whole chain resolves
    assert (
        'ddsim --compactFile "$K4GEO/CLIC/compact/CLIC_o3_v14/CLIC_o3_v14.xml" --steeringFile clic_steer.py'
        in out
    )
    assert "--numberOfEvents 100 --random.seed 1\n" in out  # ttbar shard 0
    assert "--gaudi-input out_sim.edm4hep.root --gaudi-output reco.edm4hep.root --num-events -1" in out
    assert 'cp -r "/opt/CLICPerformance/clicConfig"/. .' in out
    assert "mlpf key4hep-check --settings" in out
    assert "mem_mb=35000" in out  # a gun job asks for 35 GB


@pytest.mark.slow
@pytest.mark.workflow
def test_workflow_job_without_stack_fails_at_once(workdir: Path) -> None:
    missing = workdir / "no-cvmfs" / "setup.sh"
    result = _snakemake("--cores", "1", "--directory", str(workdir), "resources/edm4hep/key4hep/ttbar/0.root",
                        "--config", "source=key4hep", f"key4hep={{'setup_script': '{missing}'}}",
                        cwd=workdir)  # fmt: skip
    assert result.returncode != 0
    log = (workdir / "logs" / "acquire" / "key4hep" / "ttbar" / "0.log").read_text().strip().splitlines()
    expected = (
        f"mlpf key4hep-check: error: no Key4HEP stack: setup script {missing} not found (is CVMFS mounted?) "
        "and no key4hep.apptainer_image configured"
    )
    assert log == [expected]
    assert not (workdir / "resources" / "edm4hep" / "ttbar" / "0.root").exists()
