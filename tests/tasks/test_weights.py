"""The user's weights (`weights:`): read from .pt, .safetensors or timm's loader, checked
against the model, the parent evaluated as delivered (not trained) and cached by content."""

from __future__ import annotations

import shutil

import pytest
import torch
from safetensors.torch import save_file

from minsearch.errors import UserError
from minsearch.models import build_model
from minsearch.models.weights import build_with_weights
from minsearch.tasks.candidate import load_or_train_parent, parent_key
from minsearch.tasks.config import RecipeConfig, TaskConfig
from minsearch.tasks.train import evaluate, fit

SPEC = "tests.tasks.factories:tiny_mlp"  # trains in a second: what is tested is the plumbing
TIMM = "timm:resnet18?in_chans=1&num_classes=10&layers=[1,1,1,1]&channels=[16,32,64,64]" \
       "&stem_width=16"


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def trained(tmp_path_factory, digits):
    """A small MLP trained 4 epochs on digits, saved as users save models."""
    torch.manual_seed(0)
    model = build_model(SPEC)
    fit(model, digits, RecipeConfig(), epochs=4)
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    folder = tmp_path_factory.mktemp("weights")
    torch.save(state, folder / "model.pt")
    torch.save({"epoch": 4, "state_dict": state, "optimizer": {}}, folder / "checkpoint.pth")
    torch.save({k.join(("module.", "")): v for k, v in state.items()}, folder / "ddp.pt")
    save_file(state, str(folder / "model.safetensors"))
    return {"state": state, "folder": folder, "model": model.eval()}


def task_with(weights, **changes) -> TaskConfig:
    return TaskConfig.from_flat({"model": SPEC, "weights": weights, **changes})


@pytest.mark.parametrize("name", ["model.pt", "model.safetensors", "checkpoint.pth", "ddp.pt"])
def test_state_dict_files_load_exactly(trained, name):
    model = build_with_weights(SPEC, loader="state_dict", file=str(trained["folder"] / name))
    loaded = model.state_dict()
    assert loaded.keys() == trained["state"].keys()
    assert all(torch.equal(loaded[k], v) for k, v in trained["state"].items())


def test_the_parent_is_the_users_model_as_delivered(trained, digits, tmp_path):
    file = trained["folder"] / "model.safetensors"
    task = task_with(str(file), parent_epochs=50)  # recipe's parent_epochs: not used
    state, info = load_or_train_parent(task, digits, tmp_path)
    assert info["epochs"] == 0 and info["weights"] == str(file)
    assert all(torch.equal(state[k], v) for k, v in trained["state"].items())  # not trained
    delivered = info["as_delivered"]
    assert delivered["test_accuracy"] == evaluate(trained["model"], digits, digits.test)
    assert delivered["test_accuracy"] > 0.5  # trained weights, not a random init (~0.1)
    again, info_again = load_or_train_parent(task, digits, tmp_path)  # from the cache
    assert info_again == info and len(list(tmp_path.glob("parent-*.pt"))) == 1


def test_parent_epochs_of_weights_fine_tune_the_parent(trained, digits, tmp_path):
    task = task_with({"file": str(trained["folder"] / "model.pt"), "parent_epochs": 1})
    state, info = load_or_train_parent(task, digits, tmp_path)
    assert info["epochs"] == 1 and "as_delivered" in info
    assert not torch.equal(state["net.1.weight"], trained["state"]["net.1.weight"])


def test_a_changed_weights_file_is_a_new_parent_key(trained, tmp_path):
    file = tmp_path / "w.pt"
    torch.save(trained["state"], file)
    before = parent_key(task_with(str(file)))
    shutil.copy(file, tmp_path / "copy.pt")
    assert parent_key(task_with(str(tmp_path / "copy.pt"))) == before  # same content
    changed = dict(trained["state"], **{"net.4.bias": trained["state"]["net.4.bias"] + 1})
    torch.save(changed, file)
    assert parent_key(task_with(str(file))) != before


def test_timm_loader_reads_a_local_pretrained_file(tmp_path):
    """timm's own mechanism on a 3-channel, 1000-class checkpoint: it adapts the stem to one
    channel (summing RGB) and drops the classifier of another size."""
    import timm

    torch.manual_seed(1)
    source = timm.create_model("resnet18", layers=[1, 1, 1, 1], channels=[16, 32, 64, 64],
                               stem_width=16)
    file = tmp_path / "pretrained.pth"
    torch.save(source.state_dict(), file)
    model = build_with_weights(TIMM, loader="timm", file=str(file))
    own, theirs = model.state_dict(), source.state_dict()
    assert torch.allclose(own["conv1.weight"], theirs["conv1.weight"].sum(1, keepdim=True))
    assert torch.equal(own["layer3.0.conv2.weight"], theirs["layer3.0.conv2.weight"])
    assert own["fc.weight"].shape == (10, 64)


def test_timm_loader_reads_the_local_hugging_face_cache(tmp_path, monkeypatch):
    """An ``hf_hub_id`` is looked up in the local cache (a hub repo's snapshot layout) and
    loaded from there: never a download."""
    import timm

    snapshot = tmp_path / "models--timm--resnet18.tiny" / "snapshots" / ("a" * 40)
    snapshot.mkdir(parents=True)
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text("a" * 40)
    source = timm.create_model("resnet18", layers=[1, 1, 1, 1], channels=[16, 32, 64, 64],
                               stem_width=16)
    save_file(source.state_dict(), str(snapshot / "model.safetensors"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    model = build_with_weights(TIMM, loader="timm", hf_hub_id="timm/resnet18.tiny")
    assert torch.equal(model.state_dict()["layer2.0.conv1.weight"],
                       source.state_dict()["layer2.0.conv1.weight"])
    with pytest.raises(UserError, match="'timm/absent' has no model.safetensors or "
                                        "pytorch_model.bin in the local Hugging Face cache"):
        build_with_weights(TIMM, loader="timm", hf_hub_id="timm/absent")


def _write(folder, name, content):
    path = folder / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        torch.save(content, path)
    return str(path)


WRONG = {
    "keys of another model": ("other.pt", lambda: build_model(TIMM, device="meta").to_empty(
        device="cpu").state_dict(), ["do not fit the model built from", SPEC,
                                     "6 missing: net.1.weight, net.1.bias, net.2.weight, and 3 "
                                     "more", "unexpected: conv1.weight, bn1.weight"]),
    "shapes of another size": ("wide.pt", lambda: build_model(f"{SPEC}?width=16").state_dict(),
                               ["5 shape mismatch: net.1.weight (file (16, 64), model (32, 64)),"
                                " net.1.bias (file (16,), model (32,))"]),
    "not a checkpoint": ("notes.pt", lambda: b"just some text\n",
                         ["cannot be read as a torch state dict"]),
    "a pickled module": ("module.pt", lambda: build_model(SPEC),
                         ["cannot be read as a torch state dict", "not the module"]),
    "a dict without tensors": ("meta.pt", lambda: {"epoch": 3, "lr": 0.1},
                               ["holds a dict with keys ['epoch', 'lr'], not a state dict"]),
    "not safetensors": ("bad.safetensors", lambda: b"\x00" * 64, ["is not a safetensors file"]),
    "missing": ("absent.pt", lambda: None, ["does not exist"]),
}


@pytest.mark.parametrize("case", WRONG)
def test_a_wrong_weights_file_is_one_clear_line(tmp_path, case):
    name, make, fragments = WRONG[case]
    file = _write(tmp_path, name, make())
    with pytest.raises(UserError) as err:
        build_with_weights(SPEC, loader="state_dict", file=file)
    message = str(err.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message


def test_timm_loader_mismatch_is_one_line(tmp_path):
    """timm loads a checkpoint for another head non-strictly: the rest is checked here."""
    file = _write(tmp_path, "mlp.pth", build_model(SPEC).state_dict())
    with pytest.raises(UserError, match="timm could not load .* missing: bn1.weight") as err:
        build_with_weights(TIMM, loader="timm", file=file)
    assert "\n" not in str(err.value) and TIMM in str(err.value)
    assert "unexpected: net.1.weight" in str(err.value)


@pytest.mark.parametrize("weights, message", [
    ({"loader": "timm"}, "needs either `file` or `hf_hub_id`"),
    ({"file": "x.pt", "loader": "hf"}, "needs neither `file` nor `hf_hub_id`"),
    ({"file": "x.pt", "loader": "onnx"}, "must be one of state_dict, timm, hf"),
    (["x.pt"], "must be a file path or a mapping"),
    ({"file": "x.pt", "epochs": 2}, "Unknown weights key(s) 'epochs'"),
])
def test_weights_config_mistakes(weights, message):
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
        task_with(weights)


def test_weights_config_round_trips_and_fits_the_spec():
    task = task_with("x.pt")
    assert task.weights.file == "x.pt" and task.weights.loader == "state_dict"
    assert TaskConfig.from_flat(task.to_flat()) == task
    with pytest.raises(UserError, match="loader timm needs a timm: model"):
        task_with({"file": "x.pt", "loader": "timm"})
    with pytest.raises(UserError, match="need `init: parent`"):
        task_with("x.pt", init="scratch")


def test_hf_loader_takes_the_weights_of_a_saved_folder(tmp_path):
    """`loader: hf`: the folder an hf: spec names holds the weights (save_pretrained); a bare
    model type builds random ones, which is refused."""
    spec = "hf:llama?hidden_size=32&intermediate_size=64&num_hidden_layers=1" \
           "&num_attention_heads=2&num_key_value_heads=2&vocab_size=64"
    torch.manual_seed(0)
    saved = build_model(spec)
    saved.save_pretrained(tmp_path / "llama")
    model = build_with_weights(f"hf:{tmp_path / 'llama'}", loader="hf")
    assert all(torch.equal(v, saved.state_dict()[k]) for k, v in model.state_dict().items())
    with pytest.raises(UserError, match="holds no weights .* save_pretrained"):
        build_with_weights(spec, loader="hf")
