"""The DDP path on CPU (issue 14): 2 processes with gloo train a few steps of the tiny preset; the ranks end with
identical weights (gradients are averaged), which differ from the initial weights, and from a single-process run
of the same steps (each rank sees its own items: the runs train on different data per step)."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
WORKER = r'''
import sys
sys.path.insert(0, sys.argv[2])
import pytest
import torch
from test_training import make_trainer, tiny_config
from pathlib import Path

torch.set_num_threads(1)
settings = dict(iterations=3, checkpoint_every=3, validate_every=3, batch_size=1)
if sys.argv[3] == "head":  # labelled cases and an auxiliary segmentation head beside the network
    from test_auxiliary_segmentation import _trainer
    trainer = _trainer(Path(sys.argv[1]), tiny_config(objective="regression", aux_segmentation_weight=0.5, **settings),
                       "run")
else:
    trainer = make_trainer(Path(sys.argv[1]), tiny_config(**settings))
initial = {k: v.clone() for k, v in trainer.network.state_dict().items()}
trainer.run()
rank = trainer.ctx.rank
head = trainer.segmentation_head.state_dict() if trainer.segmentation_head is not None else {}
torch.save({"initial": initial, "final": trainer.network.state_dict(), "world": trainer.ctx.world_size, "head": head},
           Path(sys.argv[1]) / f"weights_{trainer.ctx.world_size}_{rank}.pt")
trainer.close()
'''


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(tmp_path: Path, world: int, variant: str = "plain") -> None:
    port = str(free_port())
    procs = []
    for rank in range(world):
        env = dict(os.environ, RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                   MASTER_PORT=port, OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="")
        procs.append(subprocess.Popen([sys.executable, "-c", WORKER, str(tmp_path / f"w{world}"),
                                       str(ROOT / "Testing"), variant], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True))
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-3000:]


@pytest.mark.slow
def test_two_gloo_processes_keep_identical_weights_and_train(tmp_path):
    launch(tmp_path, 2)
    launch(tmp_path, 1)
    rank0 = torch.load(tmp_path / "w2" / "weights_2_0.pt")
    rank1 = torch.load(tmp_path / "w2" / "weights_2_1.pt")
    single = torch.load(tmp_path / "w1" / "weights_1_0.pt")
    assert rank0["world"] == 2 and single["world"] == 1
    for key, value in rank0["final"].items():
        assert torch.equal(value, rank1["final"][key]), key                  # gradients were averaged
        assert torch.equal(rank0["initial"][key], single["initial"][key]), key  # same start everywhere
    changed = [k for k, v in rank0["final"].items() if not torch.equal(v, rank0["initial"][k])]
    assert changed, "the DDP run did not train"
    assert any(not torch.equal(v, single["final"][k]) for k, v in rank0["final"].items())


@pytest.mark.slow
def test_an_auxiliary_head_takes_the_same_step_on_every_rank(tmp_path):
    """The head is not part of the DDP module: its gradients are averaged by hand (DistContext.average_gradients),
    or each rank's head would follow its own data and the ranks would part."""
    launch(tmp_path, 2, "head")
    rank0 = torch.load(tmp_path / "w2" / "weights_2_0.pt")
    rank1 = torch.load(tmp_path / "w2" / "weights_2_1.pt")
    assert rank0["head"], "the run had no head"
    for key, value in rank0["head"].items():
        assert torch.equal(value, rank1["head"][key]), key
    for key, value in rank0["final"].items():
        assert torch.equal(value, rank1["final"][key]), key
    assert any(not torch.equal(v, rank0["initial"][k]) for k, v in rank0["final"].items())
