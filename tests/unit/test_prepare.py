"""`run.py prepare`: text -> vocab.txt, Parquet shards and metadata.json, and reading them back."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from seqgan_ray.cli import main
from seqgan_ray.tasks.corpus import (
    EOS,
    PAD,
    SPECIALS,
    UNK,
    ShardWriter,
    Vocab,
    load_metadata,
    read_split,
    shard_paths,
    summary,
    warnings,
)
from seqgan_ray.tasks.token_file import DataError
from tests.helpers import run_prepare, write_file


def sentences(corpus: Path, split: str) -> list[str]:
    vocab = Vocab.load(corpus)
    return [vocab.decode(row) for row in read_split(corpus, split)]


def test_round_trip_lowercases_and_rare_words_become_unk(tmp_path):
    text = write_file(tmp_path / "a.txt", "The cat sat\nthe CAT ran\n  a dog \n")
    run_prepare(tmp_path, text, min_count=2)
    vocab = Vocab.load(tmp_path / "out")
    assert vocab.words == [*SPECIALS, "cat", "the"]  # both seen twice: ties alphabetical
    assert sentences(tmp_path / "out", "train") == ["the cat <unk>", "the cat <unk>", "<unk> <unk>"]
    assert vocab.encode("The CAT zebra") == [5, 4, UNK]
    assert vocab.decode(vocab.encode("the cat")) == "the cat"
    assert len(vocab) == load_metadata(tmp_path / "out")["vocab_size"] == 6


def test_vocabulary_by_descending_count_then_alphabetical(tmp_path):
    text = write_file(tmp_path / "a.txt", "b a c\nc b\nc d\n")
    run_prepare(tmp_path, text)
    assert Vocab.load(tmp_path / "out").words[4:] == ["c", "b", "a", "d"]


def test_no_lowercase_keeps_case(tmp_path):
    text = write_file(tmp_path / "a.txt", "The the\n")
    meta = run_prepare(tmp_path, text, lowercase=False)
    vocab = Vocab.load(tmp_path / "out")
    assert meta["lowercase"] is False and set(vocab.words[4:]) == {"The", "the"}
    assert vocab.encode("THE") == [UNK]


def test_decode_stops_at_eos_skips_pad_and_bos_and_specials_in_text_are_unk(tmp_path):
    text = write_file(tmp_path / "a.txt", "x <eos> y\n")
    run_prepare(tmp_path, text)
    vocab = Vocab.load(tmp_path / "out")
    assert "<eos>" not in vocab.ids and vocab.encode("x <eos> <unk>")[1:] == [UNK, UNK]
    x = vocab.encode("x")[0]
    assert vocab.decode(torch.tensor([1, x, 0, x, EOS, x, PAD])) == "x x"


def test_shards_read_back_by_pyarrow_and_read_split(tmp_path):
    text = write_file(tmp_path / "a.txt", "a b c\nb\n")
    run_prepare(tmp_path, text, max_len=5)
    (path,) = shard_paths(tmp_path / "out", "train")
    table = pq.read_table(path)
    assert table.schema.field("tokens").type == pa.list_(pa.int32())
    assert table.schema.field("length").type == pa.int32()
    vocab = Vocab.load(tmp_path / "out")
    a, b, c = vocab.encode("a b c")
    assert table.column("tokens").to_pylist() == [[a, b, c, EOS], [b, EOS]]
    assert table.column("length").to_pylist() == [4, 2]
    data = read_split(tmp_path / "out", "train")
    assert data.dtype == torch.long and data.tolist() == [[a, b, c, EOS, PAD], [b, EOS, PAD, PAD, PAD]]
    assert read_split(tmp_path / "out", "train", 7).shape == (2, 7)


def test_a_new_shard_every_shard_rows(tmp_path):
    text = write_file(tmp_path / "a.txt", "".join(f"w{i}\n" for i in range(7)))
    meta = run_prepare(tmp_path, text, shard_rows=3)
    paths = shard_paths(tmp_path / "out", "train")
    assert [Path(p).name for p in paths] == ["part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]
    assert [pq.read_metadata(p).num_rows for p in paths] == [3, 3, 1]
    assert meta["splits"]["train"]["shards"] == 3
    assert sentences(tmp_path / "out", "train") == [f"w{i}" for i in range(7)]  # order kept


@pytest.mark.parametrize("long", ["drop", "truncate"])
def test_long_lines_dropped_or_truncated_and_counted(tmp_path, long):
    text = write_file(tmp_path / "a.txt", "a b c\n\na b c d e\n   \nd\n")
    meta = run_prepare(tmp_path, text, max_len=4, long=long)
    s = meta["splits"]["train"]
    assert s["lines"] == 5 and s["dropped"]["empty_line"] == 2 and s["longest_words"] == 5
    if long == "drop":
        assert (s["kept"], s["truncated"], s["dropped"]["too_long"]) == (2, 0, 1)
        assert sentences(tmp_path / "out", "train") == ["a b c", "d"]
    else:
        assert (s["kept"], s["truncated"], s["dropped"]["too_long"]) == (3, 1, 0)
        assert sentences(tmp_path / "out", "train") == ["a b c", "a b c", "d"]


def test_default_T_is_what_the_longest_line_needs(tmp_path):
    poem = ["the moon"] * 3 + [" ".join(f"w{i}" for i in range(24)), "", "a quiet night"]
    text = write_file(tmp_path / "poem.txt", "\n".join(poem) + "\n")
    meta = run_prepare(tmp_path, text)
    s = meta["splits"]["train"]
    assert (meta["max_len"], meta["max_len_from"]) == (25, "longest_line")  # 24 words + <eos>
    assert (s["kept"], s["truncated"], s["dropped"]["too_long"]) == (5, 0, 0)
    assert read_split(tmp_path / "out", "train").shape == (5, 25)  # no position always empty
    assert summary(meta, tmp_path / "out")[1] == "T = 25: the longest training line, 24 words, + <eos>"
    given = run_prepare(tmp_path, text, out="given", max_len=25)  # the same corpus, said explicitly
    assert given["max_len_from"] == "--max-len" and summary(given, tmp_path / "given")[1] == "T = 25, as --max-len says"
    assert torch.equal(read_split(tmp_path / "given", "train"), read_split(tmp_path / "out", "train"))


@pytest.mark.parametrize("long", ["drop", "truncate"])
def test_default_T_test_lines_longer_follow_long(tmp_path, long):
    train = write_file(tmp_path / "train.txt", "a b c\nb c\n")
    test = write_file(tmp_path / "test.txt", "a b\nc d e f g\n")  # 5 words: longer than T - 1 = 3
    meta = run_prepare(tmp_path, train, test=test, long=long, vocab_from_test=True)
    assert meta["max_len"] == 4
    s = meta["splits"]["test"]
    if long == "drop":
        assert (s["kept"], s["dropped"]["too_long"]) == (1, 1)
        assert warnings(meta) == ["warning: test: skipped 1 of 2 lines: 1 longer than 3 words (the longest "
                                  "has 5; pass --max-len 6 or --long truncate)"]
    else:
        assert (s["kept"], s["truncated"]) == (2, 1) and warnings(meta) == []
    # exactly what --max-len 4 gives, the vocabulary too: a dropped line's words are not counted
    run_prepare(tmp_path, train, test=test, long=long, vocab_from_test=True, out="given", max_len=4)
    assert Vocab.load(tmp_path / "out").words == Vocab.load(tmp_path / "given").words
    assert sentences(tmp_path / "out", "test") == sentences(tmp_path / "given", "test")


def test_default_T_covers_lines_carved_by_test_fraction(tmp_path):
    lines = [" ".join(["w"] * (1 + i % 9)) + f" s{i}" for i in range(100)]  # 2..10 words
    text = write_file(tmp_path / "a.txt", "\n".join(lines) + "\n")
    meta = run_prepare(tmp_path, text, test_fraction=0.3)
    assert meta["max_len"] == 11
    assert all(meta["splits"][split]["dropped"]["too_long"] == 0 for split in ("train", "test"))
    assert summary(meta, tmp_path / "out")[1] == "T = 11: the longest --input line, 10 words, + <eos>"


def test_default_T_refuses_a_test_split_all_longer(tmp_path):
    train = write_file(tmp_path / "train.txt", "a b\n")
    test = write_file(tmp_path / "test.txt", "a b c d\n")
    with pytest.raises(DataError, match=r"test: all 1 sentences are longer than the longest training line "
                                         r"\(2 words \+ <eos>: T = 3; the longest has 4\); pass --max-len 5"):
        run_prepare(tmp_path, train, test=test)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["test.txt", "train.txt"]


def test_test_fraction_is_seeded_deterministic_and_disjoint(tmp_path):
    lines = [f"s{i} common" for i in range(200)]
    text = write_file(tmp_path / "a.txt", "\n".join(lines) + "\n")
    meta = run_prepare(tmp_path, text, out="one", test_fraction=0.25, seed=3)
    run_prepare(tmp_path, text, out="two", test_fraction=0.25, seed=3)
    run_prepare(tmp_path, text, out="other", test_fraction=0.25, seed=4)
    assert torch.equal(read_split(tmp_path / "one", "test"), read_split(tmp_path / "two", "test"))
    assert not torch.equal(read_split(tmp_path / "one", "test"), read_split(tmp_path / "other", "test"))
    train, test = sentences(tmp_path / "one", "train"), sentences(tmp_path / "one", "test")
    assert 25 <= len(test) <= 80 and len(train) + len(test) == 200
    assert set(test) == {"<unk> common"}  # test-only words are not in the vocabulary
    vocab = Vocab.load(tmp_path / "one")
    assert set(vocab.words[4:]) == {"common"} | {s.split()[0] for s in train}
    assert meta["test_from"] == "fraction" and meta["seed"] == 3 and meta["test_fraction"] == 0.25
    assert meta["splits"]["test"]["kept"] == len(test) and meta["splits"]["test"]["unk_tokens"] == len(test)


def test_test_file_vocabulary_from_train_only(tmp_path):
    train = write_file(tmp_path / "train.txt", "a b\nb c\n")
    test = write_file(tmp_path / "test.txt", "a z\n")
    meta = run_prepare(tmp_path, train, test=test)
    assert sentences(tmp_path / "out", "test") == ["a <unk>"]
    assert meta["test_from"] == "file" and meta["sources"]["test"] == [str(test.resolve())]
    assert meta["splits"]["test"]["unk_tokens"] == 1 and meta["splits"]["train"]["unk_tokens"] == 0


def test_folders_are_read_as_their_sorted_txt_files(tmp_path):
    write_file(tmp_path / "in" / "b.txt", "second\n")
    write_file(tmp_path / "in" / "a.txt", "first\n")
    write_file(tmp_path / "in" / "notes.md", "ignored\n")
    meta = run_prepare(tmp_path, tmp_path / "in")
    assert sentences(tmp_path / "out", "train") == ["first", "second"]
    assert len(meta["sources"]["train"]) == 2


BAD_INPUTS = {
    "missing": (None, "no such file or folder"),
    "empty": (b"", "empty file"),
    "blank": (b"\n  \n\t\n", "no text (every line is blank)"),
    "latin1": ("fine\nok\ncaf\u00e9\n".encode("latin1"), "bad.txt:3: not UTF-8"),
    "binary": (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary file"),
}


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_bad_input_is_refused_naming_the_file_and_nothing_is_written(tmp_path, case):
    content, message = BAD_INPUTS[case]
    bad = tmp_path / "bad.txt"
    if content is not None:
        write_file(bad, content)
    good = write_file(tmp_path / "good.txt", "a b\n")
    with pytest.raises(DataError, match="bad.txt") as exc:
        run_prepare(tmp_path, good, bad)
    assert message in str(exc.value) and "\n" not in str(exc.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.txt", "good.txt"][content is None:]


@pytest.mark.parametrize("options, message", [
    ({"test_fraction": 0.0}, "--test-fraction 0.0: must be between 0 and 1"),
    ({"test_fraction": 1.5}, "--test-fraction 1.5: must be between 0 and 1"),
    ({"max_len": 1}, "--max-len 1: must be at least 2"),
    ({"max_len": 2}, "raise --max-len or pass --long truncate"),  # every line is too long
])
def test_bad_options_are_refused(tmp_path, options, message):
    text = write_file(tmp_path / "a.txt", "a b\n")
    with pytest.raises(DataError, match=message):
        run_prepare(tmp_path, text, **options)
    assert not (tmp_path / "out").exists()


def test_folder_without_txt_files_and_test_also_an_input_are_refused(tmp_path):
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(DataError, match="empty_dir: folder has no .txt files"):
        run_prepare(tmp_path, tmp_path / "empty_dir")
    text = write_file(tmp_path / "a.txt", "a b\n")
    with pytest.raises(DataError, match="given as --input and as --test"):
        run_prepare(tmp_path, text, test=text)


def test_existing_out_is_refused_without_force_and_untouched_by_a_failed_prepare(tmp_path):
    good = write_file(tmp_path / "good.txt", "a b\n")
    bad = write_file(tmp_path / "bad.txt", b"ok\n\xff\xfe\n")
    write_file(tmp_path / "out" / "keep.txt", "precious\n")
    with pytest.raises(DataError, match="--out .*not empty.*--force"):
        run_prepare(tmp_path, good)
    with pytest.raises(DataError, match="bad.txt:2: not UTF-8"):
        run_prepare(tmp_path, bad, force=True)
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["keep.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.txt", "good.txt", "out"]  # no temp folder left
    run_prepare(tmp_path, good, force=True)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["metadata.json", "test", "train", "vocab.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.txt", "good.txt", "out"]


def test_a_failure_while_writing_leaves_the_old_out_and_no_temporary_folder(tmp_path, monkeypatch):
    good = write_file(tmp_path / "good.txt", "a b\n")
    write_file(tmp_path / "out" / "keep.txt", "precious\n")

    def disk_full(self, ids):
        raise OSError("No space left on device")

    monkeypatch.setattr(ShardWriter, "add", disk_full)
    with pytest.raises(OSError, match="No space"):
        run_prepare(tmp_path, good, force=True)
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["keep.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["good.txt", "out"]


def test_reading_a_folder_that_is_not_a_prepared_corpus(tmp_path):
    (tmp_path / "plain").mkdir()
    with pytest.raises(DataError, match="metadata.json: not found.*python run.py prepare"):
        read_split(tmp_path / "plain", "train")
    text = write_file(tmp_path / "a.txt", "a b c\n")
    run_prepare(tmp_path, text)
    with pytest.raises(DataError, match=r"part-00000.parquet: row 0 has 4 tokens, more than max_len 3"):
        read_split(tmp_path / "out", "train", 3)
    with pytest.raises(DataError, match="split 'test' has no sentences"):
        read_split(tmp_path / "out", "test")


def test_cli_prepare_end_to_end(tmp_path, capsys):
    text = write_file(tmp_path / "a.txt", "Hello world\n\nhello there friend of mine\nhi\n")
    held = write_file(tmp_path / "held.txt", "hello you\n")
    out = tmp_path / "corpus"
    assert main(["prepare", "--input", str(text), "--test", str(held), "--out", str(out),
                 "--max-len", "4"]) == 0
    captured = capsys.readouterr()
    assert "[prepare 1/2: check, count words]" in captured.err  # progress unless --quiet
    assert ("warning: train: skipped 2 of 4 lines: 1 empty, 1 longer than 3 words (the longest "
            "has 5; raise --max-len or pass --long truncate)") in captured.err
    assert "train: 2 sentences in 1 shard(s)" in captured.out and f"written to {out}" in captured.out
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["max_len"] == 4 and meta["splits"]["test"]["kept"] == 1

    assert main(["prepare", "--input", str(text), "--out", str(out), "--quiet"]) == 2
    assert "error: --out" in capsys.readouterr().err
    assert main(["prepare", "--input", str(tmp_path / "nope.txt"), "--out", str(tmp_path / "x"),
                 "--quiet"]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("error: ") and "nope.txt: no such file" in captured.err
    assert "[prepare" not in captured.err


def test_cli_prepare_default_T_says_where_it_came_from(tmp_path, capsys):
    text = write_file(tmp_path / "a.txt", "Hello world\n\nhello there friend of mine\nhi\n")
    assert main(["prepare", "--input", str(text), "--out", str(tmp_path / "corpus"), "--quiet"]) == 0
    captured = capsys.readouterr()
    assert "T = 6: the longest training line, 5 words, + <eos>" in captured.out
    assert "train: 3 sentences in 1 shard(s), 0 truncated, 1 dropped" in captured.out  # the empty line
    assert load_metadata(tmp_path / "corpus")["max_len"] == 6
