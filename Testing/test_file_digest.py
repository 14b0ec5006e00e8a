"""DCEDiffLib/file_digest.py: the digest of a file read in blocks equals the digest of its bytes at once."""

import hashlib

import pytest

from DCEDiffLib.file_digest import file_digest


@pytest.mark.parametrize("algorithm", ["sha256", "sha1"])
@pytest.mark.parametrize("size", [0, 1, 4096, 10_000])  # empty, one byte, exactly one block, two and a half blocks
def test_the_blockwise_digest_is_the_digest_of_the_whole_file(tmp_path, algorithm, size):
    data = bytes((index * 7 + 3) % 251 for index in range(size))
    path = tmp_path / "weights.bin"
    path.write_bytes(data)
    assert file_digest(path, algorithm, block_bytes=4096) == hashlib.new(algorithm, data).hexdigest()
    assert file_digest(str(path), algorithm) == hashlib.new(algorithm, data).hexdigest()  # a str path, default block


def test_a_missing_file_is_an_error_not_a_digest(tmp_path):
    with pytest.raises(FileNotFoundError):
        file_digest(tmp_path / "absent.safetensors")
