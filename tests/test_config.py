"""The config file: the shipped examples parse; every mistake names its key."""

from __future__ import annotations

import os

import pytest

from imfed.config import ConfigError, default_config, load, parse

ETC = os.path.join(os.path.dirname(__file__), os.pardir, "etc")


def test_examples_parse():
    m = load(os.path.join(ETC, "management.toml"))
    assert m.management.server_id == "manager" and m.node is None
    assert m.management.listen.port == 8443
    n = load(os.path.join(ETC, "node.toml"))
    assert n.node.server_id == "acme-im" and n.management is None
    assert n.node.outbox_pipeline == 8


def test_default_is_loopback_development_setup():
    c = default_config()
    assert c.management.listen.host == "127.0.0.1"
    assert c.data_dir == os.path.abspath("imfed-data")


@pytest.mark.parametrize("data, key", [
    ({}, "data_dir"),
    ({"data_dir": 5, "management": {"listen": "127.0.0.1:1"}}, "data_dir"),
    ({"data_dir": "d"}, "management"),
    ({"data_dir": "d", "management": "x"}, "management"),
    ({"data_dir": "d", "management": {}}, "management.listen"),
    ({"data_dir": "d", "management": {"listen": "localhost:80"}}, "management.listen"),
    ({"data_dir": "d", "management": {"listen": "127.0.0.1:99999"}}, "management.listen"),
    ({"data_dir": "d", "management": {"listen": "127.0.0.1:1", "server_id": "a b"}},
     "management.server_id"),
    ({"data_dir": "d", "management": {"listen": "127.0.0.1:1", "address": "http://x"}},
     "management.address"),
    ({"data_dir": "d", "management": {"listen": "127.0.0.1:1", "address": "https://x/p"}},
     "management.address"),
    ({"data_dir": "d", "management": {"listen": "127.0.0.1:1", "cert_validity_days": 0}},
     "management.cert_validity_days"),
    ({"data_dir": "d", "management": {"listen": "127.0.0.1:1", "max_body": True}},
     "management.max_body"),
    ({"data_dir": "d", "management": {"listen": "127.0.0.1:1", "lisen": "x"}},
     "management.lisen"),
    ({"data_dir": "d", "node": {"listen": "127.0.0.1:1"}}, "node.server_id"),
    ({"data_dir": "d", "management": {"listen": "127.0.0.1:1", "access_log": "no"}},
     "management.access_log"),
    ({"data_dir": "d", "node": {"server_id": "n", "listen": "127.0.0.1:1",
                                "management_url": "https://m", "access_log": 0}},
     "node.access_log"),
    ({"data_dir": "d", "node": {"server_id": "n", "listen": "127.0.0.1:1",
                                "management_url": "https://m", "renew_before_days": 0}},
     "node.renew_before_days"),
    ({"data_dir": "d", "extra": 1, "management": {"listen": "127.0.0.1:1"}}, "extra"),
    # A misspelt required key is named as the unknown key it is, not as a missing one.
    ({"data_dir": "d", "node": {"server_id": "n", "listen": "127.0.0.1:1",
                                "managment_url": "https://m"}}, "node.managment_url"),
    ({"data_dir": "d", "management": {"listen": "127.0.0.1:1"}, "metrics": {"listen": "x"}},
     "metrics.listen"),
    ({"data_dir": "d", "management": {"listen": "127.0.0.1:1"}, "metrics": {"port": 1}},
     "metrics.listen"),
    ({"data_dir": "d", "management": {"listen": "127.0.0.1:1"}, "log": {"format": "xml"}},
     "log.format"),
    ({"data_dir": "d", "management": {"listen": "127.0.0.1:1"}, "log": {"node": "loud"}},
     "log.node"),
    ({"data_dir": "d", "management": {"listen": "127.0.0.1:1", "database": "mysql://h/db"}},
     "management.database"),
    ({"data_dir": "d", "node": {"server_id": "n", "listen": "127.0.0.1:1",
                                "management_url": "https://m",
                                "database": "postgresql://db.example"}}, "node.database"),
    ({"data_dir": "d", "node": {"server_id": "n", "listen": "127.0.0.1:1",
                                "management_url": "https://m", "database_connections": 0}},
     "node.database_connections"),
    ({"data_dir": "d", "node": {"server_id": "n", "listen": "127.0.0.1:1",
                                "management_url": "https://m", "outbox_pipeline": 0}},
     "node.outbox_pipeline"),
    ({"data_dir": "d", "node": {"server_id": "n", "listen": "127.0.0.1:1",
                                "management_url": "https://m", "outbox_pipeline": 65}},
     "node.outbox_pipeline"),
    ({"data_dir": "d", "crypto_threads": -1, "management": {"listen": "127.0.0.1:1"}},
     "crypto_threads"),
    ({"data_dir": "d", "crypto_threads": "2", "management": {"listen": "127.0.0.1:1"}},
     "crypto_threads"),
])
def test_mistakes_name_the_key(data, key):
    with pytest.raises(ConfigError) as info:
        parse(data)
    assert info.value.key == key
    assert key in str(info.value)


def test_unreadable_and_invalid_files(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load(str(tmp_path / "missing.toml"))
    (tmp_path / "bad.toml").write_text("data_dir = ")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load(str(tmp_path / "bad.toml"))


def test_misspelt_key_is_named_with_the_key_meant():
    with pytest.raises(ConfigError) as info:
        parse({"data_dir": "d", "node": {"server_id": "n", "listen": "127.0.0.1:1",
                                         "managment_url": "https://m"}})
    assert "did you mean management_url" in str(info.value)
    with pytest.raises(ConfigError) as info:
        parse({"data_dir": "d", "node": {"server_id": "n", "listen": "127.0.0.1:1",
                                         "management_url": "https://m", "max_body": "1"}})
    assert str(info.value).endswith("must be an integer")


def test_two_nodes_from_the_example_have_their_own_keys(tmp_path):
    """etc/node.toml leaves the key and certificate paths to follow data_dir."""
    import tomllib

    with open(os.path.join(ETC, "node.toml"), "rb") as f:
        data = tomllib.load(f)
    first = parse(dict(data, data_dir=str(tmp_path / "one")))
    second = parse(dict(data, data_dir=str(tmp_path / "two")))
    for name in ("key_file", "cert_file", "ca_file", "management_cert_file"):
        a, b = getattr(first.node, name), getattr(second.node, name)
        assert a != b and a.startswith(str(tmp_path / "one"))


def test_the_store_is_sqlite_in_the_data_dir_unless_postgresql_is_named():
    base = {"server_id": "n", "listen": "127.0.0.1:1", "management_url": "https://m"}
    c = parse({"data_dir": "/srv/d", "node": base, "management": {"listen": "127.0.0.1:2"}})
    assert c.node.database == "/srv/d/node.sqlite3"
    assert c.management.database == "/srv/d/management.sqlite3"
    url = "postgresql://imfed@db.example/imfed_node"
    assert parse({"data_dir": "/srv/d", "node": dict(base, database=url)}).node.database == url
    assert parse({"data_dir": "/srv/d", "node": dict(base, database="n.db")}).node.database == \
        "/srv/d/n.db"
