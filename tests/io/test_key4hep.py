"""Key4HEP generation: stack detection, the job's command lines, the shipped Pythia cards, the runner script
(against a stand-in stack whose ddsim/k4run are small executables), and the workflow's dry run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
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
COMPACT = "$K4GEO/CLIC/compact/CLIC_o3_v14/CLIC_o3_v14.xml"
ALL_SAMPLES = (
    "ttbar", "qq", "zh_tautau", "ww_fullhad", "z_tautau", "ttbar_pu10",
    "gun_e", "gun_mu", "gun_pi", "gun_pi0", "gun_kl", "gun_n", "gun_gamma",
)  # fmt: skip


def settings(**over: object) -> dict:
    return validate_section("key4hep", over)


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


def test_setup_script_found(tmp_path: Path) -> None:
    script = tmp_path / "setup.sh"
    script.write_text("true\n")
    stack = key4hep.find_stack(settings(setup_script=str(script)))
    assert stack.kind == "setup"
    assert stack.describe() == f"source {script}"


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
    stack = key4hep.find_stack(settings(apptainer_image=str(image)))
    assert (stack.kind, stack.runtime) == ("apptainer", "singularity")


def test_check_command_exit_2_and_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["key4hep-check", "--setup-script", str(tmp_path / "missing.sh")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert len(err) == 1
    assert err[0].startswith("mlpf key4hep-check: error: no Key4HEP stack")


# -------------------------------------------------------------------------------------------- commands


def test_physics_sample_chain() -> None:
    cmds = key4hep.chain_commands("ttbar", 3, settings())
    text = "\n".join(cmds)
    assert "pythia/p8_ee_tt_ecm380.cmd" in cmds[0]
    assert 'echo "Random:seed=4"' in cmds[0]  # production seed base 1 + shard 3
    assert cmds[1].startswith("k4run $MLPF_KEY4HEP_RESOURCES/pythia.py -n 100 --Dumper.Filename out.hepmc")
    ddsim = next(c for c in cmds if c.startswith("ddsim"))
    assert f'--compactFile "{COMPACT}"' in ddsim
    assert "--steeringFile $MLPF_KEY4HEP_RESOURCES/clic_steer.py" in ddsim
    assert "--inputFiles out.hepmc" in ddsim
    assert "--numberOfEvents 100 --random.seed 4" in ddsim
    assert "k4run clicRec_e4h_input.py --inputFiles out_sim.edm4hep.root" in text
    assert cmds[-1] == "mv out_RECO_REC.edm4hep.root reco.edm4hep.root"


def test_legacy_reco_style_and_events() -> None:
    cmds = key4hep.chain_commands("qq", 0, settings(reco_style="legacy", events_per_shard=7))
    assert cmds[-1] == (
        "k4run clicRec_e4h_input.py -n 7 --EventDataSvc.input out_sim.edm4hep.root "
        "--PodioOutput.filename reco.edm4hep.root"
    )
    assert "--numberOfEvents 7 --random.seed 100001" in next(c for c in cmds if c.startswith("ddsim"))


def test_pileup_chain_overlays_gg_on_ttbar() -> None:
    cmds = key4hep.chain_commands("ttbar_pu10", 0, settings(pileup_mean=10.0))
    assert any("pythia/p8_ee_tt_ecm380.cmd" in c and c.endswith("> card.cmd") for c in cmds)
    assert any("pythia/p8_ee_gg_ecm380.cmd" in c and c.endswith("> card_pu.cmd") for c in cmds)
    assert any(c.startswith("g++ ") and "pileup_overlay.cc" in c for c in cmds)
    assert "./pileup_overlay card.cmd card_pu.cmd 1 10.0 100 0.5 out.hepmc" in cmds
    assert not any(c.startswith("k4run $MLPF_KEY4HEP_RESOURCES/pythia.py") for c in cmds)


def test_gun_chain_uses_ddsim_gun() -> None:
    cmds = key4hep.chain_commands("gun_kl", 2, settings(gun_momentum_min=2.0, gun_momentum_max=50.0))
    ddsim = cmds[0]
    assert ddsim.startswith(f'ddsim --compactFile "{COMPACT}"')
    assert "--enableGun --gun.particle kaon0L --gun.distribution uniform" in ddsim
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


def test_every_sample_has_a_chain_and_its_files_exist() -> None:
    for sample in ALL_SAMPLES:
        text = key4hep.job_script(sample, 0, settings())
        for token in text.split():
            if token.startswith("$MLPF_KEY4HEP_RESOURCES/"):
                assert (RESOURCES / token.removeprefix("$MLPF_KEY4HEP_RESOURCES/").rstrip(";")).is_file(), (
                    token
                )


def test_steering_sets_crossing_angle_and_filters() -> None:
    text = (RESOURCES / "clic_steer.py").read_text()
    assert "SIM.crossingAngleBoost = 0.010" in text
    assert 'SIM.filter.calo = "edep0"' in text
    assert 'SIM.filter.tracker = "edep1kev"' in text
    assert "SIM.part.keepAllParticles = False" in text
    compile(text, "clic_steer.py", "exec")  # valid Python (runs only inside ddsim)
    compile((RESOURCES / "pythia.py").read_text(), "pythia.py", "exec")


# ------------------------------------------------------------------------------------------------ cards

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
    assert gg.infoPython().code() in {
        261,
        262,
        263,
    }  # PhotonCollision:gmgm2qqbar / ccbar / bbbar process codes


# ------------------------------------------------------------------------------------------------ runner


def _fake_stack(tmp_path: Path, fail_ddsim: bool = False) -> tuple[Path, Path]:
    """A setup script that puts stand-ins for k4run/ddsim on PATH; they log their arguments and write the
    files the real programs would (the reco step writes a real CLIC EDM4HEP file)."""
    bindir, log = tmp_path / "stack" / "bin", tmp_path / "stack" / "calls.log"
    bindir.mkdir(parents=True)
    (bindir / "k4run").write_text(
        f'#!/bin/sh\necho "k4run $*" >> {log}\n'
        'case "$1" in *pythia.py) touch out.hepmc ;; '
        f"clicRec_e4h_input.py) test -f PandoraSettings/marker && cp {FIXTURE} out_RECO_REC.edm4hep.root ;; esac\n"
    )
    (bindir / "ddsim").write_text(
        f'#!/bin/sh\necho "ddsim $*" >> {log}\n'
        + ("exit 1\n" if fail_ddsim else "touch out_sim.edm4hep.root\n")
    )
    for exe in bindir.iterdir():
        exe.chmod(0o755)
    setup = tmp_path / "stack" / "setup.sh"
    setup.write_text(
        f'echo "setup $*" >> {log}\nexport PATH={bindir}:$PATH\nexport K4GEO=/k4geo\n'
        f"export CLICPERFORMANCE={tmp_path / 'stack' / 'CLICPerformance'}\n"
    )
    config = tmp_path / "stack" / "CLICPerformance" / "clicConfig"
    (config / "PandoraSettings").mkdir(parents=True)
    (config / "PandoraSettings" / "marker").write_text("x")
    (config / "clicRec_e4h_input.py").write_text("# options\n")
    return setup, log


def _run(tmp_path: Path, setup: Path, output: Path) -> subprocess.CompletedProcess[str]:
    s = json.dumps({"setup_script": str(setup), "release": "2025-05-29", "events_per_shard": 5})
    env = {**os.environ, "TMPDIR": str(tmp_path / "scratch")}
    (tmp_path / "scratch").mkdir(exist_ok=True)
    return subprocess.run(
        [sys.executable, "-m", "mlpf", "key4hep-run", "--sample", "zh_tautau", "--shard", "2", "--output",
         str(output), "--resources", str(RESOURCES), "--settings", s],
        capture_output=True, text=True, env=env, cwd=tmp_path, check=False, timeout=60,
    )  # fmt: skip


def test_runner_places_reco_output_atomically(tmp_path: Path) -> None:
    setup, log = _fake_stack(tmp_path)
    output = tmp_path / "resources" / "edm4hep" / "zh_tautau" / "2.root"
    result = _run(tmp_path, setup, output)
    assert result.returncode == 0, result.stderr
    assert output.read_bytes() == FIXTURE.read_bytes()
    calls = log.read_text().splitlines()
    assert calls[0] == "setup -r 2025-05-29"
    assert calls[1].startswith(f"k4run {RESOURCES}/pythia.py -n 5 --Dumper.Filename out.hepmc")
    assert calls[2].startswith("ddsim --compactFile /k4geo/CLIC/compact/CLIC_o3_v14/CLIC_o3_v14.xml")
    assert calls[2].endswith("--numberOfEvents 5 --random.seed 200003")
    assert calls[3].startswith("k4run clicRec_e4h_input.py --inputFiles out_sim.edm4hep.root")
    assert list((tmp_path / "scratch").iterdir()) == []  # scratch directory cleaned up
    assert [p.name for p in output.parent.iterdir()] == ["2.root"]


def test_runner_failure_leaves_no_output(tmp_path: Path) -> None:
    setup, _ = _fake_stack(tmp_path, fail_ddsim=True)
    output = tmp_path / "out" / "0.root"
    result = _run(tmp_path, setup, output)
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
    result = _snakemake("-n", "-p", "--cores", "1", "--directory", str(workdir), "--config", "source=key4hep",
                        cwd=workdir)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert "rule key4hep_generate:" in out
    assert "rule plots:" in out  # the whole chain resolves
    assert f'ddsim --compactFile "{COMPACT}" --steeringFile $MLPF_KEY4HEP_RESOURCES/clic_steer.py' in out
    assert "--numberOfEvents 100 --random.seed 1\n" in out  # ttbar shard 0
    assert "k4run clicRec_e4h_input.py --inputFiles out_sim.edm4hep.root" in out
    assert "mlpf key4hep-check --settings" in out


@pytest.mark.slow
@pytest.mark.workflow
def test_workflow_job_without_stack_fails_at_once(workdir: Path) -> None:
    missing = workdir / "no-cvmfs" / "setup.sh"
    result = _snakemake("--cores", "1", "--directory", str(workdir), "resources/edm4hep/ttbar/0.root",
                        "--config", "source=key4hep", f"key4hep={{'setup_script': '{missing}'}}",
                        cwd=workdir)  # fmt: skip
    assert result.returncode != 0
    log = (workdir / "logs" / "acquire" / "ttbar" / "0.log").read_text().strip().splitlines()
    expected = (
        f"mlpf key4hep-check: error: no Key4HEP stack: setup script {missing} not found (is CVMFS mounted?) "
        "and no key4hep.apptainer_image configured"
    )
    assert log == [expected]
    assert not (workdir / "resources" / "edm4hep" / "ttbar" / "0.root").exists()
