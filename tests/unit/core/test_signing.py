"""The signature of a model folder: any change to its files breaks it; the key matters."""

from __future__ import annotations

import pytest

from mlcycle.core.signing import SignatureError, manifest, signature, verify

KEY = "unit-signing-key-0123456789abcdef"


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "model"
    (root / "artifacts").mkdir(parents=True)
    (root / "MLmodel").write_text("flavors: {}\n")
    (root / "artifacts" / "weights.npz").write_bytes(b"\x00weights")
    return root


def test_a_signed_folder_verifies_also_with_mlflows_download_marker(folder):
    signed = signature(folder, KEY)
    (folder / "registered_model_meta").write_text("model_name: credit-risk\n")
    verify(folder, signed, KEY)
    assert b"artifacts/weights.npz\t" in manifest(folder)


@pytest.mark.parametrize(
    "change",
    [
        lambda root: (root / "artifacts" / "weights.npz").write_bytes(b"\x01weights"),
        lambda root: (root / "artifacts" / "extra.py").write_text("import os\n"),
        lambda root: (root / "artifacts" / "weights.npz").unlink(),
        lambda root: (root / "MLmodel").rename(root / "MLmodel2"),
    ],
    ids=["changed", "added", "removed", "renamed"],
)
def test_any_change_to_the_files_is_a_mismatch(folder, change):
    signed = signature(folder, KEY)
    change(folder)
    with pytest.raises(SignatureError) as caught:
        verify(folder, signed, KEY)
    assert caught.value.reason == "mismatch"


def test_another_key_or_no_signature_is_refused(folder):
    with pytest.raises(SignatureError) as other:
        verify(folder, signature(folder, "another-key-0123456789abcdefgh"), KEY)
    assert other.value.reason == "mismatch"
    for missing in (None, "", "md5:abc"):
        with pytest.raises(SignatureError) as unsigned:
            verify(folder, missing, KEY)
        assert unsigned.value.reason == "unsigned"
