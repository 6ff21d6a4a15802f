"""The hybrid post-quantum recipient, MLKEM768-X25519 (issue 23): keys as c2sp.org/age gives
them, files that round-trip, no mixing with X25519, `gateway keygen --pq`, and a gateway whose
operators hold post-quantum keys recording, with a key per recording too, and exporting.
The C2SP CCTV hybrid vectors run in test_age_vectors.py."""

from __future__ import annotations

import io
import json
import subprocess
import wave
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway import age
from gateway.age import format as fmt
from gateway.cli import exitcodes, main
from tests.audio import dominant_frequency
from tests.conftest import require_tool
from tests.gw import GatewayUnderTest

# The example identity of the specification and the recipient it gives (c2sp.org/age).
SPEC_IDENTITY = "AGE-SECRET-KEY-PQ-1XX76JRALNLXDMEW0CRK45QMCCH4X06SE84UN3VPM33W6HWDX0H3SK3ZQFR"
SPEC_RECIPIENT = "age1pq1x34nzsvr0rxjsgdn8zgyhfe8j7ceq5r9rdelkjuh3y235jzxshfg87pzf5zrqtzdxz95paef6caq5aapdmwjjqpjfdyxnzr2zampc3uxy0dg4z2n2gm9su72p0pc3u0jvev55l694v78snxg3yzvcl7yda0eyytqj6a0ec477lnhcy5hzpz4zq3pxanve4cn62gqj3pjy5lqj9c6kyj4v2z8alktn8zh99970x79gjkv7522hv9kfz35zsnxhsx8wwtmu9cy3ftzjgwcp4sshn3llnylnpdsyz5jm72vefv4x5vfwytrefxg4wq3mv42wcrvkj742479zrxzpvp2p3e9fed9f0739vcu80r7ma28qfhnvlv4gfzel9q654dj3zmuvvz893azhxdvs9fxd0r7jzchzcfcs5mkyyjxhw0n2z6dvp9yn9qfdp29h0azxqyjw6v7fhyuzj7zel0uq6j9rd7wgrpz7mf5dnj43jwsgvrc8qcnhy7tu6dkdujuxzkp9xj43xe8h92ktre2a3u3s8mm5mrp9nr9pwkgtz4mdlq9hgn4fps4k57ff6wddn2fy23t47sm20r8km8sd2pcyyafnet8f0dajsrlyjeah4n3mssr6aseevuuskdvq5lzguyvpgwpta742c6698vgutzqgny8usfg0w2he7kq5vyxjd0f9hqg8xk26y9e4th0gezq92q4cpp5p2y9hf5f2cje5l0c3sa3a2qxmm38pxxvhxh99yzmfz0zk7r2s64nnwjhkfgfr3gf8xnmppcgmaykvh5sh6g7vk9790rf8ws0axmr2t7z8aae5fq2029uvcn2ghgt4fu4wgwdc0k0cz52qkvwmuzj8p8k5jgf3xzk5zmrkavjekjrpeq408xz3zxazwkc6tyfmhayrkfpjhwtz5mp8j8guqe43k2q6m2kte03vrw27y3wmqyu5etmt9dnkwcnnpmu9gz9dekfhdevf42ucshphnrk38ra6hx8w5f8q5ru0xdhrjxmwqf6cused7zc5xvq43r0zscjglpwlptpwydhqw64xz7ptjdyeyzpq2zkxtmzg29gzjpvzva4d3l0cenn9xs297wf4y4ukwrunf57xj6pm7nvrkwvtrt8hwcmgv8x7ajw7258ugf9wvkmk4052ekg87tw5vnx8nq2swyzv77v8yqlwsenvamr0zssknwts8rrhfuwj7ykysnq9jxy0uv3kuyt22djszjdtvpz6d0s0kwh8ryynddzud92emeyvvyqktd0jtj7rvvg5gch25v8smlvny3kvn5gagyz475ze2y6q466xqmz2n3hs77lddeqyta2nch5k2u5yacuk9ywnwfdzvyejnucz724hj77hrrmakm7pr3kxsrxq22ejexlud9fy2kdqmkg5yncz7jm5wv2qjk5w5kvcpqsry2yqffh2la52dxfjkjq5rzhjzeyn6dupn0qwtyv7s4lwg3xdarsdlwe2y3tujy480y7z39q259fzx6jhd2j0f5hagqpcpees7hzc2yrk5cy788uk3s7qvp5cpepx24gvws3m2g433exgwppnkjscec8qu4y9z9r7vccexjcjaen42245lmgmxmuavg9alej92322gvvyy2t6267v09ch64y0m53jff0vjj96s0ypk60hr3jw4myd6m5hpn3xjstx7tl2szhpr5qe8jj08ydjc4wy2rch2fhuy3pdfjax5awe9j99ly5hkntzz9fe5zatgjvzdd0kgtxs25njnajyf6ssekp7gelxquusn4pt25czh3scj68kq79wdn5tgm6yvm9nzavrg043x3msnygf8dweknw5jmqd0uvny6ttsn09508k0c55zfnegrm9efhxpfqdkmhh6gjtqmwze9pyyzk3tlhl53k2ykx3qheyty7saeq0d3fzv49zc0k"


def test_the_specifications_example_identity_gives_its_recipient() -> None:
    identity = age.parse_identity(SPEC_IDENTITY)
    assert isinstance(identity, age.HybridIdentity)
    assert str(identity.recipient()) == SPEC_RECIPIENT
    assert identity.encode() == SPEC_IDENTITY
    recipient = age.parse_recipient(SPEC_RECIPIENT)
    assert isinstance(recipient, age.HybridRecipient) and len(recipient.public_bytes) == 1216
    assert SPEC_IDENTITY[20:] not in repr(identity)


def test_a_file_to_a_post_quantum_recipient_opens_only_with_its_identity() -> None:
    identity = age.HybridIdentity.generate()
    data = b"caller and helpline" * 5000  # several chunks
    sealed = age.encrypt(data, [identity.recipient()])
    header = fmt.parse(io.BytesIO(sealed))
    assert [s.type for s in header.stanzas] == ["mlkem768x25519"] and len(header.stanzas[0].body) == 32
    assert age.decrypt(sealed, [identity]) == data
    for other in (age.HybridIdentity.generate(), age.Identity.generate()):
        with pytest.raises(age.NoIdentityMatchError):
            age.decrypt(sealed, [other])
    two = age.HybridIdentity.generate()
    assert age.decrypt(age.encrypt(data, [identity.recipient(), two.recipient()]), [two]) == data


def test_post_quantum_and_classical_recipients_are_never_mixed(tmp_path: Path, capsys) -> None:
    pq, classic = age.HybridIdentity.generate().recipient(), age.Identity.generate().recipient()
    with pytest.raises(ValueError, match="only as safe as X25519"):
        age.encrypt(b"x", [pq, classic])
    code = main(["init", "--dir", str(tmp_path / "gw"), "--recipient", str(pq), "--recipient", str(classic)])
    assert code == exitcodes.EXIT_KEY and "only as safe as X25519" in capsys.readouterr().err
    cfg = tmp_path / "mixed.toml"
    cfg.write_text(f"[paths]\ndata_dir='.'\n[recording]\nrecipients=['{pq}', '{classic}']\n")
    assert main(["--config", str(cfg), "recordings", "list"]) == exitcodes.EXIT_CONFIG
    assert "[recording] recipients: post-quantum" in capsys.readouterr().err


def test_keygen_writes_a_private_identity_once_and_prints_its_recipient(tmp_path: Path, capsys) -> None:
    key = tmp_path / "operator-pq.txt"
    assert main(["keygen", "--pq", "-o", str(key)]) == 0
    recipient = capsys.readouterr().out.strip()
    assert recipient.startswith("age1pq1") and key.stat().st_mode & 0o777 == 0o600
    [identity] = age.load_identity_file(key)
    assert str(identity.recipient()) == recipient and f"# public key: {recipient}" in key.read_text()
    assert main(["keygen", "-o", str(key)]) == 1 and "never overwrites" in capsys.readouterr().err
    assert main(["keygen", "-o", str(tmp_path / "x25519.txt")]) == 0
    assert (
        capsys.readouterr().out.startswith("age1") and "age1pq" not in (tmp_path / "x25519.txt").read_text()
    )


@pytest.mark.parametrize("own_key", [False, True], ids=["operators-keys", "key-per-recording"])
def test_a_gateway_of_post_quantum_operators_records_and_exports(
    tmp_path: Path, capsys, own_key: bool
) -> None:
    key = tmp_path / "operator-pq.txt"
    assert main(["keygen", "--pq", "-o", str(key)]) == 0
    recipient = capsys.readouterr().out.strip()
    d = tmp_path / "gw"
    assert main(["init", "--dir", str(d), "--recipient", recipient]) == 0
    tgw = GatewayUnderTest(d, d / "gateway.toml", key, recipient)
    if own_key:
        tgw.set("recording", "key_per_recording", True)
    rec_id = tgw.record(seconds=2, number="+46701234567")
    gw = tgw.open()
    row = gw.index.get_recording(rec_id)
    with gw.store.open(row.object_name) as f:
        stanzas = fmt.parse(f).stanzas
    assert [s.type for s in stanzas] == ["mlkem768x25519"], "the recording itself is post-quantum"
    if own_key:
        assert row.key_enc is not None and [s.type for s in fmt.parse(io.BytesIO(row.key_enc)).stanzas] == [
            "mlkem768x25519"
        ]
    gw.close()
    out = tmp_path / "call.wav"
    assert tgw.run("recordings", "export", rec_id, "-i", str(key), "-o", str(out)) == 0
    with wave.open(str(out)) as w:
        s = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    assert abs(dominant_frequency(s[0::2]) - 440) < 5 and abs(dominant_frequency(s[1::2]) - 1000) < 5
    assert tgw.run("recordings", "verify") == 0
    capsys.readouterr()  # the caller's number, sealed to the post-quantum operators, is found
    assert tgw.run("subject", "find", "--number", "+46701234567", "-i", str(key), "--json") == 0
    assert [r["id"] for r in json.loads(capsys.readouterr().out)["recordings"]] == [rec_id]


NODE_AGE = Path(__file__).parent / "js" / "age.mjs"


def node_age(*args: str, data: bytes = b"") -> bytes:
    """The npm age-encryption package (tests/js/age.mjs), under Debian's nodejs."""
    require_tool("node")
    if not (Path(__file__).parent.parent / "node_modules" / "age-encryption").exists():
        pytest.fail("the npm package age-encryption is not installed: scripts/setup.sh runs npm ci")
    done = subprocess.run(["node", str(NODE_AGE), *args], input=data, capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    return done.stdout


@settings(max_examples=8, deadline=None)
@given(data=st.binary(max_size=200_000))
def test_the_npm_package_reads_what_we_write_and_we_read_what_it_writes(data: bytes) -> None:
    import tempfile

    theirs_identity, theirs_recipient = node_age("keygen").decode().split()
    ours = age.HybridIdentity.generate()
    with tempfile.TemporaryDirectory() as tmp:
        key = Path(tmp) / "key.txt"
        key.write_text(ours.encode() + "\n")
        # Ours to a key the package made, and to our own key: it opens both.
        theirs_key = Path(tmp) / "theirs.txt"
        theirs_key.write_text(theirs_identity + "\n")
        assert (
            node_age(
                "decrypt", str(theirs_key), data=age.encrypt(data, [age.parse_recipient(theirs_recipient)])
            )
            == data
        )
        assert node_age("decrypt", str(key), data=age.encrypt(data, [ours.recipient()])) == data
    # Its files to our recipient: we open them, and its identity parses here too.
    assert age.decrypt(node_age("encrypt", str(ours.recipient()), data=data), [ours]) == data
    assert str(age.parse_identity(theirs_identity).recipient()) == theirs_recipient


@pytest.mark.slow
def test_a_call_through_a_node_to_post_quantum_operators_decrypts_here_and_in_the_npm_package(
    tmp_path: Path, capsys
) -> None:
    from tests.calls import CallLab

    lab = CallLab(tmp_path, workers=1)
    key = tmp_path / "operator-pq.txt"
    capsys.readouterr()
    assert main(["keygen", "--pq", "-o", str(key)]) == 0
    lab.gw.set("recording", "recipients", [capsys.readouterr().out.strip()])
    try:
        lab.one_call("--tone", "440", "--hangup-after", "5")
        gw = lab.gw.open()
        [rec] = gw.index.list_recordings()
        with gw.store.open(rec.object_name) as f:
            sealed = f.read()
        gw.close()
        for plain in (
            age.decrypt(sealed, age.load_identity_file(key)),
            node_age("decrypt", str(key), data=sealed),
        ):
            pcm = np.frombuffer(plain[44:], dtype="<i2")
            assert (
                abs(dominant_frequency(pcm[0::2]) - 440) < 5 and abs(dominant_frequency(pcm[1::2]) - 1000) < 5
            )
    finally:
        lab.close()
