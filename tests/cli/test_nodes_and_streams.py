"""What a command may write and read besides plain files (issue 25). Outputs: only regular files and
directories; a device, named pipe or socket is refused with or without --overwrite and the refusal
never suggests --overwrite; a symlink is written through, the link kept. Inputs: a named pipe,
/dev/stdin or a shell's <(...) is read once, like a file; training text, read every epoch, is refused."""
import os
import socket
import stat
import sys
import threading

import h5py
import pytest

from cli_helpers import cli, fails, run, snapshot


@pytest.fixture
def model(fixture_dir):
    return ["--options-file", fixture_dir / "options.json", "--weight-file", fixture_dir / "lm_weights.hdf5"]


def make_node(kind, path):
    """A node of `kind` at `path` (a character device needs root: mknod)."""
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "socket":
        server = socket.socket(socket.AF_UNIX)
        server.bind(str(path))
        return server
    else:
        try:
            os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, 3))  # the numbers of /dev/null
        except PermissionError:
            pytest.skip("creating a character device needs root")
    return None


NAMES = {"fifo": "a named pipe", "socket": "a socket", "chardev": "a character device"}


@pytest.mark.parametrize("overwrite", [False, True])
@pytest.mark.parametrize("kind", ["fifo", "socket", "chardev"])
def test_embed_refuses_a_node_as_output_without_suggesting_overwrite(kind, overwrite, text, model, tmp_path):
    node = tmp_path / "node"
    keep = make_node(kind, node)
    before = snapshot_modes(tmp_path)
    line = fails(cli("embed", text, node, *model, *(["--overwrite"] if overwrite else [])),
                 rf"the output file .*node is {NAMES[kind]}.*not a regular file; .*choose another output file")
    assert "pass --overwrite" not in line
    assert snapshot_modes(tmp_path) == before and not stat.S_ISREG(os.lstat(node).st_mode)
    if keep is not None:
        keep.close()


def snapshot_modes(root):
    """Every name below `root` with its file type (a node cannot be hashed like snapshot() does)."""
    return {p.name: stat.S_IFMT(os.lstat(p).st_mode) for p in root.iterdir()}


def test_dev_null_as_output_is_refused_without_suggesting_overwrite(text, model):
    line = fails(cli("embed", text, "/dev/null", *model), r"/dev/null is a character device, not a regular file")
    assert "--overwrite" not in line.replace("also with --overwrite", "")
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


def test_vocab_and_prepare_refuse_a_node_as_output(text, tmp_path):
    node = tmp_path / "node"
    os.mkfifo(node)
    fails(cli("vocab", text, "-o", node), r"the --output .*node is a named pipe \(FIFO\), not a regular file")
    fails(cli("prepare", text, "-o", node, "--overwrite", "--format", "tokens"),
          r"the --output .*node is a named pipe \(FIFO\), not a regular file")
    assert stat.S_ISFIFO(os.lstat(node).st_mode)


def test_a_symlink_output_is_written_through_and_kept(text, model, tmp_path):
    target = tmp_path / "real.hdf5"
    target.write_bytes(b"old")
    link = tmp_path / "link.hdf5"
    link.symlink_to(target)
    before = snapshot(tmp_path)
    fails(cli("embed", text, link, *model), r"the output file .*link\.hdf5 \(a link to .*real\.hdf5\) already exists; "
                                            r"choose another output file or pass --overwrite")
    assert snapshot(tmp_path) == before
    assert cli("embed", text, link, *model, "--overwrite").exit_code == 0
    assert link.is_symlink() and os.readlink(link) == str(target)
    with h5py.File(target, "r") as f:
        assert sorted(f) == ["0", "1", "sentence_to_index"]


def test_a_symlink_to_a_node_is_refused(text, model, tmp_path):
    node = tmp_path / "pipe"
    os.mkfifo(node)
    link = tmp_path / "out.hdf5"
    link.symlink_to(node)
    fails(cli("embed", text, link, *model, "--overwrite"), r"out\.hdf5 \(a link to .*pipe\) is a named pipe")
    assert link.is_symlink() and stat.S_ISFIFO(os.stat(link).st_mode)


def feed(fifo, data):
    """Write `data` into the named pipe from a thread (opening blocks until the command opens it to read)."""
    thread = threading.Thread(target=lambda: fifo.write_bytes(data), daemon=True)
    thread.start()
    return thread


def test_embed_reads_a_named_pipe_once(model, tmp_path):
    fifo = tmp_path / "in.fifo"
    os.mkfifo(fifo)
    writer = feed(fifo, b"the cat\na dog sat\n")
    result = cli("embed", fifo, tmp_path / "out.hdf5", *model)
    assert result.exit_code == 0, result.output
    writer.join(10)
    with h5py.File(tmp_path / "out.hdf5", "r") as f:
        assert f["0"].shape == (3, 2, 32) and f["1"].shape == (3, 3, 32)


def test_embed_reads_process_substitution_and_dev_stdin(model, tmp_path):
    files = " ".join(f"'{a}'" for a in model)
    script = (f"{sys.executable} -m spacy_elmo embed <(printf 'the cat\\n') {tmp_path / 'a.hdf5'} {files} && "
              f"printf 'a dog sat\\n' | {sys.executable} -m spacy_elmo embed /dev/stdin {tmp_path / 'b.hdf5'} {files}")
    result = run(program=["bash", "-c", script])
    assert result.returncode == 0, result.stderr[-2000:]
    with h5py.File(tmp_path / "a.hdf5", "r") as a, h5py.File(tmp_path / "b.hdf5", "r") as b:
        assert a["0"].shape == (3, 2, 32) and b["0"].shape == (3, 3, 32)


def test_vocab_reads_a_named_pipe(tmp_path):
    fifo = tmp_path / "in.fifo"
    os.mkfifo(fifo)
    feed(fifo, b"b a b\nb\n")
    result = cli("vocab", fifo, "-o", tmp_path / "vocab.txt")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "vocab.txt").read_text().split() == ["<S>", "</S>", "<UNK>", "b", "a"]


def test_pretrain_refuses_a_named_pipe_as_training_text(tmp_path):
    fifo = tmp_path / "train.fifo"
    os.mkfifo(fifo)
    (tmp_path / "vocab.txt").write_text("<S>\n</S>\n<UNK>\na\n")
    fails(cli("pretrain", fifo, "--vocab", tmp_path / "vocab.txt", "-o", tmp_path / "run", "--max-steps", 1),
          r"the training text .*train\.fifo is a named pipe \(FIFO\), which can be read only once, but training "
          r"reads its text again every epoch; save it to a file first")
    assert not (tmp_path / "run").exists()
