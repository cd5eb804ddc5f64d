"""Development and test keys, generated at start and never committed.

``generate(dir, ports, public_base_url)`` writes, per channel, paycore's RSA
key pair (what the merchant uploads to the provider), the provider's key pair
(what the simulator signs with), and the provider-issued symmetric secrets,
then returns the matching settings for paycore's adapters and for the
simulators. Keys already in ``dir`` are reused, so a restart keeps them.
"""
from __future__ import annotations

import base64
import os
import secrets
import string
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from simulators.kit import SimSettings
from channels.secrets import Secret

#: realistic-looking provider-side ids for the dev/test merchant of each channel
DEV_IDS: dict[str, dict[str, str]] = {
    "wechatpay": {"mch_id": "1900000109", "app_id": "wxd678efh567hg6787"},
    "alipay": {"mch_id": "2088102147948060", "app_id": "2016091200494382"},
    # app_id: the 云闪付 open platform's appId (its upsdk/frontToken), not an ACP field
    "unionpay": {"mch_id": "777290058110048", "app_id": "5e5b2c1d7a4f4e0c9b3d8a6f1c2e4b7d"},
    "ecny": {"mch_id": "EC0000000000001", "app_id": "ecnyacq01"},
    "jdpay": {"mch_id": "110226843002", "app_id": ""},
    "bestpay": {"mch_id": "043101180050000", "app_id": ""},
    "qqwallet": {"mch_id": "1900005911", "app_id": ""},
    "douyinpay": {"mch_id": "7000000000001", "app_id": "tt07e3715e98c9aac0"},
    "applepay": {"mch_id": "777290058110048", "app_id": ""},
    "huaweipay": {"mch_id": "777290058110048", "app_id": ""},
    "samsungpay": {"mch_id": "777290058110048", "app_id": ""},
    "bankwallet": {"mch_id": "BW000000001", "app_id": "paycore"},
}

CHANNELS: tuple[str, ...] = tuple(DEV_IDS)

#: channels with an app secret: WeChat's official account AppSecret and Douyin's client_secret
#: (their OAuth for the payer id; Alipay's OAuth is signed with its RSA key), and the 云闪付
#: open platform's secret (the frontToken behind upsdk.config)
APP_SECRET_CHANNELS = frozenset({"wechatpay", "douyinpay", "unionpay"})


def _dev_extra(name: str, base_url: str) -> dict[str, str]:
    """Where the customer's side lives besides the API: the apps' OAuth pages, JD's H5
    cashier and 云闪付's open platform (frontToken) are on the simulator too (in
    production they are the providers' hosts)."""
    match name:
        case "wechatpay" | "douyinpay":
            return {"oauth_authorize_url": base_url + ("/connect/oauth2/authorize" if name == "wechatpay"
                                                       else "/passport/open/silent_auth/"),
                    "oauth_api_url": base_url}
        case "alipay":
            return {"oauth_authorize_url": base_url + "/oauth2/publicAppAuthorize.htm"}
        case "unionpay":
            return {"open_api_url": base_url + "/open/access/1.0"}
        case "jdpay":
            return {"h5_pay_url": base_url + "/jdpay/cashier?merchant={merchant}&orderId={orderId}&tradeNum={tradeNum}"}
    return {}


def _write_key(path: Path) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    os.chmod(path, 0o600)
    path.with_name(path.name.replace("_private", "_public")).write_bytes(
        key.public_key().public_bytes(serialization.Encoding.PEM,
                                      serialization.PublicFormat.SubjectPublicKeyInfo))


def _text_secret(path: Path, make) -> str:
    if not path.exists():
        path.write_text(make())
        os.chmod(path, 0o600)
    return path.read_text().strip()


def ensure_channel_keys(root: Path, name: str) -> dict[str, Any]:
    d = root / name
    d.mkdir(parents=True, exist_ok=True)
    for who in ("paycore", "provider"):
        if not (d / f"{who}_private.pem").exists():
            _write_key(d / f"{who}_private.pem")
    alnum = string.ascii_letters + string.digits
    secret = _text_secret(d / "secret", lambda: "".join(secrets.choice(alnum) for _ in range(32)))
    des_key = _text_secret(d / "des_key", lambda: base64.b64encode(secrets.token_bytes(24)).decode())
    serial = _text_secret(d / "serial", lambda: secrets.token_hex(20).upper())
    provider_serial = _text_secret(d / "provider_serial", lambda: secrets.token_hex(20).upper())
    app_secret = _text_secret(d / "app_secret", lambda: secrets.token_hex(16)) if name in APP_SECRET_CHANNELS else ""
    return {
        "dir": d, "secret": secret, "des_key": des_key, "serial_no": serial,
        "provider_serial_no": provider_serial, "app_secret": app_secret,
    }


def generate(root: str | os.PathLike[str], ports: dict[str, int], public_base_url: str,
             host: str = "127.0.0.1", latency_ms: float = 0.0, slow_seconds: float = 4.0,
             ) -> tuple[dict[str, dict[str, Any]], dict[str, SimSettings]]:
    """Keys for every channel in ``ports``; returns (paycore channel config, simulator settings).

    The first is in the shape of the config file's ``[channels.<name>]`` tables
    (paths and values as a TOML loader would give them).
    """
    root = Path(root)
    channel_cfg: dict[str, dict[str, Any]] = {}
    sims: dict[str, SimSettings] = {}
    for name, port in ports.items():
        k = ensure_channel_keys(root, name)
        ids = DEV_IDS[name]
        d: Path = k["dir"]
        base_url = f"http://{host}:{port}"
        channel_cfg[name] = {
            "base_url": base_url,
            "mch_id": ids["mch_id"], "app_id": ids["app_id"],
            "serial_no": k["serial_no"], "provider_serial_no": k["provider_serial_no"],
            "private_key_file": str(d / "paycore_private.pem"),
            "provider_public_key_file": str(d / "provider_public.pem"),
            "secret_file": str(d / "secret"),
            **({"app_secret_file": str(d / "app_secret")} if k["app_secret"] else {}),
            "extra": {"des_key": k["des_key"], **_dev_extra(name, base_url)},
        }
        sims[name] = SimSettings(
            name=name, host=host, port=port, mch_id=ids["mch_id"], app_id=ids["app_id"],
            serial_no=k["serial_no"], provider_serial_no=k["provider_serial_no"],
            provider_private_key_file=str(d / "provider_private.pem"),
            paycore_public_key_file=str(d / "paycore_public.pem"),
            secret=Secret(k["secret"]), latency_ms=latency_ms, slow_seconds=slow_seconds,
            extra={"des_key": k["des_key"], "public_base_url": public_base_url, "app_secret": k["app_secret"]},
        )
    return channel_cfg, sims
