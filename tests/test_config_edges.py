"""Configuration rough edges (issue 13): empty variables, a zero connect
deadline, bad TLS files, trusted proxies. Each is exit 2 with one line naming
the variable, like every other malformed value (README "Configuration")."""

from __future__ import annotations

import pytest
import trustme

from proxy.config import ConfigError, load_config

from .test_config import KEY, assert_config_exit, load, run_proxy


def test_an_empty_environment_variable_falls_back_to_env_file_then_default(tmp_path):
    (tmp_path / ".env").write_text("OPENAI_PROXY_PORT=9123\nOPENAI_PROXY_PATH=\n")
    config = load(environ={"OPENAI_PROXY_PORT": "", "OPENAI_PROXY_PATH": ""}, cwd=tmp_path)
    assert config.port == 9123  # the .env value, not the default
    assert config.path == "/openai"  # empty in both: the default
    # The key too: empty in the environment, set in .env.
    (tmp_path / ".env").write_text("OPENAI_API_KEY=sk-from-file\n")
    assert load_config([], {"OPENAI_API_KEY": ""}, cwd=str(tmp_path)).api_key == "sk-from-file"


def test_empty_log_level_is_the_default(tmp_path):
    assert load(environ={"LOG_LEVEL": ""}, cwd=tmp_path).log_level == "info"


@pytest.mark.parametrize("raw", ["0", "0.0"])
def test_zero_upstream_connect_timeout_is_refused(tmp_path, raw):
    with pytest.raises(ConfigError, match="OPENAI_PROXY_UPSTREAM_CONNECT_TIMEOUT_S must be more than 0"):
        load(environ={"OPENAI_PROXY_UPSTREAM_CONNECT_TIMEOUT_S": raw}, cwd=tmp_path)
    assert load(environ={"OPENAI_PROXY_UPSTREAM_CONNECT_TIMEOUT_S": "0.5"}, cwd=tmp_path).upstream_connect_timeout_s == 0.5


@pytest.fixture
def pem_files(tmp_path):
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.cert_chain_pems[0].write_to_path(str(cert_path))
    cert.private_key_pem.write_to_path(str(key_path))
    other_key = tmp_path / "other.key"
    trustme.CA().issue_cert("127.0.0.1").private_key_pem.write_to_path(str(other_key))
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    return {"cert": str(cert_path), "key": str(key_path), "other_key": str(other_key), "garbage": str(garbage)}


@pytest.mark.parametrize(
    "cert, key, named",
    [
        ("garbage", "key", ["OPENAI_PROXY_TLS_CERT_PATH", "garbage.pem"]),
        ("cert", "garbage", ["OPENAI_PROXY_TLS_KEY_PATH", "garbage.pem"]),
        ("key", "key", ["OPENAI_PROXY_TLS_CERT_PATH", "key.pem"]),  # a key where the certificate belongs
        ("cert", "other_key", ["OPENAI_PROXY_TLS_CERT_PATH", "OPENAI_PROXY_TLS_KEY_PATH", "other.key"]),
        ("cert", "missing", ["OPENAI_PROXY_TLS_KEY_PATH", "missing.key"]),
    ],
)
def test_bad_tls_files_exit_2_with_one_line_naming_variable_and_file(tmp_path, pem_files, cert, key, named):
    files = {**pem_files, "missing": str(tmp_path / "missing.key")}
    environ = {**KEY, "OPENAI_PROXY_TLS_CERT_PATH": files[cert], "OPENAI_PROXY_TLS_KEY_PATH": files[key]}
    result = run_proxy(["--port", "0"], environ, tmp_path)
    assert_config_exit(result, named[0])
    for name in named:
        assert name in result.stderr


def test_good_tls_files_load(tmp_path, pem_files):
    config = load(environ={"OPENAI_PROXY_TLS_CERT_PATH": pem_files["cert"],
                           "OPENAI_PROXY_TLS_KEY_PATH": pem_files["key"]}, cwd=tmp_path)
    assert config.listen_url.startswith("wss://")


def test_trusted_proxies_are_addresses_or_networks(tmp_path):
    config = load(environ={"OPENAI_PROXY_TRUSTED_PROXIES": "127.0.0.1, 10.0.0.0/8,::1"}, cwd=tmp_path)
    assert config.trusted_proxies == ("127.0.0.1/32", "10.0.0.0/8", "::1/128")
    assert load(["--trusted-proxies", "192.168.1.7"], cwd=tmp_path).trusted_proxies == ("192.168.1.7/32",)
    assert load(cwd=tmp_path).trusted_proxies == ()
    with pytest.raises(ConfigError, match="OPENAI_PROXY_TRUSTED_PROXIES"):
        load(environ={"OPENAI_PROXY_TRUSTED_PROXIES": "nginx.local"}, cwd=tmp_path)
