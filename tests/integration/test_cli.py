"""The command line: check-config errors with line numbers, sign/verify
cross-checked against Twilio's RequestValidator in both directions, and the
user subcommands (add, list, remove, import)."""

import re
import sqlite3
import subprocess
from urllib.parse import quote, urlencode

import pytest

from harness import (ALICE, BIN, READY_TIMEOUT, body_sha256, oracle_valid, sign,
                     write_secret)

TOKEN = "0123456789abcdef0123456789abcdef"


@pytest.fixture
def cfgd(daemon_factory):
    """A daemon's config and files, never started."""
    return daemon_factory.make(start=False, name="cli")


def lines_of(d):
    return d.config_text().splitlines()


def write_lines(d, lines, mode=0o600):
    d.cfg_path.write_text("\n".join(lines) + "\n")
    d.cfg_path.chmod(mode)


def insert_after(lines, header, new):
    """Insert new after the [header] line; returns its 1-based line number."""
    i = lines.index(f"[{header}]")
    lines.insert(i + 1, new)
    return i + 2


def line_no(lines, startswith):
    for i, l in enumerate(lines):
        if l.startswith(startswith):
            return i + 1
    raise AssertionError(startswith)


def check(d):
    return d.cli("check-config")


def assert_error_at(r, d, line):
    assert r.returncode == 1, (r.returncode, r.stderr)
    prefix = f"{d.cfg_path}:{line}:"
    assert any(l.startswith(prefix) for l in r.stderr.splitlines()), \
        f"expected a line starting {prefix!r} in:\n{r.stderr}"


# ---------------------------------------------------------------- check-config

def test_check_config_valid(cfgd):
    r = check(cfgd)
    assert r.returncode == 0, r.stderr


def test_check_config_subcommand_form(cfgd, twhookd):
    r = twhookd("check-config", "-c", cfgd.cfg_path)
    assert r.returncode == 0, r.stderr


def test_unknown_key(cfgd):
    lines = lines_of(cfgd)
    n = insert_after(lines, "server", "bogus_key = 1")
    write_lines(cfgd, lines)
    assert_error_at(check(cfgd), cfgd, n)


def test_unknown_section(cfgd):
    lines = lines_of(cfgd) + ["[nope]", "x = 1"]
    write_lines(cfgd, lines)
    r = check(cfgd)
    assert r.returncode == 1
    assert any(re.match(rf"{re.escape(str(cfgd.cfg_path))}:{len(lines) - 1}:", l)
               or l.startswith(f"{cfgd.cfg_path}:{len(lines)}:")
               for l in r.stderr.splitlines()), r.stderr


@pytest.mark.parametrize("key,value", [
    ("drain_delay", "5 parsecs"),
    ("threads", "-1"),
    ("threads", "two"),
    ("max_body", "10m"),      # over the 1m hard limit
    ("tls", "maybe"),
    ("listen", "127.0.0.1"),  # no port
    ("listen", "127.0.0.1:99999"),
])
def test_bad_server_value(cfgd, key, value):
    lines = lines_of(cfgd)
    n = line_no(lines, f"{key} =") if any(l.startswith(f"{key} =") for l in lines) else None
    if n is None:
        n = insert_after(lines, "server", f"{key} = {value}")
    else:
        lines[n - 1] = f"{key} = {value}"
    write_lines(cfgd, lines)
    assert_error_at(check(cfgd), cfgd, n)


def test_bad_account_sid(cfgd):
    lines = lines_of(cfgd)
    n = line_no(lines, "account_sid =")
    lines[n - 1] = "account_sid = AC123"
    write_lines(cfgd, lines)
    assert_error_at(check(cfgd), cfgd, n)


def test_link_without_token_placeholder(cfgd):
    lines = lines_of(cfgd)
    n = line_no(lines, "link =")
    lines[n - 1] = "link = https://app.example/reset"
    write_lines(cfgd, lines)
    assert_error_at(check(cfgd), cfgd, n)


def test_all_errors_in_one_run(cfgd):
    lines = lines_of(cfgd)
    a = insert_after(lines, "server", "bogus_one = 1")
    b = line_no(lines, "account_sid =")
    lines[b - 1] = "account_sid = nope"
    c = insert_after(lines, "log", "bogus_two = 2")
    write_lines(cfgd, lines)
    r = check(cfgd)
    assert r.returncode == 1
    for n in (a, b, c):
        assert f"{cfgd.cfg_path}:{n}:" in r.stderr, (n, r.stderr)


def test_missing_auth_token_file(cfgd):
    lines = lines_of(cfgd)
    n = line_no(lines, "auth_token_file =")
    lines[n - 1] = f"auth_token_file = {cfgd.dir / 'no-such-file'}"
    write_lines(cfgd, lines)
    r = check(cfgd)
    assert r.returncode == 1, r.stderr
    assert f"{cfgd.cfg_path}:{n}:" in r.stderr, r.stderr


def test_inline_secret_refused_in_readable_config(cfgd):
    lines = lines_of(cfgd)
    n = line_no(lines, "auth_token_file =")
    lines[n - 1] = f"auth_token = {cfgd.auth_token}"
    write_lines(cfgd, lines, mode=0o644)
    r = check(cfgd)
    assert_error_at(r, cfgd, n)
    assert cfgd.auth_token not in r.stderr + r.stdout


def test_inline_secret_allowed_in_0600_config(cfgd):
    lines = lines_of(cfgd)
    n = line_no(lines, "auth_token_file =")
    lines[n - 1] = f"auth_token = {cfgd.auth_token}"
    write_lines(cfgd, lines, mode=0o600)
    r = check(cfgd)
    assert r.returncode == 0, r.stderr
    assert cfgd.auth_token not in r.stderr + r.stdout


def test_continuation_line_refused(cfgd):
    lines = lines_of(cfgd)
    n = line_no(lines, "message =")
    lines.insert(n, "  continued text")
    write_lines(cfgd, lines)
    assert_error_at(check(cfgd), cfgd, n + 1)


def test_missing_config_file(twhookd, tmp_path):
    r = twhookd("check-config", "-c", tmp_path / "absent.ini")
    assert r.returncode != 0
    assert r.stderr.strip()


# ------------------------------------- check-config checks what serve loads

def openssl(*args):
    subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True,
                   timeout=30)


def set_key(d, section, key, value):
    """Set [section] key in d's config; returns the key's 1-based line."""
    d.merge_config({section: {key: str(value)}})
    d.write_config()
    lines = lines_of(d)
    return lines.index(f"{key} = {value}", lines.index(f"[{section}]")) + 1


def assert_refused(r, d, line, *words):
    """Exit 1 and one stderr line FILE:LINE: carrying every word."""
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    prefix = f"{d.cfg_path}:{line}:" if line else f"{d.cfg_path}:"
    hits = [l for l in r.stderr.splitlines()
            if l.startswith(prefix) and all(w in l for w in words)]
    assert hits, f"no line starting {prefix!r} with {words} in:\n{r.stderr}"
    assert "configuration OK" not in r.stdout


def serve_refuses(d, *words):
    """serve, given the same config, exits 1 before ready and says why."""
    r = subprocess.run([str(BIN), "serve", "-c", str(d.cfg_path)], capture_output=True,
                       text=True, timeout=READY_TIMEOUT, stdin=subprocess.DEVNULL)
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert any(all(w in l for w in words) for l in r.stderr.splitlines()), r.stderr


@pytest.fixture
def tls_files(tmp_path, tls_cert):
    """Copies of the suite's certificate and key, and a second key that does
    not match the certificate."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.write_bytes(tls_cert[0].read_bytes())
    key.write_bytes(tls_cert[1].read_bytes())
    key.chmod(0o600)
    other = tmp_path / "other-key.pem"
    openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-out", other)
    other.chmod(0o600)
    return cert, key, other


def test_check_config_changes_nothing(cfgd):
    # Neither the server key nor the store exists yet: check-config says
    # serve will create them, and creates neither.
    assert not cfgd.server_key_path.exists() and not cfgd.db_path.exists()
    r = check(cfgd)
    assert r.returncode == 0, r.stderr
    assert f"{cfgd.server_key_path}: not there yet; serve will create it" in r.stdout
    assert f"{cfgd.db_path}: not there yet; serve will create it" in r.stdout
    assert r.stdout.endswith("configuration OK\n"), r.stdout
    assert not cfgd.server_key_path.exists() and not cfgd.db_path.exists()


def test_check_config_existing_store_read_only(cfgd):
    # A store a stopped daemon left (no -wal file): opened read-only and
    # immutable, so no -wal or -shm file appears and nothing is migrated.
    cfgd.add_user(ALICE, "alice")
    wal, shm = (cfgd.db_path.with_name(cfgd.db_path.name + s) for s in ("-wal", "-shm"))
    assert cfgd.db_path.exists() and not wal.exists()
    before = cfgd.db_path.read_bytes()
    r = check(cfgd)
    assert r.returncode == 0, r.stderr
    assert f"{cfgd.db_path}: not there yet" not in r.stdout
    assert not wal.exists() and not shm.exists()
    assert cfgd.db_path.read_bytes() == before


def test_check_config_while_serving(daemon_factory):
    d = daemon_factory.make(name="cli-live")
    r = check(d)
    assert r.returncode == 0, r.stderr
    assert d.get("/healthz").status_code == 200


def test_missing_certificate(cfgd, tmp_path):
    n = set_key(cfgd, "server", "tls_cert", tmp_path / "absent-cert.pem")
    assert_refused(check(cfgd), cfgd, n, "[server] tls_cert:", "absent-cert.pem",
                   "No such file")


def test_missing_key(cfgd, tmp_path):
    n = set_key(cfgd, "server", "tls_key", tmp_path / "absent-key.pem")
    assert_refused(check(cfgd), cfgd, n, "[server] tls_key:", "absent-key.pem",
                   "No such file")


def test_garbage_certificate(cfgd, tmp_path):
    bad = tmp_path / "garbage-cert.pem"
    bad.write_text("-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n"
                   "-----END CERTIFICATE-----\n")
    n = set_key(cfgd, "server", "tls_cert", bad)
    assert_refused(check(cfgd), cfgd, n, "[server] tls_cert:", str(bad),
                   "not a PEM certificate")


def test_garbage_key(cfgd, tmp_path):
    bad = write_secret(tmp_path / "garbage-key.pem", "this is no key")
    n = set_key(cfgd, "server", "tls_key", bad)
    assert_refused(check(cfgd), cfgd, n, "[server] tls_key:", str(bad),
                   "not a PEM private key")


def test_key_does_not_match_certificate(cfgd, tls_files):
    cert, _, other = tls_files
    set_key(cfgd, "server", "tls_cert", cert)
    n = set_key(cfgd, "server", "tls_key", other)
    assert_refused(check(cfgd), cfgd, n, "[server] tls_key:", str(other),
                   "does not match the certificate")
    serve_refuses(cfgd, "[server] tls_key:", "does not match the certificate")


def test_tls_key_readable_by_others(cfgd, tls_files):
    cert, key, _ = tls_files
    set_key(cfgd, "server", "tls_cert", cert)
    n = set_key(cfgd, "server", "tls_key", key)
    assert check(cfgd).returncode == 0
    for mode in (0o644, 0o640, 0o604):
        key.chmod(mode)
        assert_refused(check(cfgd), cfgd, n, "[server] tls_key:", str(key),
                       f"mode {mode:04o}", "chmod 600")
    serve_refuses(cfgd, "[server] tls_key:", "chmod 600")


def test_server_key_readable_by_others(cfgd):
    cfgd.server_key_path.write_bytes(b"k" * 32)
    cfgd.server_key_path.chmod(0o644)
    r = check(cfgd)
    # server_key_file is set in the harness's config: its line is known.
    n = line_no(lines_of(cfgd), "server_key_file =")
    assert_refused(r, cfgd, n, "[secrets] server_key_file:", str(cfgd.server_key_path),
                   "mode 0644", "chmod 600")
    serve_refuses(cfgd, "[secrets] server_key_file:", "chmod 600")


def test_server_key_directory_missing(cfgd, tmp_path):
    path = tmp_path / "no-such-dir" / "server.key"
    n = set_key(cfgd, "secrets", "server_key_file", path)
    assert_refused(check(cfgd), cfgd, n, "[secrets] server_key_file:", str(path),
                   "cannot be created")
    assert not path.parent.exists()


def test_store_directory_missing(cfgd, tmp_path):
    path = tmp_path / "no-such-dir" / "twhookd.db"
    n = set_key(cfgd, "store", "path", path)
    assert_refused(check(cfgd), cfgd, n, "[store] path:", str(path),
                   "No such file or directory")
    assert not path.parent.exists()
    serve_refuses(cfgd, "[store] path:", str(path))


def test_store_not_a_database(cfgd):
    cfgd.db_path.write_text("not a database\n" * 20)
    cfgd.db_path.chmod(0o600)
    n = set_key(cfgd, "store", "path", cfgd.db_path)
    assert_refused(check(cfgd), cfgd, n, "[store] path:", str(cfgd.db_path),
                   "not a database")


def test_store_from_a_newer_release(cfgd):
    cfgd.add_user(ALICE, "alice")
    conn = sqlite3.connect(str(cfgd.db_path))
    conn.execute("PRAGMA user_version = 99")
    conn.commit()
    conn.close()
    n = set_key(cfgd, "store", "path", cfgd.db_path)
    assert_refused(check(cfgd), cfgd, n, "[store] path:", "schema version 99")


def test_every_resource_error_in_one_run(cfgd, tmp_path):
    a = set_key(cfgd, "server", "tls_cert", tmp_path / "absent-cert.pem")
    cfgd.server_key_path.write_bytes(b"k" * 32)
    cfgd.server_key_path.chmod(0o640)
    b = line_no(lines_of(cfgd), "server_key_file =")
    c = set_key(cfgd, "store", "path", tmp_path / "nope" / "x.db")
    r = check(cfgd)
    assert r.returncode == 1
    for n, key in ((a, "tls_cert"), (b, "server_key_file"), (c, "path")):
        assert f"{cfgd.cfg_path}:{n}: [" in r.stderr and key in r.stderr, (n, r.stderr)


# --------------------------------------------------------------- sign / verify

@pytest.fixture
def token_file(tmp_path):
    return write_secret(tmp_path / "token", TOKEN)


PARAM_SETS = [
    {"From": "+15550000001", "To": "+15557654321", "Body": "RESET",
     "MessageSid": "SM" + "a" * 32, "AccountSid": "AC" + "b" * 32},
    {"Body": "spaces + plus & amp = eq 100% é 🙂", "Empty": "", "ZZZ": "1", "aaa": "2"},
    {"Body": "a=b=c"},
]
URLS = [
    "https://example.com/sms/reset",
    "https://example.com:8443/sms/reset?x=1&b=2&a=3",
    "https://example.com/myapp.php?foo=1&bar=2",
]


def kv_args(params):
    return [f"{k}={v}" for k, v in params.items()]


@pytest.mark.parametrize("params", PARAM_SETS)
@pytest.mark.parametrize("url", URLS)
def test_sign_matches_oracle(twhookd, token_file, url, params):
    r = twhookd("sign", "--url", url, "--auth-token-file", token_file, *kv_args(params))
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == sign(TOKEN, url, params)
    assert oracle_valid(TOKEN, url, params, r.stdout.strip())


@pytest.mark.parametrize("params", PARAM_SETS)
def test_sign_form_file_matches_oracle(twhookd, token_file, tmp_path, params):
    url = URLS[1]
    form = tmp_path / "form"
    form.write_text(urlencode(params))
    r = twhookd("sign", "--url", url, "--auth-token-file", token_file, "--form-file", form)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == sign(TOKEN, url, params)
    form.write_text(urlencode(params, quote_via=quote))
    r = twhookd("sign", "--url", url, "--auth-token-file", token_file, "--form-file", form)
    assert r.stdout.strip() == sign(TOKEN, url, params)


def test_sign_token_from_environment(twhookd):
    params = PARAM_SETS[0]
    r = twhookd("sign", "--url", URLS[0], *kv_args(params),
                env={"TWILIO_AUTH_TOKEN": TOKEN})
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == sign(TOKEN, URLS[0], params)


def test_sign_token_file_trailing_newline(twhookd, tmp_path):
    f = write_secret(tmp_path / "tok_nl", TOKEN, newline=True)
    params = PARAM_SETS[0]
    r = twhookd("sign", "--url", URLS[0], "--auth-token-file", f, *kv_args(params))
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == sign(TOKEN, URLS[0], params)


def test_sign_twilio_worked_example(twhookd, tmp_path):
    f = write_secret(tmp_path / "t", "12345")
    r = twhookd("sign", "--url", "https://example.com/myapp.php?foo=1&bar=2",
                "--auth-token-file", f, "CallSid=CA1234567890ABCDE",
                "Caller=+14158675310", "Digits=1234", "From=+14158675310",
                "To=+18005551212")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "L/OH5YylLD5NRKLltdqwSvS0BnU="


def test_sign_body_file(twhookd, token_file, tmp_path):
    body = b'{"From": "+15550000001", "Body": "RESET"}'
    bf = tmp_path / "body.json"
    bf.write_bytes(body)
    url = f"https://example.com/sms/reset?bodySHA256={body_sha256(body)}"
    r = twhookd("sign", "--url", url, "--auth-token-file", token_file, "--body-file", bf)
    assert r.returncode == 0, r.stderr
    sig = r.stdout.strip()
    assert sig == sign(TOKEN, url, {})
    assert oracle_valid(TOKEN, url, body.decode(), sig)


def test_sign_curl(twhookd, token_file):
    params = PARAM_SETS[0]
    r = twhookd("sign", "--url", URLS[0], "--auth-token-file", token_file,
                "--curl", *kv_args(params))
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "curl" in out
    assert sign(TOKEN, URLS[0], params) in out
    assert URLS[0] in out
    assert "X-Twilio-Signature" in out
    assert TOKEN not in out


@pytest.mark.parametrize("params", PARAM_SETS)
@pytest.mark.parametrize("url", URLS)
def test_verify_accepts_oracle_signature(twhookd, token_file, url, params):
    sig = sign(TOKEN, url, params)
    r = twhookd("verify", "--url", url, "--signature", sig,
                "--auth-token-file", token_file, *kv_args(params))
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)


@pytest.mark.parametrize("mutate", ["param", "url", "token", "signature", "extra"])
def test_verify_rejects(twhookd, token_file, tmp_path, mutate):
    url, params = URLS[1], dict(PARAM_SETS[0])
    sig = sign(TOKEN, url, params)
    tf = token_file
    if mutate == "param":
        params["From"] = "+15550000002"
    elif mutate == "url":
        url = url.replace("x=1", "x=2")
    elif mutate == "token":
        tf = write_secret(tmp_path / "other", "f" * 32)
    elif mutate == "signature":
        sig = ("B" if sig[0] != "B" else "C") + sig[1:]
    elif mutate == "extra":
        params["Extra"] = ""
    assert not oracle_valid(TOKEN if mutate != "token" else "f" * 32, url, params, sig)
    r = twhookd("verify", "--url", url, "--signature", sig, "--auth-token-file", tf,
                *kv_args(params))
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)


@pytest.mark.parametrize("signed,given", [
    ("https://example.com:443/sms/reset", "https://example.com/sms/reset"),
    ("https://example.com/sms/reset", "https://example.com:443/sms/reset"),
    ("https://example.com/sms/reset", "https://example.com:8443/sms/reset"),
    ("http://example.com:80/sms/reset", "http://example.com/sms/reset"),
    ("https://example.com:8443/sms/reset", "https://example.com/sms/reset"),
    ("https://example.com:80/sms/reset", "https://example.com/sms/reset"),
])
def test_verify_port_variants_agree_with_oracle(twhookd, token_file, signed, given):
    params = PARAM_SETS[0]
    sig = sign(TOKEN, signed, params)
    expected = oracle_valid(TOKEN, given, params, sig)
    r = twhookd("verify", "--url", given, "--signature", sig,
                "--auth-token-file", token_file, *kv_args(params))
    assert r.returncode == (0 if expected else 1), (expected, r.returncode, r.stderr)


def test_verify_form_file(twhookd, token_file, tmp_path):
    params = PARAM_SETS[1]
    form = tmp_path / "form"
    form.write_text(urlencode(params))
    sig = sign(TOKEN, URLS[0], params)
    r = twhookd("verify", "--url", URLS[0], "--signature", sig,
                "--auth-token-file", token_file, "--form-file", form)
    assert r.returncode == 0, r.stderr
    form.write_text(urlencode(dict(params, Body="changed")))
    r = twhookd("verify", "--url", URLS[0], "--signature", sig,
                "--auth-token-file", token_file, "--form-file", form)
    assert r.returncode == 1, r.stderr


def test_verify_form_file_repeated_names(twhookd, token_file, tmp_path):
    # Twilio's rule for a repeated name: its values sorted, exact duplicates
    # dropped (current twilio-python/-node/-php). Built by hand, as the
    # Debian RequestValidator takes a dict.
    import base64
    import hashlib
    import hmac
    body = "MediaUrl=b&MediaUrl=a&MediaUrl=b&From=%2B15550000001"
    url = URLS[0]
    s = url + "From+15550000001" + "MediaUrla" + "MediaUrlb"
    sig = base64.b64encode(hmac.new(TOKEN.encode(), s.encode(), hashlib.sha1).digest()).decode()
    form = tmp_path / "form"
    form.write_text(body)
    r = twhookd("verify", "--url", url, "--signature", sig,
                "--auth-token-file", token_file, "--form-file", form)
    assert r.returncode == 0, (r.returncode, r.stderr)


def test_verify_body_file(twhookd, token_file, tmp_path):
    body = '{"From": "+15550000001", "MessageSid": "SM' + "c" * 32 + '"}'
    bf = tmp_path / "body.json"
    bf.write_text(body)
    url = f"https://example.com/sms/reset?bodySHA256={body_sha256(body.encode())}"
    sig = sign(TOKEN, url, {})
    assert oracle_valid(TOKEN, url, body, sig)
    r = twhookd("verify", "--url", url, "--signature", sig,
                "--auth-token-file", token_file, "--body-file", bf)
    assert r.returncode == 0, r.stderr
    bf.write_text(body.replace("+1555", "+1666"))
    assert not oracle_valid(TOKEN, url, bf.read_text(), sig)
    r = twhookd("verify", "--url", url, "--signature", sig,
                "--auth-token-file", token_file, "--body-file", bf)
    assert r.returncode == 1, r.stderr


@pytest.mark.parametrize("args", [
    ["verify", "--signature", "x" * 28],                 # no --url
    ["verify", "--url", "https://example.com/"],          # no --signature
    ["verify", "--url", "https://example.com/", "--signature", "x", "--bogus"],
    ["sign"],                                            # no --url
])
def test_usage_errors_exit_2(twhookd, token_file, args):
    r = twhookd(*args, "--auth-token-file", token_file)
    assert r.returncode == 2, (r.returncode, r.stderr)


def test_version_and_help(twhookd):
    r = twhookd("--version")
    assert r.returncode == 0 and r.stdout.strip(), (r.returncode, r.stdout, r.stderr)
    r = twhookd("--help")
    assert r.returncode == 0, (r.returncode, r.stderr)
    assert "sign" in r.stdout + r.stderr


# ------------------------------------------------------------------------ users

def user_list(d):
    r = d.cli("user", "list")
    assert r.returncode == 0, r.stderr
    return [tuple(l.split()) for l in r.stdout.splitlines() if l.strip()]


def test_user_add_list_remove(cfgd):
    cfgd.add_user("+15551230001", "u1")
    cfgd.add_user("+447700900123", "u2")
    users = user_list(cfgd)
    assert ("+15551230001", "u1") in users
    assert ("+447700900123", "u2") in users
    r = cfgd.cli("user", "remove", "+15551230001")
    assert r.returncode == 0, r.stderr
    users = user_list(cfgd)
    assert ("+15551230001", "u1") not in users
    assert ("+447700900123", "u2") in users


@pytest.mark.parametrize("phone", ["5551230001", "+0551230001", "+1", "+1555123000199999",
                                   "+1555abc0001", "", "+1 555 123 0001"])
def test_user_add_refuses_non_e164(cfgd, phone):
    r = cfgd.cli("user", "add", phone, "u")
    assert r.returncode != 0, r.stdout
    assert all(p != phone for p, *_ in user_list(cfgd))


def test_user_import(cfgd, tmp_path):
    csv = tmp_path / "users.csv"
    csv.write_text("phone,user_id\n+15551230011,a1\n+15551230012,a2\n+15551230013,a3\n")
    r = cfgd.cli("user", "import", csv)
    assert r.returncode == 0, r.stderr
    users = user_list(cfgd)
    for p, u in [("+15551230011", "a1"), ("+15551230012", "a2"), ("+15551230013", "a3")]:
        assert (p, u) in users


def test_user_import_without_header(cfgd, tmp_path):
    csv = tmp_path / "users.csv"
    csv.write_text("+15551230021,b1\n+15551230022,b2\n")
    r = cfgd.cli("user", "import", csv)
    assert r.returncode == 0, r.stderr
    assert ("+15551230022", "b2") in user_list(cfgd)


@pytest.mark.parametrize("bad_line", ["555-123-0033,c3", "+15551230033", "+15551230033,",
                                      "not a line at all", ",c3"])
def test_user_import_bad_line_imports_nothing(cfgd, tmp_path, bad_line):
    cfgd.add_user("+15551230099", "keep")
    before = user_list(cfgd)
    csv = tmp_path / "bad.csv"
    csv.write_text(f"phone,user_id\n+15551230031,c1\n{bad_line}\n+15551230034,c4\n")
    r = cfgd.cli("user", "import", csv)
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert any(l.startswith(f"{csv}:3:") for l in r.stderr.splitlines()), r.stderr
    assert user_list(cfgd) == before


def test_user_import_missing_file(cfgd, tmp_path):
    r = cfgd.cli("user", "import", tmp_path / "absent.csv")
    assert r.returncode != 0


def test_user_list_while_serving(daemon_factory):
    d = daemon_factory.make(users={"+15551230041": "live1"}, name="userlive")
    d.add_user("+15551230042", "live2")
    users = user_list(d)
    assert ("+15551230041", "live1") in users and ("+15551230042", "live2") in users
    # The running daemon sees a user added after it started.
    from harness import token_from_twiml
    r = d.reset("+15551230042")
    assert r.status_code == 200 and token_from_twiml(r), r.text
