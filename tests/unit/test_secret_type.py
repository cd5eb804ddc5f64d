"""Secrets are a type that masks itself: in repr, str, f-strings, logs and
config dumps the value never shows."""
from __future__ import annotations

import logging
import pickle

import pytest

from paycore import config as config_mod
from paycore.logs import JsonFormatter
from channels.secrets import Secret

VALUE = "s3cr3t-value-that-must-not-show"


def test_secret_masks_itself_everywhere():
    s = Secret(VALUE)
    for text in (repr(s), str(s), f"{s}", "%s" % s, repr([s]), repr({"k": s})):
        assert VALUE not in text and "****" in text
    assert s.get() == VALUE and s.get_bytes() == VALUE.encode()
    with pytest.raises(TypeError):
        pickle.dumps(s)


def test_config_and_channel_settings_do_not_show_their_secrets():
    cfg = config_mod.load(None, overrides={"security": {"master_key": VALUE},
                                           "channels": {"bankwallet": {"base_url": "http://x", "secret": VALUE}}},
                          env={})
    assert VALUE not in repr(cfg) and VALUE not in str(cfg.security) and VALUE not in repr(cfg.channels)
    assert cfg.security.master_key.get() == VALUE


def test_a_log_record_carrying_a_secret_shows_it_masked():
    rec = logging.LogRecord("paycore", logging.WARNING, __file__, 1, "key %s for card 6222021234567890123",
                            (Secret(VALUE),), None)
    line = JsonFormatter().format(rec)
    assert VALUE not in line and "6222021234567890123" not in line
