"""The SQLite ledger on its own: storage semantics, batches, persistence, threads, damaged and full files.

(``test_build.py`` covers a damaged ledger through the CLI and a full one through ``put``; here the damage is
met by the Ledger itself, and a full database is checked to keep what it already held.)
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from mmaip_core.errors import StorageError
from mmaip_core.store.ledger import DONE, FAILED, Entry, Ledger


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    return Ledger(tmp_path / "run" / "ledger.sqlite")


def test_put_then_get_many_round_trips_every_field(ledger: Ledger) -> None:
    record = {"text": "a red ball", "usage": {"prompt_tokens": 12}, "nested": [1, 2.5, None, "x"]}
    ledger.put("k1", "generation", DONE, record, cost=0.25)
    ledger.put("k2", "judgement", FAILED, {"error": "boom"})
    got = ledger.get_many(["k1", "k2", "missing"])
    assert got == {
        "k1": Entry("k1", "generation", DONE, record, 0.25),
        "k2": Entry("k2", "judgement", FAILED, {"error": "boom"}, 0.0),
    }
    assert "missing" not in got
    assert ledger.get_many([]) == {}


def test_the_folder_is_created(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "ledger.sqlite"
    with Ledger(path) as ledger:
        ledger.put("k", "generation", DONE, {})
    assert path.is_file()


def test_records_that_are_not_json_are_stored_as_strings(ledger: Ledger) -> None:
    ledger.put("k", "generation", DONE, {"where": Path("/x/y")})
    assert ledger.get_many(["k"])["k"].record == {"where": "/x/y"}


def test_put_replaces_a_failed_entry_with_a_done_one(ledger: Ledger) -> None:
    ledger.put("k", "generation", FAILED, {"error": "timeout"}, cost=0.0)
    assert not ledger.get_many(["k"])["k"].done
    ledger.put("k", "generation", DONE, {"text": "ok"}, cost=0.1)
    entry = ledger.get_many(["k"])["k"]
    assert entry.done and entry.status == DONE
    assert entry.record == {"text": "ok"} and entry.cost == 0.1
    assert ledger.total_cost() == pytest.approx(0.1)  # replaced, not added beside it


def test_entry_done_is_true_only_for_done() -> None:
    assert Entry("k", "generation", DONE, {}, 0.0).done
    assert not Entry("k", "generation", FAILED, {}, 0.0).done
    assert not Entry("k", "generation", "something else", {}, 0.0).done


def test_total_cost_overall_and_per_kind(ledger: Ledger) -> None:
    assert ledger.total_cost() == 0.0
    assert ledger.total_cost("generation") == 0.0
    ledger.put("g1", "generation", DONE, {}, cost=0.5)
    ledger.put("g2", "generation", FAILED, {}, cost=0.25)
    ledger.put("j1", "judgement", DONE, {}, cost=2.0)
    ledger.put("e1", "evaluation", DONE, {}, cost=4.0)
    assert ledger.total_cost() == pytest.approx(6.75)
    assert ledger.total_cost("generation") == pytest.approx(0.75)
    assert ledger.total_cost("judgement") == pytest.approx(2.0)
    assert ledger.total_cost("evaluation") == pytest.approx(4.0)
    assert isinstance(ledger.total_cost(), float)


def test_get_many_reads_more_keys_than_one_query_takes(ledger: Ledger) -> None:
    stored = [f"key-{i:05d}" for i in range(1234)]
    for i, key in enumerate(stored):
        ledger.put(key, "generation", DONE if i % 2 else FAILED, {"i": i}, cost=i)
    asked = stored + [f"absent-{i}" for i in range(300)]
    got = ledger.get_many(asked)
    assert set(got) == set(stored)
    assert all(got[key].record == {"i": i} and got[key].cost == i for i, key in enumerate(stored))
    # the chunk borders (500, 1000) lose nothing: the keys either side of each are there
    assert {"key-00499", "key-00500", "key-00999", "key-01000", "key-01233"} <= set(got)


def test_get_many_takes_duplicate_keys_and_any_iterable(ledger: Ledger) -> None:
    ledger.put("a", "generation", DONE, {"v": 1})
    ledger.put("b", "generation", DONE, {"v": 2})
    assert set(ledger.get_many(["a", "a", "b", "a", "zz", "zz"])) == {"a", "b"}
    # 600 copies of one key would be a second chunk without the deduplication; a generator is read once
    got = ledger.get_many(k for k in ["a"] * 600 + ["b"])
    assert {k: e.record for k, e in got.items()} == {"a": {"v": 1}, "b": {"v": 2}}


def test_batches_are_kept_per_owner_until_closed(ledger: Ledger) -> None:
    ledger.put_batch("batch_1", "judge-A", ["k1", "k2"])
    ledger.put_batch("batch_2", "judge-B", ["k3"])
    ledger.put_batch("batch_3", "judge-A", ["k4"])
    assert ledger.open_batches("judge-A") == {"batch_1": ["k1", "k2"], "batch_3": ["k4"]}
    assert list(ledger.open_batches("judge-A")) == ["batch_1", "batch_3"]  # in submission order
    assert ledger.open_batches("judge-B") == {"batch_2": ["k3"]}
    assert ledger.open_batches("nobody") == {}
    ledger.close_batch("batch_1")
    assert ledger.open_batches("judge-A") == {"batch_3": ["k4"]}
    assert ledger.open_batches("judge-B") == {"batch_2": ["k3"]}
    ledger.close_batch("no-such-batch")  # nothing to close: no error
    ledger.close_batch("batch_3")
    assert ledger.open_batches("judge-A") == {}


def test_put_batch_again_reopens_it_with_the_new_keys(ledger: Ledger) -> None:
    ledger.put_batch("batch_1", "judge-A", ["k1"])
    ledger.close_batch("batch_1")
    ledger.put_batch("batch_1", "judge-A", ["k1", "k2"])
    assert ledger.open_batches("judge-A") == {"batch_1": ["k1", "k2"]}


def test_everything_survives_close_and_reopen(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    with Ledger(path) as ledger:
        ledger.put("k1", "generation", DONE, {"text": "kept"}, cost=1.5)
        ledger.put("k2", "judgement", FAILED, {"error": "x"})
        ledger.put_batch("batch_1", "judge-A", ["k2"])
        ledger.put_batch("batch_2", "judge-A", ["k3"])
        ledger.close_batch("batch_2")
    with Ledger(path) as again:
        got = again.get_many(["k1", "k2"])
        assert got["k1"] == Entry("k1", "generation", DONE, {"text": "kept"}, 1.5)
        assert got["k2"].status == FAILED
        assert again.total_cost() == pytest.approx(1.5)
        assert again.open_batches("judge-A") == {"batch_1": ["k2"]}


def test_a_put_is_committed_at_once_for_another_connection(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    with Ledger(path) as writer:
        writer.put("k", "generation", DONE, {"text": "now"})
        # not closed: a second reader (as a restarted process would be) already sees it
        with Ledger(path) as reader:
            assert reader.get_many(["k"])["k"].record == {"text": "now"}
        other = sqlite3.connect(path)
        assert other.execute("SELECT status FROM entries WHERE key = 'k'").fetchone() == ("done",)
        other.close()


def test_threads_share_one_ledger(ledger: Ledger) -> None:
    threads_n, per_thread = 8, 60
    errors: list[BaseException] = []
    start = threading.Barrier(threads_n)

    def work(t: int) -> None:
        try:
            start.wait()
            for i in range(per_thread):
                ledger.put(f"t{t}-{i}", "generation", DONE, {"t": t, "i": i}, cost=0.01)
                if i % 10 == 0:
                    ledger.get_many([f"t{t}-{j}" for j in range(i + 1)])
                    ledger.total_cost()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(threads_n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors
    keys = [f"t{t}-{i}" for t in range(threads_n) for i in range(per_thread)]
    got = ledger.get_many(keys)
    assert len(got) == threads_n * per_thread
    assert all(got[f"t{t}-{i}"].record == {"t": t, "i": i} for t in range(threads_n) for i in range(per_thread))
    assert ledger.total_cost() == pytest.approx(0.01 * threads_n * per_thread)


def _filled(path: Path) -> Path:
    with Ledger(path) as ledger:
        for i in range(300):
            ledger.put(f"k{i}", "generation", DONE, {"text": "x" * 200, "i": i})
    return path


def _use(path: Path) -> None:
    with Ledger(path) as ledger:
        ledger.get_many(f"k{i}" for i in range(300))
        ledger.total_cost()
        ledger.put("new", "generation", DONE, {})


def test_a_file_that_is_no_database_is_a_storage_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    path.write_bytes(b"this is not a database at all " * 200)
    with pytest.raises(StorageError) as caught:
        _use(path)
    assert caught.value.path == str(path)
    assert str(caught.value).startswith(f"{path}: the ledger is damaged")
    assert "move it away" in str(caught.value)
    assert isinstance(caught.value.__cause__, sqlite3.DatabaseError)


def test_a_truncated_ledger_is_a_storage_error_naming_it(tmp_path: Path) -> None:
    good = _filled(tmp_path / "good.sqlite")
    data = good.read_bytes()
    assert len(data) > 3 * 4096  # several pages: cutting it loses some
    path = tmp_path / "cut.sqlite"
    path.write_bytes(data[: len(data) // 3])
    with pytest.raises(StorageError) as caught:
        _use(path)
    assert caught.value.path == str(path)
    assert f"{path}: the ledger is damaged" in str(caught.value)


def test_a_ledger_that_cannot_grow_is_full_and_keeps_what_it_held(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    ledger = Ledger(path)
    ledger.put("before", "generation", DONE, {"text": "kept"}, cost=1.0)
    ledger.put_batch("batch_0", "judge", ["before"])
    ledger._db.execute("PRAGMA max_page_count = 8")  # as on a full disk
    with pytest.raises(StorageError, match=r"full") as caught:
        for i in range(1000):
            ledger.put_batch(f"batch_{i + 1}", "judge", [f"key-{i}-{j}" for j in range(50)])
    assert caught.value.path == str(path) and "cannot use the ledger" in str(caught.value)
    assert isinstance(caught.value.__cause__, sqlite3.OperationalError)
    # the failed write took nothing with it: what was stored before is still there, now and after a reopen
    assert ledger.get_many(["before"])["before"].record == {"text": "kept"}
    assert ledger.total_cost() == pytest.approx(1.0)
    assert "batch_0" in ledger.open_batches("judge")
    ledger.close()
    with Ledger(path) as again:
        assert again.get_many(["before"])["before"].done


def test_a_folder_that_cannot_be_written_is_a_storage_error(tmp_path: Path) -> None:
    target = tmp_path / "ledger.sqlite"
    target.mkdir()  # a folder where the database file should be
    with pytest.raises(StorageError) as caught:
        Ledger(target)
    assert caught.value.path == str(target)
