"""Data pipeline: transforms, sources, skipped images, resumable batch order, held-out split."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from netadapt.data import (
    DataConfig,
    FolderSource,
    SampleDataset,
    ShardSampler,
    TensorSource,
    TrainBatchSampler,
    UnreadableImage,
    build_datasets,
    build_search_loaders,
    collate,
    load_digits,
    load_heldout,
    make_eval_loader,
    make_train_loader,
    make_transforms,
    read_image,
    save_heldout,
    stratified_sample,
)
from netadapt.data.transforms import (
    ImageTransform,
    center_crop,
    pad_random_crop,
    random_flip,
    random_resized_crop,
    resize,
    resize_shorter,
)
from netadapt.errors import NetAdaptError

torch.set_num_threads(1)


def _write_image(path: Path, color: tuple[int, int, int], size: tuple[int, int] = (20, 12)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """train/{cat,dog} with 6 JPEGs each (one corrupt, one truncated) and val/{cat,dog}."""
    root = tmp_path / "images"
    for split, n in (("train", 6), ("val", 2)):
        for label, color in (("cat", (200, 10, 10)), ("dog", (10, 10, 200))):
            for i in range(n):
                _write_image(root / split / label / f"{i:03d}.jpg", color)
    (root / "train" / "cat" / "002.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg at all")
    good = (root / "train" / "dog" / "001.jpg").read_bytes()
    (root / "train" / "dog" / "004.jpg").write_bytes(good[: len(good) // 2])  # truncated
    (root / "train" / "dog" / "notes.txt").write_text("not an image")
    return root


# -- transforms -------------------------------------------------------------------------------------
@pytest.mark.parametrize("preset,size", [("imagenet", 24), ("cifar", 32), ("none", 16)])
def test_transforms_shape_and_determinism(preset: str, size: int) -> None:
    img = torch.randint(0, 256, (3, 40, 30), dtype=torch.uint8)
    train, val = make_transforms(preset, size)
    a = train(img, torch.Generator().manual_seed(3))
    b = train(img, torch.Generator().manual_seed(3))
    assert a.shape == (3, size, size) and a.dtype == torch.float32
    assert torch.equal(a, b)  # same generator seed, same augmentation
    assert torch.equal(val(img), val(img))
    if preset != "none":
        outs = {train(img, torch.Generator().manual_seed(s)).sum().item() for s in range(8)}
        assert len(outs) > 1  # augmentation actually varies with the seed
    assert not val.random and train.random == (preset != "none")


def test_imagenet_eval_is_resize_and_centre_crop() -> None:
    img = torch.zeros(3, 64, 128, dtype=torch.uint8)
    img[:, :, 60:68] = 255  # a bright vertical bar in the centre
    _, val = make_transforms("imagenet", 28, mean=(0, 0, 0), std=(1, 1, 1))
    out = val(img)
    assert out.shape == (3, 28, 28)
    assert out[:, :, 13:15].mean() > 0.5 and out[:, :, :5].max() < 0.05


def _old_transform(tf: ImageTransform, img: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """The transform as it was before issue 20: float conversion first, then resize / crop / flip."""
    x = img.float() / 255.0
    s = tf.size
    if tf.preset == "imagenet":
        x = random_resized_crop(x, s, generator) if tf.train else center_crop(resize_shorter(x, round(s / 0.875)), s)
    elif tf.preset == "cifar":
        x = resize(x, s, s)
        if tf.train:
            x = pad_random_crop(x, s, max(1, s // 8), generator)
    else:
        x = resize(x, s, s)
    if tf.random and tf.flip:
        x = random_flip(x, generator)
    mean = torch.tensor(tf.mean, dtype=x.dtype)[:, None, None]
    std = torch.tensor(tf.std, dtype=x.dtype)[:, None, None]
    return ((x - mean) / std).contiguous()


@pytest.mark.parametrize(
    "preset,size,shape",
    [("cifar", 32, (32, 32)), ("cifar", 32, (24, 40)), ("imagenet", 24, (40, 30)), ("imagenet", 32, (32, 32)), ("none", 16, (16, 16)), ("none", 16, (20, 12))],
)  # fmt: skip
def test_uint8_pixels_match_the_float_pipeline(preset: str, size: int, shape: tuple[int, int]) -> None:
    """Crop / pad / flip on uint8 then normalize = normalize then crop / pad / flip (padding stays
    black); a resize on uint8 rounds to whole levels, within 1/255 of the float resize."""
    gen = torch.Generator().manual_seed(0)
    mean, std = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
    resized = preset == "imagenet" or shape != (size, size)
    tol = (1.0 / 255 if resized else 0.0) / min(std) + 1e-5
    for train in (True, False):
        tf = ImageTransform(preset, train, size, mean, std)
        for seed in range(6):
            img = torch.randint(0, 256, (3, *shape), dtype=torch.uint8, generator=gen)
            new = tf(img, torch.Generator().manual_seed(seed))
            old = _old_transform(tf, img, torch.Generator().manual_seed(seed))
            assert new.dtype == torch.float32 and new.shape == old.shape == (3, size, size)
            assert (new - old).abs().max() <= tol, (preset, train, seed)
            pixels = tf.pixels(img, torch.Generator().manual_seed(seed))
            assert pixels.dtype == torch.uint8
            assert torch.equal(tf.normalize(pixels[None])[0], new)  # per batch = per image


def test_cifar_padding_is_black_after_normalization() -> None:
    tf = ImageTransform("cifar", True, 8, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25), flip=False)
    img = torch.full((3, 8, 8), 255, dtype=torch.uint8)
    seen_pad = False
    for seed in range(20):
        out = tf(img, torch.Generator().manual_seed(seed))
        assert set(out.unique().tolist()) <= {-2.0, 2.0}  # (0 - 0.5) / 0.25 and (1 - 0.5) / 0.25
        seen_pad |= bool((out == -2.0).any())
    assert seen_pad


# -- sources ----------------------------------------------------------------------------------------
def test_digits_source() -> None:
    train, test = load_digits(16, seed=0)
    assert len(train) + len(test) == 1797 and abs(len(test) - 359) <= 1
    assert train.images.shape[1:] == (3, 16, 16) and train.images.dtype == torch.uint8
    assert train.classes == tuple(str(i) for i in range(10))
    assert torch.equal(train.images[:, 0], train.images[:, 2])  # grayscale repeated to RGB
    again, _ = load_digits(16, seed=0)
    other, _ = load_digits(16, seed=1)
    assert again.fingerprint == train.fingerprint != other.fingerprint


def test_stratified_sample_is_proportional_and_seeded() -> None:
    targets = [0] * 50 + [1] * 30 + [2] * 20
    picked = stratified_sample(targets, 10, seed=4)
    assert len(picked) == len(set(picked)) == 10
    assert Counter(targets[i] for i in picked) == {0: 5, 1: 3, 2: 2}
    assert picked == stratified_sample(targets, 10, seed=4)
    assert picked != stratified_sample(targets, 10, seed=5)
    with pytest.raises(NetAdaptError):
        stratified_sample(targets, 101, seed=0)


def test_folder_source_lists_classes_and_skips_unreadable(folder: Path, caplog: pytest.LogCaptureFixture) -> None:
    src = FolderSource(folder / "train")
    assert src.classes == ("cat", "dog") and len(src) == 12  # the .txt file is not listed
    _, val = make_transforms("none", 8)
    ds = SampleDataset(src, range(len(src)), val)
    batch = collate([ds[i] for i in range(len(ds))])
    assert len(batch.skipped) == 2 and batch.images.shape == (10, 3, 8, 8)
    assert {Path(s).name for s in batch.skipped} == {"002.jpg", "004.jpg"}
    assert batch.kept.tolist() == [i for i in range(12) if i not in (2, 10)]
    # A whole epoch through a loader never raises, and evaluation counts the skipped files.
    from netadapt.train import evaluate

    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 2))
    cfg = DataConfig(dataset="folder", root=str(folder), batch_size=4)
    result = evaluate(model, make_eval_loader(ds, cfg, batch_size=5))
    assert result["images"] == 10 and result["skipped"] == 2


def _encode(tmp: Path, name: str, image: Image.Image, **kwargs) -> Path:
    path = tmp / name
    image.save(path, **kwargs)
    return path


def test_read_image_decoders_agree_and_make_rgb(tmp_path: Path) -> None:
    pytest.importorskip("torchvision")
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)
    files = [
        _encode(tmp_path, "rgb.jpg", Image.fromarray(rgb), quality=90),
        _encode(tmp_path, "grey.jpg", Image.fromarray(rgb[..., 0])),
        _encode(tmp_path, "cmyk.jpg", Image.fromarray(rgb).convert("CMYK")),
        _encode(tmp_path, "rgba.png", Image.fromarray(np.dstack([rgb, rgb[..., :1]]))),
        _encode(tmp_path, "palette.png", Image.fromarray(rgb).convert("P")),
        _encode(tmp_path, "grey16.png", Image.fromarray(rgb[..., 0].astype(np.uint16) * 257)),  # torchvision: uint16
        _encode(tmp_path, "rgb.webp", Image.fromarray(rgb), lossless=True),
        _encode(tmp_path, "rgb.bmp", Image.fromarray(rgb)),  # Pillow only
    ]
    for path in files:
        fast, slow = read_image(path), read_image(path, decoder="pillow")
        assert fast.dtype == slow.dtype == torch.uint8 and fast.shape == slow.shape == (3, 20, 24), path.name
        # Both decoders use libjpeg-turbo here; another libjpeg build may differ by a level or so.
        assert (fast.int() - slow.int()).abs().max() <= 1, path.name
    assert torch.equal(read_image(files[0]).permute(1, 2, 0), torch.from_numpy(np.array(Image.open(files[0]))))
    for bad in (b"", b"\xff\xd8\xff\xe0 not a jpeg", files[0].read_bytes()[:200]):
        (tmp_path / "bad.jpg").write_bytes(bad)
        for decoder in ("auto", "pillow"):
            with pytest.raises(UnreadableImage, match=r"bad\.jpg"):
                read_image(tmp_path / "bad.jpg", decoder=decoder)
    with pytest.raises(ValueError, match="decoder"):
        FolderSource(tmp_path, decoder="libjpeg")


def test_missing_or_empty_folder_is_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(NetAdaptError, match="does not exist"):
        FolderSource(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(NetAdaptError, match="empty"):
        FolderSource(tmp_path / "empty")
    (tmp_path / "noimg" / "cat").mkdir(parents=True)
    with pytest.raises(NetAdaptError, match="no image files"):
        FolderSource(tmp_path / "noimg")
    with pytest.raises(NetAdaptError, match="does not exist"):
        build_datasets(DataConfig(dataset="folder", root=str(tmp_path / "nope")))
    with pytest.raises(NetAdaptError, match=r"data\.root is required"):
        build_datasets(DataConfig(dataset="folder"))


def test_an_empty_class_folder_is_an_error_in_training_and_a_warning_in_validation(folder: Path, caplog) -> None:
    """Every training sub-folder is an output of the network: one without images is a mistake."""
    (folder / "train" / "ship").mkdir()
    with pytest.raises(NetAdaptError, match=r"class folder\(s\) ship hold no images") as info:
        FolderSource(folder / "train")
    assert "\n" not in str(info.value)
    (folder / "train" / "ship").rmdir()
    for image in (folder / "val" / "dog").iterdir():
        image.unlink()
    with caplog.at_level("WARNING"):
        source = FolderSource(folder / "val", classes=("cat", "dog"))
    assert source.classes == ("cat", "dog") and "no images of class(es) dog" in caplog.text


def test_validation_folder_uses_training_labels(folder: Path) -> None:
    (folder / "val" / "cat").rename(folder / "val" / "zebra")
    with pytest.raises(NetAdaptError, match="zebra"):
        build_datasets(DataConfig(dataset="folder", root=str(folder), heldout=2))


# -- batches ------------------------------------------------------------------------------------------
def _chunks(sampler: TrainBatchSampler, epoch: int, start: int = 0) -> list[list[tuple[int, int]]]:
    sampler.set_epoch(epoch, start)
    return list(sampler)


def test_world_and_accumulation_see_the_same_global_batches() -> None:
    one = _chunks(TrainBatchSampler(50, 8, seed=1, accumulate=2), epoch=0)
    r0 = _chunks(TrainBatchSampler(50, 8, seed=1, rank=0, world=2), epoch=0)
    r1 = _chunks(TrainBatchSampler(50, 8, seed=1, rank=1, world=2), epoch=0)
    assert len(one) == 12 and len(r0) == len(r1) == 6  # 6 steps of 8 images, last 2 images dropped
    assert one[0::2] == r0 and one[1::2] == r1  # micro-batch m of one process = rank m of two
    positions = [p for chunk in one for p, _ in chunk]
    assert len(set(positions)) == 48  # no image twice within an epoch
    assert _chunks(TrainBatchSampler(50, 8, seed=1, accumulate=2), epoch=1) != one  # reshuffled per epoch


def test_resumed_epoch_skips_done_steps() -> None:
    sampler = TrainBatchSampler(40, 8, seed=3)
    full = _chunks(sampler, epoch=2)
    assert _chunks(sampler, epoch=2, start=3) == full[3:]
    assert len(sampler) == 2


def test_shard_sampler_covers_every_image_once() -> None:
    shards = [list(ShardSampler(11, r, 3)) for r in range(3)]
    assert sorted(i for shard in shards for i in shard) == list(range(11))


# -- held-out split -------------------------------------------------------------------------------
def test_heldout_is_reserved_saved_and_checked(tmp_path: Path) -> None:
    cfg = DataConfig(heldout=100, seed=2)
    sets = build_datasets(cfg)
    assert len(sets.heldout) == 100 and len(sets.train) + 100 == len(sets.train_source)
    assert not set(sets.train.indices) & set(sets.heldout.indices)  # never trained on
    counts = Counter(sets.train_source.targets[i] for i in sets.heldout.indices)
    assert set(counts) == set(range(10)) and max(counts.values()) - min(counts.values()) <= 2
    save_heldout(tmp_path, sets.split)
    split = load_heldout(tmp_path)
    assert split == sets.split
    again = build_datasets(cfg, split)
    assert again.heldout.indices == sets.heldout.indices
    with pytest.raises(NetAdaptError, match="changed"):
        build_datasets(DataConfig(heldout=100, seed=2, digits_test_fraction=0.3), split)
    heldout, calibration = build_search_loaders(tmp_path, batch_size=50, calibration_images=64, seed=1)
    assert sum(len(b.labels) for b in heldout) == 100
    calib = torch.cat([b.images for b in calibration])
    assert calib.shape == (64, 3, 16, 16)
    assert torch.equal(calib, torch.cat([b.images for b in build_search_loaders(tmp_path, calibration_images=64, seed=1)[1]]))
    (tmp_path / "heldout.json").write_text('{"format": "something else"}')
    with pytest.raises(NetAdaptError, match="not a netadapt held-out"):
        load_heldout(tmp_path)


def test_tensor_source_rejects_wrong_layout() -> None:
    with pytest.raises(ValueError):
        TensorSource("x", torch.zeros(2, 1, 8, 8, dtype=torch.uint8), [0, 1], ["a"])


def test_import_does_not_load_torchvision() -> None:
    code = "import sys, netadapt.data, netadapt.train; print('torchvision' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# -- the real CIFAR-10 JPEG folders (../shared/data) ----------------------------------------------
@pytest.mark.shared_data
def test_cifar10_jpeg_folder(tmp_path: Path) -> None:
    shared = os.environ.get("NETADAPT_SHARED_DATA")
    tarball = Path(shared) / "cifar10-jpg.tar.gz" if shared else None
    if tarball is None or not tarball.is_file():
        pytest.skip("NETADAPT_SHARED_DATA does not point at a folder holding cifar10-jpg.tar.gz")
    wanted = {
        f"cifar10-jpg/{split}/{c}/{i:04d}.jpg" for split in ("train", "test") for c in ("airplane", "cat") for i in range(5)
    }
    with tarfile.open(tarball) as tar:
        for member in tar:  # stream: stop once the handful of files is out
            if member.name in wanted:
                data = tar.extractfile(member).read()
                target = tmp_path / member.name
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
                wanted.discard(member.name)
                if not wanted:
                    break
    assert not wanted
    cfg = DataConfig(dataset="folder", root=str(tmp_path / "cifar10-jpg"), preset="cifar", heldout=2)
    sets = build_datasets(cfg)
    assert sets.classes == ("airplane", "cat") and len(sets.val) == 10
    img, label = sets.val[0]
    assert img.shape == (3, 32, 32) and label == 0
    with Image.open(tmp_path / "cifar10-jpg/train/cat/0000.jpg") as im:
        assert im.size == (32, 32)


def test_batches_do_not_depend_on_the_number_of_workers() -> None:
    cfg = DataConfig(heldout=100, subset=64, batch_size=16)
    sets = build_datasets(cfg)

    def images(workers: int) -> torch.Tensor:
        sampler = TrainBatchSampler(len(sets.train), 16, seed=5)
        sampler.set_epoch(1)
        config = DataConfig(heldout=100, subset=64, batch_size=16, workers=workers, persistent_workers=False)
        return torch.cat([b.images for b in make_train_loader(sets.train, sampler, config)])

    assert torch.equal(images(0), images(2))
