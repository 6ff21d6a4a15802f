"""Bounded fuzzing of the parsers that take outside input (issue 25): whatever the bytes, each
answers with its own clear error, never a crash (an IndexError, a TypeError, a struct or
Unicode error), and writes nothing. Inputs are random and, more usefully, valid inputs mutated
(bytes flipped, cut, inserted; values swapped for values of other types). Longer
coverage-guided runs of the same targets are bench/fuzz.py's (atheris, outside CI).

Parsers covered elsewhere by properties of their own: SIPREC bodies and metadata
(test_siprec_parse.py), the SDP rules (test_secure_policy.py), the age STREAM prefix
(test_age_stream.py).
"""

from __future__ import annotations

import io
import json
import tomllib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from gateway import age
from gateway.age.errors import AgeError
from gateway.app.legacy import NotAudio, sniff
from gateway.config import ConfigError, _load
from gateway.config import example as example_config
from gateway.recording import wav
from gateway.storage import journal
from gateway.storage.index import SqliteIndex
from gateway.supervisor.channel import Channel, ChannelError

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def mutated(draw: st.DrawFn, original: bytes) -> bytes:
    """`original` with a few bytes flipped, a stretch cut out or random bytes put in."""
    data = bytearray(original)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "cut", "insert", "truncate"]))
        if not data:
            break
        at = draw(st.integers(0, len(data) - 1))
        if op == "flip":
            data[at] ^= draw(st.integers(1, 255))
        elif op == "cut":
            del data[at : at + draw(st.integers(1, 64))]
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=64))
        else:
            del data[at:]
    return bytes(data)


# -- age: the header, the recipients' stanzas and the STREAM payload -------------------------

IDENTITY = age.Identity.generate()
PLAIN = bytes(range(256)) * 300  # more than one 64 KiB chunk
SEALED = age.encrypt(PLAIN, [IDENTITY.recipient()])


def read_age(data: bytes) -> bytes:
    return age.AgeReader(io.BytesIO(data), [IDENTITY]).read_all()


@FUZZ
@given(st.one_of(st.binary(max_size=2000), mutated(SEALED[:400]), mutated(SEALED)))
def test_age_reader_answers_any_bytes_with_an_age_error(data: bytes) -> None:
    try:
        out = read_age(data)
    except AgeError:
        return
    # Read without an error: it can only be the original, whole (a cut after the last chunk
    # or a flip nowhere authenticated does not exist in age).
    assert data == SEALED and out == PLAIN


@FUZZ
@given(st.text(max_size=200))
def test_age_keys_answer_any_text_with_a_key_format_error(text: str) -> None:
    for parse in (age.parse_recipient, age.parse_identity):
        try:
            parse(text)
        except AgeError:
            pass


# -- WAV and MP3 headers of a legacy import ---------------------------------------------------

WAV = wav.header(8000, 2, 16, 8000 * 4) + b"\x00" * 8000 * 4
MP3 = b"ID3\x03\x00\x00\x00\x00\x00\x10" + b"\x00" * 16 + b"\xff\xfb\x90\x64" + b"\x00" * 400


@FUZZ
@given(st.one_of(st.binary(max_size=300), mutated(WAV[:200]), mutated(MP3)), st.integers(0, 1 << 40))
def test_legacy_sniffing_answers_any_header_with_not_audio(head: bytes, size: int) -> None:
    try:
        kind, duration = sniff(head, size)
    except NotAudio:
        return
    assert kind in ("audio/wav", "audio/mpeg")
    assert duration is None or duration >= 0


@FUZZ
@given(st.one_of(st.binary(max_size=300), mutated(WAV[:200])), st.none() | st.integers(0, 1 << 40))
def test_wav_headers_parse_or_say_why(head: bytes, total: int | None) -> None:
    try:
        info = wav.parse_header(head, total_size=total)
    except wav.WavError:
        return
    assert info.channels >= 1 and info.sample_rate >= 1


# -- configuration values ---------------------------------------------------------------------

EXAMPLE = tomllib.loads(example_config())
SETTINGS = sorted((s, k) for s, table in EXAMPLE.items() if isinstance(table, dict) for k in table)
TOML_VALUES = st.recursive(
    st.none().map(lambda _: "")
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4),
    max_leaves=6,
)


def toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return {"nan": "nan", "inf": "inf", "-inf": "-inf"}.get(str(v), repr(v))
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return json.dumps(v)  # a TOML basic string is JSON's, for what json.dumps writes
    return "[" + ", ".join(toml_value(x) for x in v) + "]"


def render(table: dict[str, Any]) -> str:
    out = []
    for section, values in table.items():
        out.append(f"[{section}]")
        out += [f"{k} = {toml_value(v)}" for k, v in values.items()]
    return "\n".join(out) + "\n"


@FUZZ
@given(st.data())
def test_any_value_of_any_setting_is_taken_or_refused_with_a_config_error(tmp_path_factory, data) -> None:  # type: ignore[no-untyped-def]
    where = tmp_path_factory.mktemp("cfg")
    table = json.loads(json.dumps(EXAMPLE))
    table["paths"]["data_dir"] = str(where / "data")
    for _ in range(data.draw(st.integers(1, 3))):
        section, key = data.draw(st.sampled_from(SETTINGS))
        value = data.draw(TOML_VALUES)
        assume(not (isinstance(value, list) and any(isinstance(x, list) for x in value)))
        table[section][key] = value
    text = render(table)
    try:
        _load(where / "gateway.toml", text.encode())
    except ConfigError:
        pass
    assert not (where / "data").exists(), "loading a configuration writes nothing"


@FUZZ
@given(st.binary(max_size=400))
def test_any_bytes_as_a_configuration_file_get_a_config_error(data: bytes) -> None:
    try:
        _load(Path("/nonexistent/gateway.toml"), data)
    except ConfigError:
        pass


# -- journal lines ----------------------------------------------------------------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)


def _row_of(cls: type) -> st.SearchStrategy[dict[str, Any]]:
    """Some of a row's fields, by their names, with values of any type (often the right one)."""
    from dataclasses import fields

    names = [f.name for f in fields(cls)]
    value = (
        JSON | st.binary(max_size=8) | st.integers(-(2**70), 2**70) | st.sampled_from(["complete", "bogus"])
    )
    return st.dictionaries(st.sampled_from(names), value, max_size=len(names))


@st.composite
def journal_entries(draw: st.DrawFn) -> Any:
    """Entries shaped like the journal's (a known op, arguments of the right names, rows with
    their columns) with values of any type, and anything else JSON can hold."""
    from gateway.storage import audit
    from gateway.storage.rows import CallRow, RecordingRow

    op = draw(st.sampled_from(sorted(journal.WRITES)) | st.text(max_size=12))
    plain = journal._PLAIN_ARGS.get(op, {})
    args: dict[str, Any] = {name: draw(JSON | st.binary(max_size=8)) for name in plain}
    args |= {
        "call": draw(_row_of(CallRow)),
        "rec": draw(_row_of(RecordingRow)),
        "cp": draw(_row_of(audit.Checkpoint)),
        "rec_id": draw(st.text(max_size=8) | JSON),
        "actor": draw(st.text(max_size=8) | JSON),
        "action": draw(st.text(max_size=8)),
        "subject": draw(st.text(max_size=8)),
        "details": draw(
            st.none() | st.dictionaries(st.text(max_size=5), JSON | st.binary(max_size=4), max_size=3)
        ),
    }
    if op == "update_recording":
        args = {"rec_id": args["rec_id"], **draw(_row_of(RecordingRow))}
    elif op in plain:
        args = {k: v for k, v in args.items() if k in plain or draw(st.booleans()) and False}
    encoded = journal._encode(args)
    if draw(st.booleans()):  # a "$b64" that is not base64 text, somewhere
        encoded[draw(st.sampled_from(sorted(encoded)))] = {"$b64": draw(JSON)}
    entry = {"id": draw(st.text(max_size=8) | JSON), "at": "2026-01-01T00:00:00Z", "op": op, "args": encoded}
    return draw(st.just(entry) | JSON)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def scratch_index(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Both engines: PostgreSQL refuses values SQLite would take (a string for an integer)."""
    if request.param == "sqlite":
        idx: Any = SqliteIndex(tmp_path_factory.mktemp("journal") / "index.sqlite3", create=True)
    else:
        from gateway.storage.index_pg import PgIndex

        idx = PgIndex(request.getfixturevalue("pg_server").new_database())
    yield idx
    idx.close()


@FUZZ
@given(journal_entries())
@example({"op": "add_call", "args": {"call": {"$b64": 5}}})
@example({"op": "add_call", "args": {"call": {"id": [1, 2], "started_at": "x"}}})
@example({"op": "update_recording", "args": {"rec_id": "r", "bytes": {"a": 1}}})
@example({"op": "update_recording", "args": {"rec_id": "r", "bytes": 2**64}})
@example(
    {
        "op": "add_recording",
        "args": {"rec": {"id": "r", "object_name": "o", "started_at": "s", "status": "x"}},
    }
)
def test_a_journal_entry_is_applied_or_set_aside_never_a_crash(scratch_index, entry) -> None:  # type: ignore[no-untyped-def]
    """Replay sets aside what raises ValueError; anything else would stop the replay for good
    (it retries the same entry forever). Found by this test: a "$b64" that was not text, a
    value of the wrong type or range, an update of nothing and a recording whose call's line is
    gone all reached the database, whose own errors are no ValueError."""
    try:
        journal.apply(scratch_index, entry)
    except ValueError:
        pass


# -- cluster messages -------------------------------------------------------------------------

CHANNEL = Channel(b"k" * 32)


@FUZZ
@given(st.one_of(st.text(max_size=300), st.binary(max_size=200).map(lambda b: "gw1:" + b.hex())))
def test_a_cluster_message_that_is_not_ours_gets_a_channel_error(payload: str) -> None:
    try:
        CHANNEL.open(payload)
    except ChannelError:
        return
    raise AssertionError("opened a message nobody sealed")


@FUZZ
@given(st.binary(min_size=1, max_size=40))
def test_a_sealed_message_altered_anywhere_gets_a_channel_error(flip: bytes) -> None:
    sealed = CHANNEL.seal({"type": "status", "node": "a"})
    raw = bytearray(sealed.encode())
    at = flip[0] % len(raw)
    raw[at] = (raw[at] + 1 + (flip[-1] % 200)) % 128 or 1
    assume(bytes(raw) != sealed.encode())
    with pytest.raises(ChannelError):
        CHANNEL.open(raw.decode())


def test_a_sealed_message_with_its_base64_padding_bits_altered_gets_a_channel_error() -> None:
    """The last base64 character before '=' carries bits the decoder ignores; a message with
    them changed decoded to the very bytes sealed and opened (found by the fuzz test above, in
    CI). Only the encoding the sender made opens."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    for node in ("a", "ab", "abc"):  # one of these pads with '='
        sealed = CHANNEL.seal({"type": "status", "node": node})
        if sealed.endswith("="):
            break
    else:
        raise AssertionError("no padded message to alter")
    last = len(sealed.rstrip("=")) - 1
    altered = sealed[:last] + alphabet[alphabet.index(sealed[last]) ^ 1] + sealed[last + 1 :]
    with pytest.raises(ChannelError):
        CHANNEL.open(altered)
