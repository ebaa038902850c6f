"""The timm vision encoders: exact architectures, weights from local files only, clear errors."""

from __future__ import annotations

import argparse
import subprocess
import sys

import numpy as np
import pytest
import torch

from mihd.encoders import VISION_ENCODERS
from mihd.encoders.vision import build_model
from mihd.encoders.vision_models import VISION_MODELS
from conftest import run_mihd
from mihd.errors import MihdError
from test_patches import make_slice

# published sizes of the headless models (parameters, millions) and embedding widths
PUBLISHED = {"uni2": (681, 1536), "uni": (303.3, 1024), "hipt": (21.7, 384), "resnet50": (23.5, 2048)}


@pytest.fixture(autouse=True)
def no_weights_anywhere(tmp_path, monkeypatch):
    """No weights unless a test puts them somewhere: an empty MIHD_WEIGHTS and an empty Hugging Face cache."""
    from huggingface_hub import constants

    monkeypatch.setenv("MIHD_WEIGHTS", str(tmp_path / "weights"))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    torch.set_num_threads(2)


def encode(name, adata, **config):
    return VISION_ENCODERS[name].load()(adata, variant=config.pop("variant", "standard"), config=config)


@pytest.mark.parametrize("name", list(VISION_MODELS))  # a new table needs its published figures in PUBLISHED
def test_architecture_matches_the_published_model(name):
    params_m, dim = PUBLISHED[name]
    with torch.device("meta"):  # the architecture alone, no memory, no init
        model = build_model(name)
    assert sum(p.numel() for p in model.parameters()) / 1e6 == pytest.approx(params_m, rel=0.005)
    a = make_slice(n_side=2, slice_id="two")[:2].copy()
    seen = []
    emb, cfg = VISION_ENCODERS[name].load()(a, variant="standard", config={"random_init": True, "batch_size": 1},
                                           progress=lambda d, t: seen.append((d, t)))
    assert emb.shape == (2, dim) and emb.dtype == np.float32 and np.isfinite(emb).all()
    assert cfg["random_init"] is True and cfg["weights"] is None and cfg["model"] == name
    assert cfg["input_px"] == VISION_MODELS[name].size and cfg["image"] == "hires" and cfg["variant"] == "standard"
    assert seen == [(1, 2), (2, 2)]


def test_vit_configs_are_the_published_ones():
    with torch.device("meta"):
        uni2, uni, hipt = build_model("uni2"), build_model("uni"), build_model("hipt")
    assert uni2.num_reg_tokens == 8 and uni2.no_embed_class and uni2.patch_embed.patch_size == (14, 14)
    mlp = uni2.blocks[0].mlp  # SwiGLUPacked = GluMlp with SiLU, gate packed in fc1
    assert type(mlp).__name__ == "GluMlp" and isinstance(mlp.act, torch.nn.SiLU) and not mlp.gate_last
    assert mlp.fc1.out_features == 8192 and len(uni2.blocks) == 24
    assert uni2.blocks[0].ls1.gamma.shape == (1536,) and uni.blocks[0].ls1.gamma.shape == (1024,)  # init_values set
    assert uni.patch_embed.patch_size == (16, 16) and len(uni.blocks) == 24
    assert hipt.patch_embed.img_size == (256, 256) and hipt.embed_dim == 384 and len(hipt.blocks) == 12
    assert VISION_MODELS["hipt"].mean == VISION_MODELS["hipt"].std == (0.5, 0.5, 0.5)


def _dino_checkpoint(model) -> dict:
    """A HIPT-style DINO checkpoint: teacher weights under module.backbone., plus the DINO head."""
    teacher = {f"module.backbone.{k}": v for k, v in model.state_dict().items()}
    teacher["module.head.last_layer.weight"] = torch.zeros(4, 8)
    return {"teacher": teacher, "student": {}, "epoch": 100, "args": argparse.Namespace(arch="vit_small")}


def test_hipt_loads_a_dino_checkpoint_from_config_weights(tmp_path):
    a = make_slice(n_side=2)
    reference, _ = encode("hipt", a, random_init=True, seed=3)
    torch.manual_seed(3)
    path = tmp_path / "vit256_small_dino.pth"
    torch.save(_dino_checkpoint(build_model("hipt")), path)
    emb, cfg = encode("hipt", a, weights=str(path))
    assert cfg["weights"] == str(path) and cfg["weights_source"] == "config" and cfg["random_init"] is False
    np.testing.assert_allclose(emb, reference, rtol=1e-5, atol=1e-5)


def test_resnet50_from_the_mihd_weights_folder(tmp_path):
    from safetensors.torch import save_file

    a = make_slice(n_side=2)
    reference, _ = encode("resnet50", a, random_init=True, seed=1)
    torch.manual_seed(1)
    folder = tmp_path / "weights" / "resnet50"
    folder.mkdir(parents=True)
    state = build_model("resnet50").state_dict()
    state.update({"fc.weight": torch.zeros(1000, 2048), "fc.bias": torch.zeros(1000)})  # as timm's file has
    save_file(state, folder / "model.safetensors")
    emb, cfg = encode("resnet50", a)
    assert cfg["weights"] == str(folder / "model.safetensors") and cfg["weights_source"] == "MIHD_WEIGHTS"
    np.testing.assert_allclose(emb, reference, rtol=1e-5, atol=1e-5)


def test_resnet50_from_the_hugging_face_cache(tmp_path):
    """The cache layout huggingface_hub writes: models--org--name/{refs/main, snapshots/<rev>/file}."""
    repo = tmp_path / "hf" / "models--timm--resnet50.a1_in1k"
    snap = repo / "snapshots" / "abc123"
    snap.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("abc123")
    torch.save(build_model("resnet50").state_dict(), snap / "pytorch_model.bin")
    emb, cfg = encode("resnet50", make_slice(n_side=1))
    assert cfg["weights_source"] == "hf_cache" and cfg["weights"] == str(snap / "pytorch_model.bin")
    assert emb.shape == (1, 2048)


def test_missing_weights_is_one_line_listing_every_place(tmp_path):
    with pytest.raises(MihdError) as err:
        encode("uni2", make_slice(n_side=2))
    msg = str(err.value)
    assert "\n" not in msg and "'uni2'" in msg
    assert "config weights (not set)" in msg
    assert str(tmp_path / "weights" / "uni2") in msg
    assert str(tmp_path / "hf") in msg and "MahmoodLab/UNI2-h" in msg
    assert "--random-init" in msg


def test_missing_weights_without_mihd_weights_set(monkeypatch):
    monkeypatch.delenv("MIHD_WEIGHTS")
    with pytest.raises(MihdError, match=r"\$MIHD_WEIGHTS/hipt/ \(MIHD_WEIGHTS not set\).*no published repo"):
        encode("hipt", make_slice(n_side=2))


def test_bad_weights_paths_and_files(tmp_path):
    a = make_slice(n_side=2)
    with pytest.raises(MihdError, match=f"weights {tmp_path / 'nope.pth'}: not a weights file"):
        encode("hipt", a, weights=str(tmp_path / "nope.pth"))
    wrong = tmp_path / "resnet.pth"
    torch.save(build_model("resnet50").state_dict(), wrong)
    with pytest.raises(MihdError, match="does not fit vit_small_patch16_224") as err:
        encode("hipt", a, weights=str(wrong))
    assert "\n" not in str(err.value)
    notes = tmp_path / "notes.txt"
    notes.write_text("epochs: 100\nlr: 0.1\n")
    with pytest.raises(MihdError) as err:
        encode("hipt", a, weights=str(notes))
    assert str(err.value) == f"weights {notes}: not a torch or safetensors checkpoint (a text file)"
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(wrong.read_bytes()[:4096])  # a torch zip cut short
    with pytest.raises(MihdError, match=f"weights {truncated}: cannot be read") as err:
        encode("hipt", a, weights=str(truncated))
    assert "\n" not in str(err.value)


def test_weights_that_are_not_a_checkpoint_are_one_line_from_the_cli(tmp_path, demo_root):
    notes = tmp_path / "notes.txt"
    notes.write_text("some notes\n")
    proc = run_mihd("extract", "demo", "--vision", "hipt", "--weights", str(notes), root=demo_root)
    assert proc.returncode == 2
    assert proc.stderr == f"mihd: error: --weights {notes}: not a torch or safetensors checkpoint (a text file)\n"


def test_the_model_tables_make_the_light_registry():
    """Each table gives a registry entry (what the dashboard lists) without importing torch or timm."""
    code = ("import sys; from mihd.encoders import VISION_ENCODERS as V; "
            "print(','.join(V), [m for m in ('torch', 'timm', 'numpy') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == ",".join([*VISION_MODELS, "texture"]) + " []"
    assert list(VISION_MODELS)[:4] == ["uni2", "uni", "hipt", "resnet50"]
    for name, model in VISION_MODELS.items():
        spec = VISION_ENCODERS[name]
        assert spec.description == model.description and spec.needs_weights
        assert spec.load().args == (name,)  # vision.encode_model with the table's name bound


def test_a_slice_without_image_fails_before_looking_for_weights():
    a = make_slice(n_side=2)
    a.uns["spatial"]["lib"]["images"] = {}
    with pytest.raises(MihdError, match="slice toy: .*vision encoder needs an image"):
        encode("resnet50", a)


@pytest.mark.parametrize("variant", ["freq", "staig_strict"])
def test_variants_feed_the_model(variant):
    a = make_slice(n_side=2)
    emb, cfg = encode("hipt", a, random_init=True, variant=variant, batch_size=3)
    assert emb.shape == (4, 384) and np.isfinite(emb).all()
    assert cfg["variant"] == variant and cfg["input_px"] == 256
    if variant == "staig_strict":
        assert cfg["patch_px"] == round(3.5 * 96 * 0.5)


def test_device_choice():
    a = make_slice(n_side=1)
    _, cfg = encode("resnet50", a, random_init=True, device="cpu")
    assert cfg["device"] == "cpu" and cfg["num_threads"] == torch.get_num_threads()
    with pytest.raises(MihdError, match="--device 'gpu0': not one of auto, cpu, cuda"):
        encode("resnet50", a, random_init=True, device="gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(MihdError, match="^--device cuda: no CUDA GPU is visible to this process"):
            encode("resnet50", a, random_init=True, device="cuda")


def test_bf16_precision_gives_nearly_the_same_embedding_and_says_so():
    a = make_slice(n_side=3)
    exact, cfg32 = encode("hipt", a, random_init=True, batch_size=4)
    fast, cfg16 = encode("hipt", a, random_init=True, batch_size=4, precision="bf16")
    assert (cfg32["precision"], cfg16["precision"]) == ("fp32", "bf16") and fast.dtype == np.float32
    cos = (exact * fast).sum(1) / np.linalg.norm(exact, axis=1) / np.linalg.norm(fast, axis=1)
    assert cos.min() > 0.99 and not np.array_equal(exact, fast)  # close, not bit-identical: a separate entry
    with pytest.raises(MihdError, match="--precision 'fp8': unknown; known: fp32, bf16"):
        encode("hipt", a, random_init=True, precision="fp8")
