"""scripts/convert_sst.py: SST-5 PTB trees to Docs with the root's label as the one true class."""
import pytest
import spacy

TREES = [
    ("(3 (2 (2 The) (2 Rock)) (4 (3 (2 is) (4 (2 destined) (2 fun))) (2 .)))", ["The", "Rock", "is", "destined", "fun", "."], "3"),
    ("(1 (2 -LRB-) (1 (1 dull) (2 -RRB-)))", ["(", "dull", ")"], "1"),
    ("(0 (2 ``) (0 (0 awful) (2 '')))", ['"', "awful", '"'], "0"),
    ("(4 (2 1\\/2) (4 (3 \\*) (4 great)))", ["1/2", "*", "great"], "4"),
    ("(2 (2 -LSB-) (2 (2 so-so) (2 -RSB-)))", ["[", "so-so", "]"], "2"),
    ("(3 (2 (2 8\xa01\\/2) (2 weeks)) (3 good))", ["8\xa01/2", "weeks", "good"], "3"),
]


@pytest.mark.parametrize("tree,words,label", TREES)
def test_a_tree_becomes_its_leaves_and_root_label(convert_sst, tree, words, label):
    assert convert_sst.parse_tree(tree) == (words, label)


def test_docs_hold_one_true_class_of_five(convert_sst, tmp_path):
    path = tmp_path / "trees.txt"
    path.write_text("\n".join(tree for tree, _, _ in TREES) + "\n\n", encoding="utf8")
    docs = convert_sst.trees_to_docs(convert_sst.read_trees(path), spacy.blank("en").vocab)
    assert [[token.text for token in doc] for doc in docs] == [words for _, words, _ in TREES]
    for doc, (_, _, label) in zip(docs, TREES):
        assert doc.cats == {name: float(name == label) for name in ("0", "1", "2", "3", "4")}


@pytest.mark.parametrize("line", ["(3 (2 The) (2 Rock)", "The Rock is great", "(x (2 The))"])
def test_a_line_that_is_not_a_labelled_tree_names_file_and_line(convert_sst, tmp_path, line):
    path = tmp_path / "bad.txt"
    path.write_text(TREES[0][0] + "\n" + line + "\n", encoding="utf8")
    with pytest.raises(ValueError, match=r"bad\.txt, line 2: not a labelled PTB tree"):
        convert_sst.read_trees(path)


def test_every_tree_of_the_sample_splits_is_read_whole(convert_sst, data_dir):
    """On real SST files (the committed samples: the first 100, 30 and 30 trees of each split), one tree a
    line and every leaf kept: SST trees are binary, so a tree of n leaves has 2n - 1 brackets."""
    sizes = {}
    for split in ("train", "dev", "test"):
        path = data_dir / "sst" / f"{split}.txt"
        lines = [line for line in path.read_text(encoding="utf8").splitlines() if line.strip()]
        trees = convert_sst.read_trees(path)
        sizes[split] = len(trees)
        assert [line.count("(") for line in lines] == [2 * len(words) - 1 for words, _ in trees]
        assert {label for _, label in trees} <= set(convert_sst.LABELS)
    assert sizes == {"train": 100, "dev": 30, "test": 30}
